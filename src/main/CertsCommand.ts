/**
 * `droptailer certs --out DIR`: a CA, a server and a client certificate for mutual TLS, written as
 * DIR/server/{ca.crt,tls.crt,tls.key} (the `droptailer-server` Secret; the server reads
 * SERVER_CA_CERTIFICATE, SERVER_CERTIFICATE, SERVER_KEY) and DIR/client/{ca.crt,tls.crt,tls.key}
 * (the client's /etc/droptailer-client), keys 0600; with `--kubernetes-secrets` also Secret
 * manifests for namespace `firewall`.
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { isIP } from "node:net"

/** Repeated flags, each also allowed to hold a comma-separated list. */
const listFlag = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withDescription(description),
    Flag.atLeast(0),
    Flag.map((values) => values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0))
  )

export const certsCommand = Command.make(
  "certs",
  {
    out: Flag.String("out").pipe(Flag.withDescription("Directory to write server/ and client/ into")),
    serverDns: listFlag("server-dns", "DNS name in the server certificate (repeatable; default: droptailer)"),
    serverIp: listFlag("server-ip", "IP address in the server certificate (repeatable)"),
    clientName: Flag.String("client-name").pipe(
      Flag.withDescription("Common name of the client certificate"),
      Flag.withDefault("droptailer-client")
    ),
    kubernetesSecrets: Flag.Boolean("kubernetes-secrets").pipe(
      Flag.withDescription("Also write droptailer-server-secret.yaml and droptailer-client-secret.yaml (namespace firewall)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("CertsCommand")(function*({ out, serverDns, serverIp, clientName, kubernetesSecrets }) {
    const badIp = serverIp.find((ip) => isIP(ip) === 0)
    if (badIp !== undefined) return yield* Effect.fail(new Error(`--server-ip ${badIp}: not an IP address`))
    // loaded here: the x509 library is needed by this command only
    const { makeCertSet, writeCertSet } = yield* Effect.promise(() => import("../transport/Certs.ts"))
    const set = yield* makeCertSet({
      serverDns: serverDns.length > 0 ? serverDns : ["droptailer"],
      serverIps: serverIp,
      clientCommonName: clientName
    })
    const written = yield* writeCertSet(out, set, { kubernetesSecrets })
    yield* Console.log(`server certificate, key and CA: ${written.serverDir}/{tls.crt,tls.key,ca.crt}`)
    yield* Console.log(`client certificate, key and CA: ${written.clientDir}/{tls.crt,tls.key,ca.crt}`)
    for (const manifest of written.manifests) yield* Console.log(`Kubernetes Secret: ${manifest}`)
  })
).pipe(Command.withDescription("Create a CA, a server and a client certificate for droptailer's mutual TLS"))
