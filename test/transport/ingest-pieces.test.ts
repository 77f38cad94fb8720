/**
 * The server builds and hands over a call's events in pieces (256 events; 64 with a dedup file),
 * each piece's events let go before the next is built. What that must not change: every event
 * handed over once and in order, the whole call's ids in the window before anything is written
 * (a retransmit meanwhile waits, and writes nothing twice), the ack only after everything was
 * written. And when a piece fails: the call is refused, and a retransmit writes exactly the events
 * of the pieces not written (those written stay in the window).
 */
import { assert, describe, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import { Context, Effect, Exit, Fiber, Layer } from "effect"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { IngestHandler } from "../../src/server/IngestHandler.ts"
import { makeCertSet } from "../../src/transport/Certs.ts"
import { Drop, DropBatch } from "../../src/transport/generated/droptailer.ts"
import { IngestServer } from "../../src/transport/IngestServer.ts"
import { encodeOutgoing } from "../../src/transport/Shipper.ts"
import { outgoingRange, rawCall, serverConfigFor, writeTempCerts } from "./support.ts"

const batchOf = (from: number, count: number, host = "fw-p"): Buffer =>
  Buffer.from(DropBatch.encode({ drops: outgoingRange(from, count, host).map((e) => Drop.decode(encodeOutgoing(e))) }).finish())

const seqs = (events: ReadonlyArray<DropEvent>): Array<number> => events.map((e) => Number(e.fields.SEQ))

const range = (from: number, count: number): Array<number> => Array.from({ length: count }, (_, i) => from + i)

/** A server with `handle` as its handler, and a client to it. */
const serverWith = (handle: (events: ReadonlyArray<DropEvent>) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const set = yield* makeCertSet()
    const dir = yield* writeTempCerts(set)
    const context = yield* Layer.build(
      IngestServer.layerConfig({ ...serverConfigFor(dir), dedupWindow: 100_000 }).pipe(Layer.provide(Layer.succeed(IngestHandler, IngestHandler.of({ handle }))))
    )
    const port = Context.get(context, IngestServer).port
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(set.ca.cert), Buffer.from(set.client.key), Buffer.from(set.client.cert)), {
      "grpc.ssl_target_name_override": "droptailer",
      "grpc.max_send_message_length": 64 * 1024 * 1024
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
    return client
  })

describe("a call's events, handed over in pieces", () => {
  it.live("are all handed over once, in order, in pieces of at most 256", () =>
    Effect.scoped(Effect.gen(function*() {
      const pieces: Array<Array<number>> = []
      const client = yield* serverWith((events) => Effect.sync(() => void pieces.push(seqs(events))))
      yield* rawCall(client, "PushBatch", batchOf(0, 1000))
      assert.deepStrictEqual(pieces.map((p) => p.length), [256, 256, 256, 232])
      assert.deepStrictEqual(pieces.flat(), range(0, 1000))
      // a repeat inside one batch and a retransmit of part of the first: written once each
      const mixed = Buffer.concat([batchOf(1000, 300), batchOf(1100, 10), batchOf(990, 20)])
      yield* rawCall(client, "PushBatch", mixed)
      assert.deepStrictEqual(pieces.slice(4).flat(), range(1000, 300))
    })), 60_000)

  it.live("a failed piece: the call is refused; its retransmit writes exactly the pieces not written", () =>
    Effect.scoped(Effect.gen(function*() {
      const written: Array<number> = []
      let calls = 0
      const client = yield* serverWith((events) =>
        Effect.suspend(() => {
          calls++
          // the third piece of the first call cannot be written
          if (calls === 3) return Effect.die(new Error("stdout gone"))
          return Effect.sync(() => void written.push(...seqs(events)))
        })
      )
      const first = yield* Effect.exit(rawCall(client, "PushBatch", batchOf(0, 1000)))
      assert.isTrue(Exit.isFailure(first))
      assert.deepStrictEqual(written, range(0, 512))
      yield* rawCall(client, "PushBatch", batchOf(0, 1000))
      assert.deepStrictEqual(written, range(0, 1000))
      // and once more: all duplicates now
      yield* rawCall(client, "PushBatch", batchOf(0, 1000))
      assert.deepStrictEqual(written, range(0, 1000))
    })), 60_000)

  it.live("a retransmit while the pieces are being written: acknowledged after them, writes nothing twice", () =>
    Effect.scoped(Effect.gen(function*() {
      const log: Array<string> = []
      const written: Array<number> = []
      const client = yield* serverWith((events) =>
        Effect.sleep("150 millis").pipe(Effect.andThen(Effect.sync(() => {
          written.push(...seqs(events))
          log.push(`written ${events.length}`)
        })))
      )
      const original = yield* Effect.forkChild(
        rawCall(client, "PushBatch", batchOf(0, 600)).pipe(Effect.andThen(Effect.sync(() => log.push("original acked"))))
      )
      yield* Effect.sleep("200 millis") // (the first piece written, the others not yet)
      // the same events and 100 new ones
      yield* rawCall(client, "PushBatch", batchOf(0, 700))
      log.push("retransmit acked")
      yield* Fiber.join(original)
      assert.deepStrictEqual(written.slice().sort((a, b) => a - b), range(0, 700))
      // every piece of the original was written before the retransmit was acknowledged
      const ack = log.indexOf("retransmit acked")
      assert.strictEqual(log.slice(0, ack).filter((l) => l !== "original acked" && l !== "written 100").length, 3)
    })), 60_000)
})
