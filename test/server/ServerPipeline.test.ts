/**
 * The server pipeline: enrich → write → Events and namespace metrics. The Events sink and the
 * metrics see a batch only once it is written, and they see it enriched.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric } from "effect"
import type { DropEvent, Endpoint } from "../../src/domain/DropEvent.ts"
import { Enricher } from "../../src/k8s/Enricher.ts"
import { EventsSink, type Occurrence, occurrencesOf } from "../../src/k8s/EventsSink.ts"
import { IngestHandler } from "../../src/server/IngestHandler.ts"
import { serverEventsByNamespace, serverPipelineLayer } from "../../src/server/ServerPipeline.ts"
import { drop } from "../support/kube-fixtures.ts"

const web: Endpoint = { ip: "10.0.0.2", kind: "pod", namespace: "pipeline-test", name: "web" }

/** Enriches the destination 10.0.0.2 as the pod `web`, every other address as external. */
const enrichment = (e: Endpoint): Endpoint =>
  e.ip === web.ip ? { ...web, ...(e.port === undefined ? {} : { port: e.port }) } : { ...e, kind: "external" }
const enricher = Layer.succeed(
  Enricher,
  Enricher.of({
    enrich: (e) => ({ ...e, src: enrichment(e.src), dst: enrichment(e.dst) }),
    enrichAll: (events) => Effect.succeed(events.map((e) => ({ ...e, src: enrichment(e.src), dst: enrichment(e.dst) }))),
    synced: Effect.succeed(true)
  })
)

const view = (occurrences: ReadonlyArray<Occurrence>) =>
  occurrences.map((o) => ({ key: o.kind.key, message: o.kind.message, count: o.count, first: o.first, last: o.last }))

/** Runs one batch through the pipeline; `fail` makes the write die. Returns what happened, in order. */
const run = (batch: ReadonlyArray<DropEvent>, fail: boolean) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const written: Array<ReadonlyArray<DropEvent>> = []
    const offered: Array<Occurrence> = []
    const sink = Layer.succeed(
      EventsSink,
      EventsSink.of({
        offer: () => Effect.void,
        offerAll: (events) =>
          Effect.sync(() => {
            log.push("offer")
            offered.push(...occurrencesOf(events, false))
          }),
        flush: Effect.void,
        stats: Effect.succeed({ offered: 0, posted: 0, patched: 0, suppressed: 0, pending: 0 })
      })
    )
    const output = Layer.succeed(
      IngestHandler,
      IngestHandler.of({
        handle: (events) =>
          Effect.suspend(() => {
            log.push("write")
            written.push(events)
            return fail ? Effect.die("stdout is gone") : Effect.void
          })
      })
    )
    const pipeline = yield* Effect.provide(
      Effect.service(IngestHandler),
      serverPipelineLayer(output).pipe(Layer.provide(Layer.mergeAll(enricher, sink)))
    )
    const exit = yield* Effect.exit(pipeline.handle(batch))
    return { exit, log, written, offered }
  })

const series = Metric.withAttributes(serverEventsByNamespace, {
  action: "drop",
  src_namespace: "none",
  dst_namespace: "pipeline-test"
})
const counted = Effect.map(Metric.value(series), (s) => s.count)

const batch: ReadonlyArray<DropEvent> = Array.from({ length: 12 }, (_, i) =>
  drop({ src: `203.0.113.${i % 3}`, dst: web.ip!, dport: i % 2 === 0 ? 80 : 443, timestamp: 1_000_000 + i }))

describe("server pipeline", () => {
  it.effect("queues the Events of the enriched batch and counts its namespaces once it is written", () =>
    Effect.gen(function*() {
      const before = yield* counted
      const { exit, log, offered, written } = yield* run(batch, false)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(log).toEqual(["write", "offer"])
      expect(view(offered)).toEqual(view(occurrencesOf(written[0]!, false)))
      expect(offered.map((o) => o.count).reduce((a, b) => a + b)).toBe(batch.length)
      expect((yield* counted) - before).toBe(batch.length)
    }))

  it.effect("a batch whose write fails queues no Events and counts nothing", () =>
    Effect.gen(function*() {
      const before = yield* counted
      const { exit, log, offered } = yield* run(batch, true)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(log).toEqual(["write"])
      expect(offered).toEqual([])
      expect((yield* counted) - before).toBe(0)
    }))
})
