/**
 * The pipeline over the real journal, in-process: the checkpoint moves past skipped entries, so a
 * restart does not read them again.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import { NodeServices } from "@effect/platform-node"
import { expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric } from "effect"
import { ClientPipeline } from "../../src/client/ClientPipeline.ts"
import { EventSink, type OutgoingEvent } from "../../src/client/EventSink.ts"
import { defaultPrefixes } from "../../src/domain/Parser.ts"
import { CheckpointStore } from "../../src/journal/CheckpointStore.ts"
import { JournalSource } from "../../src/journal/JournalSource.ts"
import { journalEntriesRead } from "../../src/journal/metrics.ts"
import { describeWith } from "../support/environment.ts"
import { dropLine, makeStateDirectory, uniqueMarker, waitFor, writeViaLogger } from "../support/journal.ts"

const lastCursor = (identifier: string): string =>
  execFileSync("journalctl", ["-o", "export", "--output-fields=MESSAGE", "-n", "1", `SYSLOG_IDENTIFIER=${identifier}`], {
    encoding: "utf8"
  }).split("\n")[0]!.slice("__CURSOR=".length)

/** Runs the pipeline until `until` holds, then interrupts it (the checkpoint finalizer saves). */
const runPipeline = (identifier: string, stateDirectory: string, until: (delivered: Array<OutgoingEvent>, checkpointed: string | undefined) => boolean) =>
  Effect.gen(function*() {
    const delivered: Array<OutgoingEvent> = []
    let checkpointed: string | undefined
    const sink = Layer.succeed(EventSink, EventSink.of({ deliver: (batch) => Effect.sync(() => void delivered.push(...batch)) }))
    const layer = ClientPipeline.layerWith({ prefixes: defaultPrefixes, start: { _tag: "Oldest" } }).pipe(
      Layer.provideMerge(Layer.mergeAll(
        JournalSource.layerWith({ matches: [`SYSLOG_IDENTIFIER=${identifier}`] }).pipe(Layer.provide(NodeServices.layer)),
        CheckpointStore.layerWith({ directory: stateDirectory }),
        sink
      ))
    )
    const fiber = yield* Effect.gen(function*() {
      const pipeline = yield* ClientPipeline
      const checkpoint = yield* CheckpointStore
      yield* Effect.forkChild(Effect.forever(
        checkpoint.current.pipe(
          Effect.tap((c) => Effect.sync(() => (checkpointed = c._tag === "Some" ? c.value.cursor : undefined))),
          Effect.andThen(Effect.sleep("20 millis"))
        )
      ))
      yield* pipeline.run
    }).pipe(Effect.provide(layer), Effect.forkChild)
    yield* Effect.promise(() => waitFor("the pipeline", () => until(delivered, checkpointed), 30_000))
    yield* Fiber.interrupt(fiber)
    return delivered
  })

describeWith(["root", "journald"], "ClientPipeline on the real journal", () => {
  it.live("the checkpoint moves past 10,000 skipped entries: after a restart none of them is read again", () =>
    Effect.gen(function*() {
      const identifier = uniqueMarker("skip")
      const stateDirectory = makeStateDirectory()
      yield* Effect.promise(() =>
        writeViaLogger(identifier, [
          dropLine("nftables-metal-dropped: ", 1),
          ...Array.from({ length: 10_000 }, (_, i) => `some other kernel line ${i}`)
        ])
      )
      const last = lastCursor(identifier)
      const first = yield* runPipeline(identifier, stateDirectory, (delivered, checkpointed) => delivered.length === 1 && checkpointed === last)
      expect(first.map((e) => e.event.src.ip)).toEqual(["10.0.0.1"])
      const saved = JSON.parse(Fs.readFileSync(`${stateDirectory}/journal-cursor.json`, "utf8"))
      expect(saved.cursor).toBe(last) // the last skipped entry

      yield* Effect.promise(() => writeViaLogger(identifier, [dropLine("nftables-metal-dropped: ", 2)]))
      const readBefore = (yield* Metric.value(journalEntriesRead)).count
      const second = yield* runPipeline(identifier, stateDirectory, (delivered) => delivered.length === 1)
      expect(second.map((e) => e.event.src.ip)).toEqual(["10.0.0.2"])
      expect((yield* Metric.value(journalEntriesRead)).count - readBefore).toBe(1)
    }))

  it.live("backpressure: with a sink that does not acknowledge, reading stops after a bounded number of entries", () =>
    Effect.gen(function*() {
      const identifier = uniqueMarker("stall")
      const total = 40_000
      for (let n = 0; n < total; n += 10_000) {
        yield* Effect.promise(() =>
          writeViaLogger(identifier, Array.from({ length: 10_000 }, (_, i) => dropLine("nftables-metal-dropped: ", n + i)))
        )
      }
      let offered = 0
      const stalled = Layer.succeed(EventSink, EventSink.of({
        deliver: (batch) => Effect.andThen(Effect.sync(() => void (offered += batch.length)), Effect.never)
      }))
      const layer = ClientPipeline.layerWith({ prefixes: defaultPrefixes, start: { _tag: "Oldest" } }).pipe(
        Layer.provide(Layer.mergeAll(
          JournalSource.layerWith({ matches: [`SYSLOG_IDENTIFIER=${identifier}`] }).pipe(Layer.provide(NodeServices.layer)),
          CheckpointStore.layerWith({ directory: makeStateDirectory() }),
          stalled
        ))
      )
      const readBefore = (yield* Metric.value(journalEntriesRead)).count
      const fiber = yield* Effect.gen(function*() {
        const pipeline = yield* ClientPipeline
        yield* pipeline.run
      }).pipe(Effect.provide(layer), Effect.forkChild)
      yield* Effect.sleep("3 seconds")
      const readAfter3s = (yield* Metric.value(journalEntriesRead)).count - readBefore
      yield* Effect.sleep("1 second")
      const readAfter4s = (yield* Metric.value(journalEntriesRead)).count - readBefore
      yield* Fiber.interrupt(fiber)
      console.log(`stalled sink: ${offered} events offered in the batches in flight, ${readAfter4s} of ${total} entries read`)
      expect(offered).toBeGreaterThan(0)
      expect(offered).toBeLessThanOrEqual(4 * 500) // at most inFlight batches of batchSize, none acknowledged
      expect(readAfter4s).toBe(readAfter3s) // reading has stopped
      expect(readAfter4s).toBeLessThan(total / 2) // bounded, far from the whole backlog
    }))
})
