/**
 * The client: journal entries → classify + parse → batches → EventSink → checkpoint.
 *
 *     JournalSource.follow ─▶ parseLine ─▶ Batcher (everything read since the last delivery started,
 *     ≤ size) ─▶ deliver (n in flight, results in journal order) ─▶ CheckpointStore.advance(last
 *     cursor of the batch)
 *
 * At-least-once: the checkpoint moves past a batch only after `deliver` completed for it and for
 * every batch before it (mapEffect with concurrency keeps the order). Skipped and malformed entries
 * travel in the batches too, so the checkpoint also moves past them.
 * Backpressure: when the sink is slow, at most `inFlight` batches in flight plus, in the Batcher,
 * fewer than `batchSize` entries and the last chunk read (and the pipe and read-ahead buffers) are
 * held; the reader waits, journalctl blocks on its stdout, memory stays flat.
 */
import { Context, Deferred, Effect, Fiber, Layer, Metric, Stream } from "effect"
import type { Prefixes } from "../domain/Parser.ts"
import { CheckpointStore } from "../journal/CheckpointStore.ts"
import { JournalSource, type StartPosition } from "../journal/JournalSource.ts"
import { cursorLostResets } from "../journal/metrics.ts"
import { logThrottled } from "../observability/LogThrottle.ts"
import { type Batch, Batcher } from "./Batcher.ts"
import { EventSink } from "./EventSink.ts"
import { acceptEvents, batchSize as batchEntries, dropEvents, eventsAcknowledged, malformedLines, skippedLines } from "./metrics.ts"

export interface PipelineOptions {
  readonly prefixes: Prefixes
  /** Where to start when no checkpoint was saved. */
  readonly start: StartPosition
  /**
   * Most journal entries per batch. Default 500: with 2000 (or 1000), end to end over 100k
   * entries, batches of 800-1,700 entries took less client and server CPU per event in most
   * alternated pairs (server ~5-15 %) and p99 latency did not move, but the client's heap peaked
   * at 160-215 MB instead of ~95 MB in about half the runs (more events alive until acknowledged).
   */
  readonly batchSize?: number | undefined
  /** On interruption, how long batches in flight may take to be acknowledged. Default 3000. */
  readonly drainMillis?: number | undefined
  /** Batches being delivered at the same time. Default 4. */
  readonly inFlight?: number | undefined
}

/**
 * A batch that is not full starts only while fewer than this many are outstanding (delivering, or
 * delivered and waiting for an older one); full batches use every slot (inFlight). With 2, at low
 * load each read still goes out at once (the previous delivery is long done), while under load the
 * entries read during a delivery coalesce. Measured end to end over 100k entries with
 * DROPTAILER_BATCH_SIZE=2000 (bench/e2e.ts, alternated with the old code on a shared machine):
 * batches of 450-1,700 entries on average instead of 305-415 (waiting only while every slot is
 * busy gave 550-980: the four slots are seldom all busy). With 1 (one small batch at a time, Nagle's rule) batches reached ~1,900 but the client's
 * heap peaked at 150-210 MB instead of ~100, for no CPU gain.
 */
const eagerBatches = 2

export class ClientPipeline extends Context.Service<ClientPipeline, {
  /** Ships journal entries until interrupted. Never fails. */
  readonly run: Effect.Effect<void>
}>()("droptailer/client/ClientPipeline") {
  static readonly layerWith = (options: PipelineOptions) =>
    Layer.effect(
      ClientPipeline,
      Effect.gen(function*() {
        const source = yield* JournalSource
        const checkpoint = yield* CheckpointStore
        const sink = yield* EventSink

        const startPosition = Effect.gen(function*() {
          const saved = checkpoint.saved
          switch (saved._tag) {
            case "Saved":
              return { _tag: "AfterCursor", cursor: saved.position.cursor } as const
            case "Corrupt":
              yield* Metric.update(cursorLostResets, 1)
              yield* Effect.logWarning("no usable checkpoint; reading the journal from the oldest entry")
              return { _tag: "Oldest" } as const
            case "None":
              return options.start
          }
        })

        const deliverBatch = Effect.fnUntraced(function*(batch: Batch) {
          const events = batch.events
          const drops = batch.drops
          const malformed = batch.malformed?.length ?? 0
          if (batch.malformed !== undefined) {
            for (const line of batch.malformed) {
              yield* logThrottled("Warning", "client.malformed-line", "malformed firewall log line", {
                reason: line.reason,
                cursor: line.cursor
              })
            }
          }
          yield* Metric.update(batchEntries, batch.entries)
          if (drops > 0) yield* Metric.update(dropEvents, drops)
          if (events.length - drops > 0) yield* Metric.update(acceptEvents, events.length - drops)
          if (malformed > 0) yield* Metric.update(malformedLines, malformed)
          const skipped = batch.entries - events.length - malformed
          if (skipped > 0) yield* Metric.update(skippedLines, skipped)
          if (events.length > 0) {
            yield* sink.deliver(events)
            yield* Metric.update(eventsAcknowledged, events.length)
          }
          return batch.last!
        })

        const batchSize = options.batchSize ?? 500
        const drainMillis = options.drainMillis ?? 3000
        const run = Effect.gen(function*() {
          const start = yield* startPosition
          yield* Effect.logInfo("following the journal").pipe(Effect.annotateLogs({ start: JSON.stringify(start) }))
          const stopReading = yield* Deferred.make<void>()
          const batcher = new Batcher(options.prefixes, batchSize, eagerBatches)
          // The reader: adds what journalctl wrote to the batcher as it comes (a slot parses it
          // when it takes it), and waits while a full batch waits for a slot (backpressure). On SIGTERM only the reading stops:
          // what was read is still delivered and checkpointed.
          const reader = source.follow(start).pipe(
            Stream.interruptWhen(Deferred.await(stopReading)),
            Stream.runForEachArray(batcher.offer),
            Effect.onExit((exit) => Effect.sync(() => batcher.end(exit)))
          )
          // The slots: each pull takes everything read since the previous one (at most batchSize
          // entries), so batches grow with the load while the slots are busy, without a timer.
          // mapEffect pulls the next batch only when fewer than inFlight deliveries are
          // outstanding, and emits the results in journal order; the Batcher hands out a batch
          // that is not full only while fewer than eagerBatches are outstanding (settle: one
          // fewer, once checkpointed).
          // Measured over 100k journal entries: Stream.groupedWithin here (a forked
          // pull fiber, a queue and a timer race per group) and Stream.flattenIterable (an inner
          // stream per group) made the V8 heap grow from ~105 to ~220 MB (objects promoted to
          // the old generation in bulk; the live heap stayed ~37 MB) and cost a third of the
          // throughput; the Batcher is plain state and one callback per wait.
          const pipeline = Effect.gen(function*() {
            yield* Effect.forkChild(reader)
            yield* Stream.fromPull(Effect.succeed(batcher.take)).pipe(
              Stream.mapEffect(deliverBatch, { concurrency: options.inFlight ?? 4 }),
              Stream.runForEach((position) => {
                batcher.settle()
                return checkpoint.advance(position)
              })
            )
          })
          const fiber = yield* Effect.forkDetach(pipeline)
          yield* Fiber.join(fiber).pipe(
            Effect.onInterrupt(() =>
              Effect.gen(function*() {
                // Drain: stop reading, let the batches in flight be acknowledged (bounded, so a
                // dead server cannot hold up the exit), then the checkpoint store saves on close.
                yield* Deferred.succeed(stopReading, undefined)
                const drained = yield* Effect.exit(Fiber.join(fiber)).pipe(Effect.timeoutOption(drainMillis))
                if (drained._tag === "None") {
                  yield* Effect.logWarning(`batches still unacknowledged after ${drainMillis} ms; they will be re-read`)
                }
                yield* Fiber.interrupt(fiber)
              })
            )
          )
        })

        return ClientPipeline.of({ run })
      })
    )
}
