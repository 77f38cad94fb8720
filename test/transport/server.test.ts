/**
 * Server and Shipper behaviour with the server in this process: de-duplication of retransmits,
 * INVALID_ARGUMENT handling (only the bad event is skipped), the certs command's files, and the
 * request decoder against its Schema.
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import { execFileSync } from "node:child_process"
import { X509Certificate } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Fiber, Layer, Metric, Result, Schema, Scope } from "effect"
import { IngestHandler } from "../../src/server/IngestHandler.ts"
import { IngestServer } from "../../src/transport/IngestServer.ts"
import { makeCertSet } from "../../src/transport/Certs.ts"
import { DedupWindow } from "../../src/transport/DedupWindow.ts"
import { encodeDrop } from "../../src/transport/DropEncoder.ts"
import { BatchAck, Drop, DropBatch } from "../../src/transport/generated/droptailer.ts"
import { clientEventsRejected } from "../../src/transport/metrics.ts"
import { encodeOutgoing } from "../../src/transport/Shipper.ts"
import { defaultWireLimits, makeWireDecoder, makeWireDropSchema } from "../../src/transport/WireDrop.ts"
import { binTs, inProcessServer, nodeBin, outgoing, outgoingRange, rawCall, serverConfigFor, shipper, shipperConfigFor, writeTempCerts } from "./support.ts"

describe("de-duplication", () => {
  it("DedupWindow remembers the last N ids per host; empty ids are never duplicates", () => {
    const window = new DedupWindow(3)
    for (const id of ["a", "b", "c"]) window.add("h1", id)
    assert.isTrue(window.has("h1", "a"))
    assert.isFalse(window.has("h2", "a"))
    window.add("h1", "d") // evicts a
    assert.isFalse(window.has("h1", "a"))
    assert.isTrue(window.has("h1", "d"))
    window.add("h1", "")
    assert.isFalse(window.has("h1", ""))
  })

  it.live("a retransmitted batch is acknowledged but not written again", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const { port, received } = yield* inProcessServer(set)
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(set.ca.cert), Buffer.from(set.client.key), Buffer.from(set.client.cert)), {
        "grpc.ssl_target_name_override": "droptailer"
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
      const events = outgoingRange(0, 100, "fw-dup")
      // the batch carries one event twice as well
      const bytes = Buffer.from(DropBatch.encode({ drops: [...events, events[7]!].map((e) => Drop.decode(encodeOutgoing(e))) }).finish())
      const send = Effect.callback<BatchAck, grpc.ServiceError>((resume) => {
        client.makeUnaryRequest("/proto.Droptailer/PushBatch", (b: Buffer) => b, (b: Buffer) => BatchAck.decode(b), bytes, (error, ack) =>
          resume(error ? Effect.fail(error) : Effect.succeed(ack!)))
      })
      const first = yield* send
      assert.deepStrictEqual(first, { accepted: 100, duplicates: 1 })
      const second = yield* send
      assert.deepStrictEqual(second, { accepted: 0, duplicates: 101 })
      assert.strictEqual(received.length, 100)
    }), 30_000)
})

describe("Shipper", () => {
  it.live("a batch with one invalid event: the others arrive in order, only that one is skipped and counted", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const { port, received } = yield* inProcessServer(set)
      const sink = yield* shipper(shipperConfigFor(dir, port))
      const before = yield* Metric.value(clientEventsRejected)
      const events = outgoingRange(0, 20, "fw-bad")
      const bad = outgoing(10, "fw-bad")
      events[10] = { ...bad, event: { ...bad.event, fields: {} } } // the server answers INVALID_ARGUMENT
      yield* sink.deliver(events)
      assert.deepStrictEqual(received.map((e) => Number(e.fields.SEQ)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19])
      const after = yield* Metric.value(clientEventsRejected)
      assert.strictEqual(after.count - before.count, 1)
    }), 30_000)

  it.live("concurrent deliveries share one channel and all arrive", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const { port, received } = yield* inProcessServer(set)
      const sink = yield* shipper(shipperConfigFor(dir, port, { maxBatchEvents: 100 }))
      const batches = Array.from({ length: 8 }, (_, b) => outgoingRange(b * 1000, 1000, "fw-conc"))
      yield* Effect.forEach(batches, (batch) => sink.deliver(batch), { concurrency: "unbounded", discard: true })
      const seqs = received.map((e) => Number(e.fields.SEQ)).sort((a, b) => a - b)
      assert.deepStrictEqual(seqs, Array.from({ length: 8000 }, (_, i) => i))
    }), 30_000)
})

describe("droptailer certs", () => {
  it("writes server/ and client/ with ca.crt, tls.crt, tls.key (0600), SANs, client CN and Secret manifests", () => {
    const out = mkdtempSync(join(tmpdir(), "droptailer-certs-cmd-"))
    try {
      execFileSync(nodeBin, [binTs, "certs", "--out", out, "--server-dns", "droptailer,droptailer.firewall.svc", "--server-ip", "127.0.0.1", "--client-name", "fw-9", "--kubernetes-secrets"], { stdio: "pipe" })
      for (const side of ["server", "client"]) {
        assert.strictEqual(statSync(join(out, side, "tls.key")).mode & 0o777, 0o600)
        const cert = new X509Certificate(readFileSync(join(out, side, "tls.crt")))
        const ca = new X509Certificate(readFileSync(join(out, side, "ca.crt")))
        assert.isTrue(ca.ca)
        assert.isTrue(cert.verify(ca.publicKey))
      }
      const server = new X509Certificate(readFileSync(join(out, "server/tls.crt")))
      assert.strictEqual(server.subjectAltName, "DNS:droptailer, DNS:droptailer.firewall.svc, IP Address:127.0.0.1")
      assert.include(new X509Certificate(readFileSync(join(out, "client/tls.crt"))).subject, "CN=fw-9")
      const manifest = readFileSync(join(out, "droptailer-server-secret.yaml"), "utf8")
      assert.include(manifest, "name: droptailer-server")
      assert.include(manifest, "namespace: firewall")
      assert.include(readFileSync(join(out, "droptailer-client-secret.yaml"), "utf8"), "name: droptailer-client")
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  }, 30_000)
})

describe("request decoder", () => {
  it("accepts exactly what the WireDrop Schema accepts (generated cases)", () => {
    const decoder = makeWireDecoder({ ...defaultWireLimits, maxFields: 4, maxFieldLength: 8, maxMessageLength: 16, maxIdLength: 8 })
    const schema = Schema.decodeUnknownResult(makeWireDropSchema({ ...defaultWireLimits, maxFields: 4, maxFieldLength: 8, maxMessageLength: 16, maxIdLength: 8 }))
    let seed = 42
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const text = (max: number) => "aé😀x".repeat(5).slice(0, Math.floor(random() * max))
    for (let i = 0; i < 2000; i++) {
      const fields: Record<string, string> = {}
      const n = Math.floor(random() * 6)
      for (let f = 0; f < n; f++) fields[`k${f}${text(9)}`] = text(10)
      const drop = {
        timestamp: random() < 0.1 ? undefined : { seconds: Math.floor(random() * 2e9) - 1e9, nanos: Math.floor(random() * 1e9) },
        fields,
        eventId: text(10),
        host: text(10),
        message: text(20)
      }
      const decoded = decoder.single(Buffer.from(Drop.encode(drop).finish()))
      const expected = schema(drop)
      assert.strictEqual(Result.isSuccess(decoded), Result.isSuccess(expected), JSON.stringify(drop))
    }
  })
})

describe("client encoder", () => {
  it("writes exactly the bytes of the generated Drop.encode", () => {
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, "v".repeat(i)]))
    const cases = [
      { seconds: 1764252130, nanos: 123000, fields: outgoing(5).event.fields, eventId: "id", host: "h", message: outgoing(5).message },
      { seconds: -5, nanos: 0, fields: { "": "x", k: "", "é": "😀".repeat(100), big: "y".repeat(300) }, eventId: "", host: "", message: "z".repeat(20000) },
      { seconds: 0, nanos: 0, fields: {}, eventId: "", host: "", message: "" },
      { seconds: -62135596800, nanos: 999999999, fields: { a: "b" }, eventId: "x".repeat(130), host: "é".repeat(70), message: "" },
      { seconds: 253402300799, nanos: 1, fields: many, eventId: "", host: "", message: "\u2028<&>\n" }
    ]
    for (const c of cases) {
      const expected = Buffer.from(Drop.encode({ timestamp: { seconds: c.seconds, nanos: c.nanos }, fields: c.fields, eventId: c.eventId, host: c.host, message: c.message }).finish())
      assert.isTrue(Buffer.from(encodeDrop(c)).equals(expected), JSON.stringify(c).slice(0, 80))
    }
  })
})

describe("graceful shutdown", () => {
  it.live("closing the server finishes the call in flight (written, then acknowledged) and refuses new ones", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const written: Array<string> = []
      const slowHandler = Layer.succeed(IngestHandler, IngestHandler.of({
        handle: (events) => Effect.sleep("700 millis").pipe(Effect.andThen(Effect.sync(() => void written.push(...events.map((e) => e.fields.SEQ!)))))
      }))
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        IngestServer.layerConfig(serverConfigFor(dir)).pipe(Layer.provide(slowHandler)),
        scope
      )
      const port = Context.get(context, IngestServer).port
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(set.ca.cert), Buffer.from(set.client.key), Buffer.from(set.client.cert)), {
        "grpc.ssl_target_name_override": "droptailer"
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
      const inFlight = yield* Effect.forkChild(rawCall(client, "PushBatch", Buffer.from(DropBatch.encode({ drops: outgoingRange(0, 3).map((e) => Drop.decode(encodeOutgoing(e))) }).finish())))
      yield* Effect.sleep("200 millis")
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Fiber.join(inFlight) // acknowledged, not cut off
      assert.deepStrictEqual(written, ["0", "1", "2"])
      yield* Fiber.join(closing)
      const after = yield* Effect.exit(rawCall(client, "Push", Buffer.from(encodeOutgoing(outgoing(9))), 3000))
      assert.isTrue(Exit.isFailure(after))
      assert.deepStrictEqual(written, ["0", "1", "2"])
    }), 30_000)
})

describe("a retransmit while the original is still being handled", () => {
  it.live("is acknowledged only after the original was written (an ack always means written)", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const log: Array<string> = []
      const slowHandler = Layer.succeed(IngestHandler, IngestHandler.of({
        handle: (events) =>
          Effect.sleep("600 millis").pipe(Effect.andThen(Effect.sync(() => void log.push(`written ${events.length}`))))
      }))
      const context = yield* Layer.build(IngestServer.layerConfig(serverConfigFor(dir)).pipe(Layer.provide(slowHandler)))
      const port = Context.get(context, IngestServer).port
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(set.ca.cert), Buffer.from(set.client.key), Buffer.from(set.client.cert)), {
        "grpc.ssl_target_name_override": "droptailer"
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
      const batch = Buffer.from(DropBatch.encode({ drops: outgoingRange(0, 5, "fw-rt").map((e) => Drop.decode(encodeOutgoing(e))) }).finish())
      const original = yield* Effect.forkChild(rawCall(client, "PushBatch", batch).pipe(Effect.andThen(Effect.sync(() => log.push("original acked")))))
      yield* Effect.sleep("150 millis")
      yield* rawCall(client, "PushBatch", batch)
      log.push("retransmit acked")
      yield* Fiber.join(original)
      assert.deepStrictEqual(log.slice(0, 1), ["written 5"]) // the retransmit's ack came after the write
      assert.include(log, "written 0") // the retransmit itself wrote nothing
      assert.strictEqual(log.filter((l) => l === "written 5").length, 1)
    }), 30_000)
})
