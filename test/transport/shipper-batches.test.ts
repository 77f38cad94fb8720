/**
 * The Shipper's batches: DropBatchWriter frames Drops exactly as the generated DropBatch.encode,
 * and a delivery is cut into PushBatch calls by count and bytes, split when the server finds a call
 * too large, with an event too large to send skipped alone — every other event arriving in order.
 */
import * as grpc from "@grpc/grpc-js"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as fc from "fast-check"
import type { OutgoingEvent } from "../../src/client/EventSink.ts"
import { makeCertSet } from "../../src/transport/Certs.ts"
import { DropBatchWriter, type DropFields } from "../../src/transport/DropEncoder.ts"
import { DropBatch } from "../../src/transport/generated/droptailer.ts"
import { clientBatchesSent, clientEventsRejected } from "../../src/transport/metrics.ts"
import { encodeOutgoing } from "../../src/transport/Shipper.ts"
import { inProcessServer, outgoing, outgoingRange, shipper, shipperConfigFor, writeTempCerts } from "./support.ts"

/** Strings whose UTF-8 length needs a 1-, 2- or 3-byte varint (the frame's length is written in 2 first). */
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 60 }),
  fc.string({ minLength: 100, maxLength: 300 }),
  fc.nat(1000).map((n) => "x".repeat(16_300 + n))
)
const drop: fc.Arbitrary<DropFields> = fc.record({
  seconds: fc.integer({ min: -62135596800, max: 253402300799 }),
  nanos: fc.integer({ min: 0, max: 999_999_999 }),
  fields: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }),
  eventId: fc.string({ maxLength: 50 }),
  host: fc.string({ maxLength: 20 }),
  message: text
})

const generated = (drops: ReadonlyArray<DropFields>): Buffer =>
  Buffer.from(DropBatch.encode({
    drops: drops.map((d) => ({
      timestamp: { seconds: d.seconds, nanos: d.nanos },
      fields: d.fields,
      eventId: d.eventId,
      host: d.host,
      message: d.message
    }))
  }).finish())

describe("DropBatchWriter", () => {
  it("frames the committed Drops byte for byte as DropBatch.encode, and any run of frames is a DropBatch", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(drop, fc.boolean()), { maxLength: 12 }), (cases) => {
        const writer = new DropBatchWriter(1024)
        const kept: Array<DropFields> = []
        for (const [d, keep] of cases) {
          writer.encode(d)
          if (keep) {
            writer.commit()
            kept.push(d)
          }
        }
        assert.isTrue(writer.bytes.equals(generated(kept)))
        assert.strictEqual(writer.ends.length, kept.length)
        for (let from = 0; from < kept.length; from++) {
          const start = from === 0 ? 0 : writer.ends[from - 1]!
          assert.isTrue(writer.bytes.subarray(start, writer.ends[kept.length - 1]).equals(generated(kept.slice(from))))
        }
      }),
      { numRuns: 300 }
    )
  })

  it("keeps earlier frames when its buffer grows", () => {
    const drops = Array.from({ length: 600 }, (_, i) => ({ seconds: i, nanos: 1, fields: { ACTION: "drop" }, eventId: `e${i}`, host: "h", message: "m".repeat(i) }))
    const writer = new DropBatchWriter(0)
    for (const d of drops) {
      writer.encode(d)
      writer.commit()
    }
    assert.isTrue(writer.bytes.equals(generated(drops)))
  })
})

const seqs = (received: ReadonlyArray<{ readonly fields: Readonly<Record<string, string>> }>) => received.map((e) => Number(e.fields.SEQ))
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)
/** An event whose message makes its Drop larger than `bytes`. */
const large = (seq: number, bytes: number): OutgoingEvent => {
  const event = outgoing(seq)
  return { ...event, message: `${event.message} ${"x".repeat(bytes)}` }
}

describe("Shipper batches", () => {
  it.live("cuts a delivery into calls of at most maxBatchEvents events and maxBatchBytes bytes, in order", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const { port, received } = yield* inProcessServer(set)
      const byCount = yield* shipper(shipperConfigFor(dir, port, { maxBatchEvents: 7 }))
      const before = yield* Metric.value(clientBatchesSent)
      yield* byCount.deliver(outgoingRange(0, 100))
      const afterCount = yield* Metric.value(clientBatchesSent)
      assert.strictEqual(afterCount.count - before.count, Math.ceil(100 / 7))
      // events 100 to 159 have Drops of one size: 3 frames fit in exactly 3 frames' bytes, not in one byte less
      const frame = encodeOutgoing(outgoing(100)).length + 3 // tag, 2-byte length
      const exact = yield* shipper(shipperConfigFor(dir, port, { maxBatchBytes: 3 * frame }))
      yield* exact.deliver(outgoingRange(100, 30))
      const afterExact = yield* Metric.value(clientBatchesSent)
      assert.strictEqual(afterExact.count - afterCount.count, 10)
      const under = yield* shipper(shipperConfigFor(dir, port, { maxBatchBytes: 3 * frame - 1 }))
      yield* under.deliver(outgoingRange(130, 30))
      const afterUnder = yield* Metric.value(clientBatchesSent)
      assert.strictEqual(afterUnder.count - afterExact.count, 15)
      assert.deepStrictEqual(seqs(received), range(0, 160))
    }), 30_000)

  it.live("skips (and counts) an event larger than maxEventBytes; the others arrive in order", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const { port, received } = yield* inProcessServer(set)
      const sink = yield* shipper(shipperConfigFor(dir, port, { maxEventBytes: 2000 }))
      const before = yield* Metric.value(clientEventsRejected)
      const events = outgoingRange(0, 20)
      events[5] = large(5, 3000)
      yield* sink.deliver(events)
      const after = yield* Metric.value(clientEventsRejected)
      assert.strictEqual(after.count - before.count, 1)
      assert.deepStrictEqual(seqs(received), range(0, 20).filter((s) => s !== 5))
    }), 30_000)

  it.live("splits a call the server finds too large; an event too large on its own is skipped", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const { port, received } = yield* inProcessServer(set, { maxReceiveBytes: 8000 })
      const sink = yield* shipper(shipperConfigFor(dir, port))
      const before = yield* Metric.value(clientEventsRejected)
      const events = outgoingRange(0, 40)
      events[17] = large(17, 9000)
      yield* sink.deliver(events)
      const after = yield* Metric.value(clientEventsRejected)
      assert.strictEqual(after.count - before.count, 1)
      assert.deepStrictEqual(seqs(received), range(0, 40).filter((s) => s !== 17))
    }), 30_000)

  it.live("calls capture no caller stack (grpc-js's per-call Error) and leave Error.stackTraceLimit as they found it, failed calls included", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      // calls of more than 8000 bytes fail (RESOURCE_EXHAUSTED) and are split: failures travel as before
      const { port, received } = yield* inProcessServer(set, { maxReceiveBytes: 8000 })
      const sink = yield* shipper(shipperConfigFor(dir, port))
      const limit = Error.stackTraceLimit
      const makeUnaryRequest = grpc.Client.prototype.makeUnaryRequest
      const limitsSeen: Array<number> = []
      try {
        grpc.Client.prototype.makeUnaryRequest = function(this: grpc.Client, ...args: Array<unknown>) {
          limitsSeen.push(Error.stackTraceLimit)
          return (makeUnaryRequest as (...a: Array<unknown>) => grpc.ClientUnaryCall).apply(this, args)
        } as typeof makeUnaryRequest
        Error.stackTraceLimit = 17
        yield* sink.deliver(outgoingRange(0, 60))
        assert.strictEqual(Error.stackTraceLimit, 17)
      } finally {
        Error.stackTraceLimit = limit
        grpc.Client.prototype.makeUnaryRequest = makeUnaryRequest
      }
      assert.deepStrictEqual(seqs(received), range(0, 60))
      assert.isAbove(limitsSeen.length, 1) // split after RESOURCE_EXHAUSTED
      assert.deepStrictEqual([...new Set(limitsSeen)], [0])
    }), 30_000)
})
