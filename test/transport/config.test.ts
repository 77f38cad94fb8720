/**
 * Start-up checks: bad TLS settings stop the server before it serves, with a non-zero exit and a
 * message naming the variable; the same checks (loadTlsMaterial) guard the client.
 */
import { assert, describe, it } from "@effect/vitest"
import { X509Certificate } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Exit } from "effect"
import { issueCertificate, makeCertSet } from "../../src/transport/Certs.ts"
import { loadTlsMaterial, type TlsConfigError, type TlsFiles } from "../../src/transport/Tls.ts"
import { commandCerts, serverStartFailure, serverTlsEnv, writeTempCerts } from "./support.ts"

const files = (dir: string, side: "server" | "client"): TlsFiles => ({
  ca: { variable: "CA_VAR", path: join(dir, side, "ca.crt") },
  cert: { variable: "CERT_VAR", path: join(dir, side, "tls.crt") },
  key: { variable: "KEY_VAR", path: join(dir, side, "tls.key") }
})

const failure = (exit: Exit.Exit<unknown, TlsConfigError>): TlsConfigError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (reason?._tag !== "Fail") throw new Error("expected a typed failure")
  return reason.error
}

describe("TLS configuration", () => {
  it("server: a missing certificate file → non-zero exit, the message names the variable", () => {
    const dir = commandCerts()
    const result = serverStartFailure({ ...serverTlsEnv(dir), SERVER_CERTIFICATE: "/nonexistent/tls.crt" })
    assert.notStrictEqual(result.code, 0)
    assert.include(result.stderr, "SERVER_CERTIFICATE=/nonexistent/tls.crt: cannot read the file (ENOENT)")
  }, 30_000)

  it("server: a key that does not match the certificate → non-zero exit naming SERVER_KEY", () => {
    const dir = commandCerts()
    const result = serverStartFailure({ ...serverTlsEnv(dir), SERVER_KEY: join(dir, "client/tls.key") })
    assert.notStrictEqual(result.code, 0)
    assert.match(result.stderr, /SERVER_KEY=\S+: the key does not match the certificate in SERVER_CERTIFICATE/)
  }, 30_000)

  it.live("loadTlsMaterial: valid files pass; a CA that is not a CA, an expired certificate, a non-PEM file fail", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const ok = yield* loadTlsMaterial(files(dir, "client"))
      assert.strictEqual(ok.commonName, "droptailer-client")

      // a leaf certificate given as the CA
      const notCa = failure(yield* Effect.exit(loadTlsMaterial({ ...files(dir, "client"), ca: { variable: "CA_VAR", path: join(dir, "client/tls.crt") } })))
      assert.strictEqual(notCa.variable, "CA_VAR")
      assert.match(notCa.message, /not a CA/)

      // expired
      const expired = yield* issueCertificate(set.ca, {
        commonName: "old",
        usage: "client",
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000)
      })
      assert.isTrue(new X509Certificate(expired.cert).validToDate.getTime() < Date.now())
      writeFileSync(join(dir, "client/tls.crt"), expired.cert)
      writeFileSync(join(dir, "client/tls.key"), expired.key)
      const e = failure(yield* Effect.exit(loadTlsMaterial(files(dir, "client"))))
      assert.strictEqual(e.variable, "CERT_VAR")
      assert.match(e.message, /expired on/)

      writeFileSync(join(dir, "client/tls.crt"), "hello")
      const garbage = failure(yield* Effect.exit(loadTlsMaterial(files(dir, "client"))))
      assert.strictEqual(garbage.variable, "CERT_VAR")
      assert.match(garbage.message, /not a PEM certificate/)
    }), 30_000)
})
