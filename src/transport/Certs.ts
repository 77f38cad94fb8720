/**
 * Certificates for droptailer's mutual TLS: a CA, a server certificate and a client certificate,
 * made with @peculiar/x509 on node's WebCrypto (ECDSA P-256, SHA-256). Used by `droptailer certs`
 * (written as the server Secret and the client's /etc/droptailer-client expect them) and, in
 * memory, by tests and the demo (with knobs for expired certificates and a foreign CA).
 */
import "reflect-metadata" // tsyringe (inside @peculiar/x509) needs the Reflect metadata API
import * as x509 from "@peculiar/x509"
import { webcrypto } from "node:crypto"
import { isIP } from "node:net"
import { chmod, mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Schema } from "effect"

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

type CryptoKeyPair = webcrypto.CryptoKeyPair
type CryptoKey = webcrypto.CryptoKey

export class CertificateError extends Schema.TaggedError<CertificateError>()("CertificateError", {
  message: Schema.String
}) {}

/** PEM text of a certificate and its PKCS#8 private key. */
export interface KeyPairPem {
  readonly cert: string
  readonly key: string
}

/** A CA that can sign: its PEMs plus the WebCrypto objects. */
export interface CertificateAuthority extends KeyPairPem {
  readonly certificate: x509.X509Certificate
  readonly keys: CryptoKeyPair
}

export interface Validity {
  readonly notBefore?: Date
  readonly notAfter?: Date
}

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const
const day = 24 * 60 * 60 * 1000

const generateKeys = (): Promise<CryptoKeyPair> =>
  webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"]) as Promise<CryptoKeyPair>

const keyToPem = async (key: CryptoKey): Promise<string> => {
  const der = await webcrypto.subtle.exportKey("pkcs8", key)
  return x509.PemConverter.encode(der, "PRIVATE KEY")
}

const serial = (): string => {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16))
  bytes[0] = bytes[0]! & 0x7f // positive
  return Buffer.from(bytes).toString("hex")
}

const wrap = <A>(what: string, run: () => Promise<A>): Effect.Effect<A, CertificateError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new CertificateError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

/** A self-signed CA (10 years unless told otherwise). */
export const createCa = Effect.fn("Certs.createCa")(function*(
  options: { readonly commonName?: string } & Validity = {}
) {
  return yield* wrap("creating the CA", async (): Promise<CertificateAuthority> => {
    const keys = await generateKeys()
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000)
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${options.commonName ?? "droptailer-ca"}`,
      notBefore,
      notAfter: options.notAfter ?? new Date(notBefore.getTime() + 3650 * day),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
      ]
    })
    return { certificate, keys, cert: certificate.toString("pem") + "\n", key: await keyToPem(keys.privateKey) }
  })
})

export interface LeafOptions extends Validity {
  readonly commonName: string
  readonly usage: "server" | "client"
  /** Subject alternative names; an entry that is an IP address becomes an IP SAN. */
  readonly names?: ReadonlyArray<string>
}

/** A certificate signed by `ca` (2 years unless told otherwise). */
export const issueCertificate = Effect.fn("Certs.issueCertificate")(function*(
  ca: CertificateAuthority,
  options: LeafOptions
) {
  return yield* wrap(`issuing the ${options.usage} certificate`, async (): Promise<KeyPairPem> => {
    const keys = await generateKeys()
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000)
    const names = options.names ?? []
    const extensions: Array<x509.Extension> = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(
        [options.usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
        false
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey)
    ]
    if (names.length > 0) {
      extensions.push(
        new x509.SubjectAlternativeNameExtension(
          names.map((value) => (isIP(value) === 0 ? { type: "dns", value } : { type: "ip", value }))
        )
      )
    }
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${options.commonName}`,
      issuer: ca.certificate.subject,
      notBefore,
      notAfter: options.notAfter ?? new Date(notBefore.getTime() + 730 * day),
      publicKey: keys.publicKey,
      signingKey: ca.keys.privateKey,
      signingAlgorithm: algorithm,
      extensions
    })
    return { cert: certificate.toString("pem") + "\n", key: await keyToPem(keys.privateKey) }
  })
})

export interface CertSetOptions {
  /** DNS names of the server certificate (default `droptailer`, the client's default TLS name). */
  readonly serverDns?: ReadonlyArray<string>
  readonly serverIps?: ReadonlyArray<string>
  readonly clientCommonName?: string
  readonly serverCommonName?: string
  /** Validity of the leaf certificates (e.g. in the past, for an expired-certificate test). */
  readonly leafValidity?: Validity
  /** Also make a second, unrelated CA with a client certificate (for "wrong CA" tests). */
  readonly foreignCa?: boolean
}

/** Everything one deployment needs; `ca` is shared by both sides. */
export interface CertSet {
  readonly ca: CertificateAuthority
  readonly server: KeyPairPem
  readonly client: KeyPairPem
  /** With `foreignCa`: another CA and a client certificate it signed (same CN as `client`). */
  readonly foreign?: { readonly ca: CertificateAuthority; readonly client: KeyPairPem }
}

/** A fresh CA with a server and a client certificate, in memory. */
export const makeCertSet = Effect.fn("Certs.makeCertSet")(function*(options: CertSetOptions = {}) {
  const ca = yield* createCa()
  const validity = options.leafValidity ?? {}
  const server = yield* issueCertificate(ca, {
    ...validity,
    commonName: options.serverCommonName ?? "droptailer-server",
    usage: "server",
    names: [...(options.serverDns ?? ["droptailer"]), ...(options.serverIps ?? [])]
  })
  const client = yield* issueCertificate(ca, {
    ...validity,
    commonName: options.clientCommonName ?? "droptailer-client",
    usage: "client"
  })
  if (options.foreignCa !== true) return { ca, server, client } satisfies CertSet
  const foreignCa = yield* createCa({ commonName: "droptailer-foreign-ca" })
  const foreignClient = yield* issueCertificate(foreignCa, {
    commonName: options.clientCommonName ?? "droptailer-client",
    usage: "client"
  })
  return { ca, server, client, foreign: { ca: foreignCa, client: foreignClient } } satisfies CertSet
})

const secretManifest = (name: string, files: Record<string, string>): string => {
  const indent = (text: string) => text.trimEnd().split("\n").map((line) => `    ${line}`).join("\n")
  return [
    "---",
    "apiVersion: v1",
    "kind: Secret",
    "metadata:",
    `  name: ${name}`,
    "  namespace: firewall",
    "type: Opaque",
    "stringData:",
    ...Object.entries(files).flatMap(([key, value]) => [`  ${key}: |`, indent(value)]),
    ""
  ].join("\n")
}

/** What `writeCertSet` wrote, for the command's summary. */
export interface WrittenCerts {
  readonly serverDir: string
  readonly clientDir: string
  readonly manifests: ReadonlyArray<string>
}

/**
 * Writes DIR/server/{ca.crt,tls.crt,tls.key} (the `droptailer-server` Secret's files) and
 * DIR/client/{ca.crt,tls.crt,tls.key} (the client's /etc/droptailer-client); keys are 0600.
 * With `kubernetesSecrets`, also DIR/droptailer-server-secret.yaml and DIR/droptailer-client-secret.yaml
 * (namespace `firewall`).
 */
export const writeCertSet = Effect.fn("Certs.writeCertSet")(function*(
  outDir: string,
  set: CertSet,
  options: { readonly kubernetesSecrets?: boolean } = {}
) {
  return yield* wrap(`writing certificates to ${outDir}`, async (): Promise<WrittenCerts> => {
    const serverDir = join(outDir, "server")
    const clientDir = join(outDir, "client")
    const write = async (dir: string, pair: KeyPairPem) => {
      await mkdir(dir, { recursive: true, mode: 0o755 })
      await writeFile(join(dir, "ca.crt"), set.ca.cert, { mode: 0o644 })
      await writeFile(join(dir, "tls.crt"), pair.cert, { mode: 0o644 })
      await writeFile(join(dir, "tls.key"), pair.key, { mode: 0o600 })
      await chmod(join(dir, "tls.key"), 0o600) // also when the file existed with wider rights
    }
    await write(serverDir, set.server)
    await write(clientDir, set.client)
    const manifests: Array<string> = []
    if (options.kubernetesSecrets === true) {
      for (const [name, pair] of [["droptailer-server", set.server], ["droptailer-client", set.client]] as const) {
        const path = join(outDir, `${name}-secret.yaml`)
        await writeFile(path, secretManifest(name, { "ca.crt": set.ca.cert, "tls.crt": pair.cert, "tls.key": pair.key }), {
          mode: 0o600
        })
        await chmod(path, 0o600)
        manifests.push(path)
      }
    }
    return { serverDir, clientDir, manifests }
  })
})
