/**
 * The server pipeline: enrich → write → Events and namespace metrics. The Events sink and the
 * metrics see a batch only once it is written, and they see it enriched.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric } from "effect"
import type { DropEvent, Endpoint } from "../../src/domain/DropEvent.ts"
import { Enricher } from "../../src/k8s/Enricher.ts"
import { EventsSink, PendingKinds } from "../../src/k8s/EventsSink.ts"
import { IngestHandler } from "../../src/server/IngestHandler.ts"
import { serverEventsByNamespace, serverPipelineLayer } from "../../src/server/ServerPipeline.ts"
import { drop } from "../support/kube-fixtures.ts"

const web: Endpoint = { ip: "10.0.0.2", kind: "pod", namespace: "pipeline-test", name: "web" }

const db: Endpoint = { ip: "10.0.0.3", kind: "pod", namespace: "pipeline-db", name: "db" }

/** Enriches 10.0.0.2 as the pod `web`, 10.0.0.3 as the pod `db`, every other address as external. */
const enrichment = (e: Endpoint): Endpoint => {
  const pod = e.ip === web.ip ? web : e.ip === db.ip ? db : undefined
  return pod === undefined ? { ...e, kind: "external" } : { ...pod, ...(e.port === undefined ? {} : { port: e.port }) }
}
const enricher = Layer.succeed(
  Enricher,
  Enricher.of({
    enrich: (e) => ({ ...e, src: enrichment(e.src), dst: enrichment(e.dst) }),
    enrichAll: (events) => Effect.succeed(events.map((e) => ({ ...e, src: enrichment(e.src), dst: enrichment(e.dst) }))),
    synced: Effect.succeed(true)
  })
)

/** What the Events sink counts from `events`: per kind of Event, its count, first and last drop. */
const view = (pending: PendingKinds) =>
  [...pending.aggregates.values()].map((a) => ({ key: a.kind.key, message: a.kind.message, count: a.total, first: a.first, last: a.last }))
const counted = (events: ReadonlyArray<DropEvent>) => {
  const pending = new PendingKinds({ max: 100, intervalMillis: 60_000, withAccepts: false })
  pending.add(events, 0)
  return pending
}

/** Runs one batch through the pipeline; `fail` makes the write die. Returns what happened, in order. */
const run = (batch: ReadonlyArray<DropEvent>, fail: boolean) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const written: Array<ReadonlyArray<DropEvent>> = []
    const offered = new PendingKinds({ max: 100, intervalMillis: 60_000, withAccepts: false })
    const sink = Layer.succeed(
      EventsSink,
      EventsSink.of({
        offer: () => Effect.void,
        offerAll: (events) =>
          Effect.sync(() => {
            log.push("offer")
            offered.add(events, 0)
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
const namespaceCount = Effect.map(Metric.value(series), (s) => s.count)

/** The namespace counts of the series the mixed batch below touches. */
const mixedCounts = Effect.forEach(
  [["drop", "none", "pipeline-test"], ["drop", "pipeline-db", "pipeline-test"], ["accept", "pipeline-test", "pipeline-db"], ["drop", "pipeline-test", "none"]],
  ([action, src, dst]) =>
    Effect.map(
      Metric.value(Metric.withAttributes(serverEventsByNamespace, { action: action!, src_namespace: src!, dst_namespace: dst! })),
      (s) => s.count
    )
)

const batch: ReadonlyArray<DropEvent> = Array.from({ length: 12 }, (_, i) =>
  drop({ src: `203.0.113.${i % 3}`, dst: web.ip!, dport: i % 2 === 0 ? 80 : 443, timestamp: 1_000_000 + i }))

describe("server pipeline", () => {
  it.effect("counts the Events of the enriched batch and counts its namespaces once it is written", () =>
    Effect.gen(function*() {
      const before = yield* namespaceCount
      const { exit, log, offered, written } = yield* run(batch, false)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(log).toEqual(["write", "offer"])
      expect(view(offered)).toEqual(view(counted(written[0]!)))
      expect(offered.counted).toBe(batch.length)
      expect((yield* namespaceCount) - before).toBe(batch.length)
    }))

  it.effect("counts each (action, source and destination namespace) of a mixed batch, batch after batch", () =>
    Effect.gen(function*() {
      // runs and interleavings of four series
      const mixed = [
        ...[1, 2, 3, 4, 5, 6, 7].map((i) => drop({ src: `203.0.113.${i}`, dst: web.ip! })),
        drop({ src: db.ip!, dst: web.ip! }),
        drop({ src: web.ip!, dst: db.ip!, action: "accept" }),
        drop({ src: db.ip!, dst: web.ip! }),
        drop({ src: web.ip!, dst: "198.51.100.1" }),
        drop({ src: "203.0.113.9", dst: web.ip! }),
        drop({ src: web.ip!, dst: db.ip!, action: "accept" })
      ]
      for (let round = 1; round <= 3; round++) {
        const before = yield* mixedCounts
        const { exit } = yield* run(mixed, false)
        expect(Exit.isSuccess(exit)).toBe(true)
        const after = yield* mixedCounts
        expect(after.map((n, i) => n - before[i]!)).toEqual([8, 2, 2, 1])
      }
    }))

  it.effect("a batch whose write fails counts no Events and counts nothing", () =>
    Effect.gen(function*() {
      const before = yield* namespaceCount
      const { exit, log, offered } = yield* run(batch, true)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(log).toEqual(["write"])
      expect(offered.counted).toBe(0)
      expect((yield* namespaceCount) - before).toBe(0)
    }))
})
