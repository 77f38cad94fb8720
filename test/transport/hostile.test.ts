/**
 * Hostile and broken requests against the real server process: each gets the right status with
 * the reason, no event is printed for it, and the server keeps serving the next call.
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Exit } from "effect"
import { Drop, DropBatch } from "../../src/transport/generated/droptailer.ts"
import { commandCerts, rawCall, serverTlsEnv, startServer, varint } from "./support.ts"

const lengthDelimited = (fieldNumber: number, payload: Buffer): Buffer =>
  Buffer.concat([Buffer.from([(fieldNumber << 3) | 2, ...varint(payload.length)]), payload])

const timestampField = lengthDelimited(1, Buffer.from([0x08, ...varint(1764252130)]))
const entry = (key: Buffer, value: Buffer) => lengthDelimited(2, Buffer.concat([lengthDelimited(1, key), lengthDelimited(2, value)]))

const drop = (overrides: Partial<Drop> = {}) =>
  Buffer.from(Drop.encode({
    timestamp: { seconds: 1764252130, nanos: 0 },
    fields: { SRC: "1.2.3.4", DST: "4.3.2.1", PROTO: "TCP", SPT: "1", DPT: "2", ACTION: "drop", MARK: "ok" },
    eventId: "",
    host: "fw-hostile",
    message: "",
    ...overrides
  }).finish())

const codeOf = (exit: Exit.Exit<void, grpc.ServiceError>): { code: number | undefined; details: string } => {
  if (Exit.isSuccess(exit)) return { code: grpc.status.OK, details: "" }
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  return failure?._tag === "Fail" ? { code: failure.error.code, details: failure.error.details } : { code: undefined, details: "" }
}

describe("hostile requests", () => {
  it.live("get INVALID_ARGUMENT / RESOURCE_EXHAUSTED with a reason, print nothing, and never stop the server", () =>
    Effect.gen(function*() {
      const dir = commandCerts()
      const server = yield* startServer(serverTlsEnv(dir))
      const client = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new grpc.Client(
            `127.0.0.1:${server.port}`,
            grpc.credentials.createSsl(
              readFileSync(join(dir, "client/ca.crt")),
              readFileSync(join(dir, "client/tls.key")),
              readFileSync(join(dir, "client/tls.crt"))
            ),
            { "grpc.ssl_target_name_override": "droptailer", "grpc.max_send_message_length": -1 }
          )
        ),
        (c) => Effect.sync(() => c.close())
      )
      const manyFields: Record<string, string> = {}
      for (let i = 0; i < 100_000; i++) manyFields[`K${i}`] = "v"
      const cases: ReadonlyArray<[string, "Push" | "PushBatch", Buffer, number, RegExp]> = [
        ["missing timestamp", "Push", drop({ timestamp: undefined }), grpc.status.INVALID_ARGUMENT, /timestamp is missing/],
        ["empty fields", "Push", drop({ fields: {} }), grpc.status.INVALID_ARGUMENT, /fields is empty/],
        ["missing timestamp in a batch", "PushBatch", Buffer.from(DropBatch.encode({ drops: [Drop.decode(drop()), Drop.decode(drop({ timestamp: undefined }))] }).finish()), grpc.status.INVALID_ARGUMENT, /drops\[1\]: timestamp is missing/],
        ["a 10 MB request", "Push", drop({ message: "x".repeat(10 * 1024 * 1024) }), grpc.status.RESOURCE_EXHAUSTED, /larger than max/i],
        ["a 1 MB message field", "Push", drop({ message: "x".repeat(1024 * 1024) }), grpc.status.INVALID_ARGUMENT, /message is longer than/],
        ["100k fields", "Push", drop({ fields: manyFields }), grpc.status.INVALID_ARGUMENT, /more than 256 fields/],
        ["invalid UTF-8 in a field value", "Push", Buffer.concat([timestampField, entry(Buffer.from("SRC"), Buffer.from([0x31, 0xff, 0xfe, 0x32]))]), grpc.status.INVALID_ARGUMENT, /not valid UTF-8/],
        ["invalid UTF-8 in a field key", "Push", Buffer.concat([timestampField, entry(Buffer.from([0xc3, 0x28]), Buffer.from("v"))]), grpc.status.INVALID_ARGUMENT, /not valid UTF-8/],
        ["truncated protobuf", "Push", drop().subarray(0, 20), grpc.status.INVALID_ARGUMENT, /malformed protobuf/],
        ["garbage bytes", "PushBatch", Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), grpc.status.INVALID_ARGUMENT, /malformed protobuf/],
        ["10,001 events in one batch", "PushBatch", Buffer.from(DropBatch.encode({ drops: Array.from({ length: 10_001 }, () => Drop.decode(drop())) }).finish()), grpc.status.INVALID_ARGUMENT, /at most 10000 events/]
      ]
      let expectedLines = 0
      for (const [name, method, bytes, code, reason] of cases) {
        const result = codeOf(yield* Effect.exit(rawCall(client, method, bytes)))
        assert.strictEqual(result.code, code, `${name}: ${grpc.status[result.code ?? -1]} ${result.details}`)
        assert.match(result.details, reason, name)
        // the next call is served
        yield* rawCall(client, "Push", drop({ fields: { ACTION: "drop", SRC: "9.9.9.9", AFTER: name } }))
        expectedLines++
        yield* server.waitForLines(expectedLines, 10_000)
      }
      assert.strictEqual(server.child.exitCode, null, "the server is still running")
      const printed = server.lines.map((l) => (JSON.parse(l) as { fields: Record<string, string> }).fields.AFTER)
      assert.deepStrictEqual(printed, cases.map(([name]) => name), "only the valid follow-up calls were printed")
    }), 120_000)
})
