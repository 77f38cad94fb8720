/**
 * The server pipeline behind `IngestHandler`: enrich → one stdout line per event → Kubernetes
 * Events and the namespace metrics. Enrichment is an in-memory lookup and the Events sink only
 * counts in memory, so neither can delay a call's acknowledgement: that waits for stdout alone.
 */
import { Effect, Layer, Metric } from "effect"
import type { DropEvent } from "../domain/DropEvent.ts"
import { Enricher } from "../k8s/Enricher.ts"
import { EventsSink } from "../k8s/EventsSink.ts"
import { counterSeries } from "../k8s/metrics.ts"
import { BoundedLabel, type SeriesCount } from "../transport/metrics.ts"
import { IngestHandler } from "./IngestHandler.ts"

export const serverEventsByNamespace = Metric.counter("droptailer_server_events_by_namespace_total", {
  description: "Events written, by action and the source and destination namespace (pods and services; "
    + "`none` for nodes and external addresses; at most 100 namespaces per label, then `other`)",
  incremental: true
})

const srcNamespaces = new BoundedLabel(100)
const dstNamespaces = new BoundedLabel(100)

/**
 * The count of each (action, src namespace, dst namespace) as the events hold them (undefined:
 * none), found with a Map lookup per string instead of a key built (and hashed) per event. A cache
 * of the series (each a counter of its own, see counterSeries): it starts over beyond `maxCounts`.
 */
const counts = new Map<string, Map<string | undefined, Map<string | undefined, SeriesCount>>>()
let countsSize = 0
const maxCounts = 10_000

const countOf = (action: string, srcRaw: string | undefined, dstRaw: string | undefined): SeriesCount => {
  let bySrc = counts.get(action)
  if (bySrc === undefined) {
    bySrc = new Map()
    counts.set(action, bySrc)
  }
  let byDst = bySrc.get(srcRaw)
  if (byDst === undefined) {
    byDst = new Map()
    bySrc.set(srcRaw, byDst)
  }
  let count = byDst.get(dstRaw)
  if (count === undefined) {
    const src = srcNamespaces.value(srcRaw ?? "none")
    const dst = dstNamespaces.value(dstRaw ?? "none")
    count = { series: counterSeries(serverEventsByNamespace, { action, src_namespace: src, dst_namespace: dst }), n: 0 }
    byDst.set(dstRaw, count)
    countsSize++
  }
  return count
}

/** One metric update per distinct (action, src namespace, dst namespace); runs of equal ones are cheap. */
const countByNamespace = (events: ReadonlyArray<DropEvent>): Effect.Effect<void> => {
  if (countsSize >= maxCounts) {
    counts.clear()
    countsSize = 0
  }
  const touched: Array<SeriesCount> = []
  let last: SeriesCount | undefined
  let lastAction = ""
  let lastSrc: string | undefined
  let lastDst: string | undefined
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    const srcRaw = event.src.namespace
    const dstRaw = event.dst.namespace
    if (last !== undefined && event.action === lastAction && srcRaw === lastSrc && dstRaw === lastDst) {
      last.n++
      continue
    }
    last = countOf(event.action, srcRaw, dstRaw)
    if (last.n === 0) touched.push(last)
    last.n++
    lastAction = event.action
    lastSrc = srcRaw
    lastDst = dstRaw
  }
  // the counts start from zero for the next batch, whatever becomes of these updates
  const updates = touched.map((count) => {
    const update = Metric.update(count.series, count.n)
    count.n = 0
    return update
  })
  return Effect.all(updates, { discard: true })
}

/**
 * Wraps the output handler (stdout) with enrichment before it and Events after it.
 * Requires the output as `IngestHandler`; provides the full pipeline as `IngestHandler`.
 */
export const serverPipelineLayer = (
  output: Layer.Layer<IngestHandler>
): Layer.Layer<IngestHandler, never, Enricher | EventsSink> =>
  Layer.effect(
    IngestHandler,
    Effect.gen(function*() {
      const enricher = yield* Enricher
      const events = yield* EventsSink
      const print = yield* Effect.provide(Effect.service(IngestHandler), output)
      return IngestHandler.of({
        handle: (batch) =>
          enricher.enrichAll(batch).pipe(
            Effect.tap((enriched) => print.handle(enriched)),
            Effect.tap((enriched) => events.offerAll(enriched)),
            Effect.flatMap(countByNamespace)
          )
      })
    })
  )
