/**
 * Mutual TLS: the server accepts only clients with a valid certificate of its CA (and, with
 * DROPTAILER_ALLOWED_CLIENTS, only listed ones). Each negative case: the call fails and no event
 * reaches the IngestHandler. In-process server on 127.0.0.1, certificates from Certs.
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import { Effect, Exit } from "effect"
import { type CertSet, issueCertificate, makeCertSet } from "../../src/transport/Certs.ts"
import { Drop } from "../../src/transport/generated/droptailer.ts"
import { HealthCheckRequest, HealthCheckResponse } from "../../src/transport/generated/health.ts"
import { inProcessServer, rawCall } from "./support.ts"

const validDrop = Buffer.from(
  Drop.encode({
    timestamp: { seconds: 1764252130, nanos: 0 },
    fields: { SRC: "1.2.3.4", DST: "4.3.2.1", PROTO: "TCP", SPT: "1", DPT: "2", ACTION: "drop" },
    eventId: "",
    host: "",
    message: ""
  }).finish()
)

const clientWith = (port: number, credentials: grpc.ChannelCredentials) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new grpc.Client(`127.0.0.1:${port}`, credentials, {
        "grpc.ssl_target_name_override": "droptailer",
        "grpc.default_authority": "droptailer"
      })
    ),
    (client) => Effect.sync(() => client.close())
  )

const tlsClient = (set: CertSet, client?: { cert: string; key: string }) =>
  client === undefined
    ? grpc.credentials.createSsl(Buffer.from(set.ca.cert))
    : grpc.credentials.createSsl(Buffer.from(set.ca.cert), Buffer.from(client.key), Buffer.from(client.cert))

describe("mutual TLS", () => {
  it.live("accepts a client certificate of the CA, and rejects every other client without accepting an event", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet({ foreignCa: true })
      const { port, received } = yield* inProcessServer(set)

      const good = yield* clientWith(port, tlsClient(set, set.client))
      yield* rawCall(good, "Push", validDrop)
      assert.strictEqual(received.length, 1)

      const foreign = set.foreign!.client
      const expired = yield* issueCertificate(set.ca, {
        commonName: "droptailer-client",
        usage: "client",
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000)
      })
      const cases: ReadonlyArray<[string, grpc.ChannelCredentials]> = [
        ["no client certificate", tlsClient(set)],
        ["a certificate from another CA", tlsClient(set, foreign)],
        ["an expired certificate", tlsClient(set, expired)],
        ["plaintext", grpc.credentials.createInsecure()]
      ]
      for (const [name, credentials] of cases) {
        const client = yield* clientWith(port, credentials)
        const exit = yield* Effect.exit(rawCall(client, "Push", validDrop, 5000))
        assert.isTrue(Exit.isFailure(exit), `${name}: the call must fail`)
        if (Exit.isFailure(exit)) {
          const error = exit.cause.reasons.find((r) => r._tag === "Fail")
          const code = error?._tag === "Fail" ? (error.error as grpc.ServiceError).code : undefined
          assert.include([grpc.status.UNAVAILABLE, grpc.status.UNAUTHENTICATED], code, `${name}: status ${code}`)
        }
        assert.strictEqual(received.length, 1, `${name}: no event accepted`)
      }
      // the good client still works afterwards
      yield* rawCall(good, "Push", validDrop)
      assert.strictEqual(received.length, 2)
    }), 60_000)

  it.live("DROPTAILER_ALLOWED_CLIENTS admits only the listed client CNs (PERMISSION_DENIED otherwise)", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet({ clientCommonName: "fw-7" })
      const denied = yield* inProcessServer(set, { allowedClients: ["fw-1", "fw-2"] })
      const client1 = yield* clientWith(denied.port, tlsClient(set, set.client))
      const exit = yield* Effect.exit(rawCall(client1, "Push", validDrop))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons.find((r) => r._tag === "Fail")
        assert.strictEqual(error?._tag === "Fail" ? (error.error as grpc.ServiceError).code : undefined, grpc.status.PERMISSION_DENIED)
      }
      assert.strictEqual(denied.received.length, 0)

      const allowed = yield* inProcessServer(set, { allowedClients: ["fw-1", "fw-7"] })
      const client2 = yield* clientWith(allowed.port, tlsClient(set, set.client))
      yield* rawCall(client2, "Push", validDrop)
      assert.strictEqual(allowed.received.length, 1)
      assert.strictEqual(allowed.received[0]!.host, "fw-7") // no host on the wire: the peer CN
    }), 60_000)

  it.live("grpc.health.v1.Health/Check answers SERVING", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const { port } = yield* inProcessServer(set)
      const client = yield* clientWith(port, tlsClient(set, set.client))
      const response = yield* Effect.callback<HealthCheckResponse, grpc.ServiceError>((resume) => {
        client.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          (r: HealthCheckRequest) => Buffer.from(HealthCheckRequest.encode(r).finish()),
          (b: Buffer) => HealthCheckResponse.decode(b),
          { service: "" },
          (error, value) => resume(error ? Effect.fail(error) : Effect.succeed(value!))
        )
      })
      assert.strictEqual(response.status, 1) // SERVING
    }), 60_000)
})
