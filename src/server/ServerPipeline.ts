/**
 * The server pipeline behind `IngestHandler`: enrich → one stdout line per event → Kubernetes
 * Events and the namespace metrics. Enrichment is an in-memory lookup and the Events sink only
 * enqueues, so neither can delay a call's acknowledgement: that waits for stdout alone.
 */
import { Effect, Layer, Metric } from "effect"
import type { DropEvent } from "../domain/DropEvent.ts"
import { Enricher } from "../k8s/Enricher.ts"
import { EventsSink } from "../k8s/EventsSink.ts"
import { AttributedMetrics, BoundedLabel, type SeriesCount } from "../transport/metrics.ts"
import { IngestHandler } from "./IngestHandler.ts"

export const serverEventsByNamespace = Metric.counter("droptailer_server_events_by_namespace_total", {
  description: "Events written, by action and the source and destination namespace (pods and services; "
    + "`none` for nodes and external addresses; at most 100 namespaces per label, then `other`)",
  incremental: true
})

const srcNamespaces = new BoundedLabel(100)
const dstNamespaces = new BoundedLabel(100)
const namespaceSeries = new AttributedMetrics(serverEventsByNamespace)

/** One metric update per distinct (action, src namespace, dst namespace); runs of equal keys are cheap. */
const countByNamespace = (events: ReadonlyArray<DropEvent>): Effect.Effect<void> => {
  const counts = new Map<string, SeriesCount>()
  let last: SeriesCount | undefined
  let lastAction = ""
  let lastSrc: string | undefined
  let lastDst: string | undefined
  for (const event of events) {
    const srcRaw = event.src.namespace
    const dstRaw = event.dst.namespace
    if (last !== undefined && event.action === lastAction && srcRaw === lastSrc && dstRaw === lastDst) {
      last.n++
      continue
    }
    const src = srcNamespaces.value(srcRaw ?? "none")
    const dst = dstNamespaces.value(dstRaw ?? "none")
    const key = `${event.action}\u0000${src}\u0000${dst}`
    let entry = counts.get(key)
    if (entry === undefined) {
      entry = { series: namespaceSeries.get(key, { action: event.action, src_namespace: src, dst_namespace: dst }), n: 0 }
      counts.set(key, entry)
    }
    entry.n++
    last = entry
    lastAction = event.action
    lastSrc = srcRaw
    lastDst = dstRaw
  }
  return Effect.forEach(
    counts.values(),
    ({ n, series }) => Metric.update(series, n),
    { discard: true }
  )
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
