/**
 * Loading and checking the PEM files of mutual TLS before anything listens or connects: a file
 * that is missing or unreadable, a key that does not belong to its certificate, a "CA" that is not
 * a CA, a certificate that has expired (or is not valid yet) each fail start-up with an error that
 * names the environment variable and what is wrong with it.
 */
import { X509Certificate, createPrivateKey } from "node:crypto"
import { readFile } from "node:fs/promises"
import { Effect, Schema } from "effect"

export class TlsConfigError extends Schema.TaggedError<TlsConfigError>()("TlsConfigError", {
  /** The environment variable that names the file. */
  variable: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.variable}=${this.path}: ${this.reason}`
  }
}

/** A file setting: the variable's name and the path it holds. */
export interface FileSetting {
  readonly variable: string
  readonly path: string
}

export interface TlsFiles {
  readonly ca: FileSetting
  readonly cert: FileSetting
  readonly key: FileSetting
}

/** The checked material, ready for grpc credentials. */
export interface TlsMaterial {
  readonly ca: Buffer
  readonly cert: Buffer
  readonly key: Buffer
  /** The own certificate's subject CN (for logs). */
  readonly commonName: string
  readonly notAfter: Date
}

const read = (setting: FileSetting) =>
  Effect.tryPromise({
    try: () => readFile(setting.path),
    catch: (cause) =>
      new TlsConfigError({
        variable: setting.variable,
        path: setting.path,
        reason: `cannot read the file (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`
      })
  })

const firstCertificate = (setting: FileSetting, pem: Buffer) =>
  Effect.try({
    try: () => new X509Certificate(pem),
    catch: () => new TlsConfigError({ ...setting, reason: "not a PEM certificate" })
  })

const checkValidity = (setting: FileSetting, certificate: X509Certificate, now: Date) => {
  if (certificate.validToDate.getTime() <= now.getTime()) {
    return Effect.fail(
      new TlsConfigError({ ...setting, reason: `the certificate expired on ${certificate.validToDate.toISOString()}` })
    )
  }
  if (certificate.validFromDate.getTime() > now.getTime()) {
    return Effect.fail(
      new TlsConfigError({ ...setting, reason: `the certificate is not valid before ${certificate.validFromDate.toISOString()}` })
    )
  }
  return Effect.void
}

const commonNameOf = (certificate: X509Certificate): string =>
  /(?:^|\n)CN=([^\n]*)/.exec(certificate.subject)?.[1] ?? certificate.subject

/** Reads and checks the CA, the own certificate and its key. */
export const loadTlsMaterial = Effect.fn("Tls.loadTlsMaterial")(function*(files: TlsFiles) {
  const now = new Date()
  const certPem = yield* read(files.cert)
  const keyPem = yield* read(files.key)
  const caPem = yield* read(files.ca)

  const ca = yield* firstCertificate(files.ca, caPem)
  if (!ca.ca) {
    return yield* new TlsConfigError({ ...files.ca, reason: "the certificate is not a CA (basicConstraints CA:FALSE)" })
  }
  yield* checkValidity(files.ca, ca, now)

  const certificate = yield* firstCertificate(files.cert, certPem)
  yield* checkValidity(files.cert, certificate, now)

  const key = yield* Effect.try({
    try: () => createPrivateKey(keyPem),
    catch: () => new TlsConfigError({ ...files.key, reason: "not a PEM private key" })
  })
  if (!certificate.checkPrivateKey(key)) {
    return yield* new TlsConfigError({
      ...files.key,
      reason: `the key does not match the certificate in ${files.cert.variable}=${files.cert.path}`
    })
  }
  return {
    ca: caPem,
    cert: certPem,
    key: keyPem,
    commonName: commonNameOf(certificate),
    notAfter: certificate.validToDate
  } satisfies TlsMaterial
})
