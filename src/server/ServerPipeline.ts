/**
 * The server pipeline behind `IngestHandler`: enrich → one stdout line per event → Kubernetes
 * Events and the namespace metrics. Enrichment is an in-memory lookup and the Events sink only
 * enqueues, so neither can delay a call's acknowledgement: that waits for stdout alone.
 */
import { Effect, Layer, Metric } from "effect"
import type { DropEvent } from "../domain/DropEvent.ts"
import { Enricher } from "../k8s/Enricher.ts"
import { EventsSink } from "../k8s/EventsSink.ts"
import { BoundedLabel } from "../transport/metrics.ts"
import { IngestHandler } from "./IngestHandler.ts"

export const serverEventsByNamespace = Metric.counter("droptailer_server_events_by_namespace_total", {
  description: "Events written, by action and the source and destination namespace (pods and services; "
    + "`none` for nodes and external addresses; at most 100 namespaces per label, then `other`)",
  incremental: true
})

const srcNamespaces = new BoundedLabel(100)
const dstNamespaces = new BoundedLabel(100)

const countByNamespace = (events: ReadonlyArray<DropEvent>): Effect.Effect<void> => {
  const counts = new Map<string, { attributes: Record<string, string>; n: number }>()
  for (const event of events) {
    const src = srcNamespaces.value(event.src.namespace ?? "none")
    const dst = dstNamespaces.value(event.dst.namespace ?? "none")
    const key = `${event.action}\u0000${src}\u0000${dst}`
    const entry = counts.get(key)
    if (entry === undefined) {
      counts.set(key, { attributes: { action: event.action, src_namespace: src, dst_namespace: dst }, n: 1 })
    } else {
      entry.n++
    }
  }
  return Effect.forEach(
    counts.values(),
    ({ attributes, n }) => Metric.update(Metric.withAttributes(serverEventsByNamespace, attributes), n),
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
