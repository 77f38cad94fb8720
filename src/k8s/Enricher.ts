/**
 * Adds what the cluster knows to both endpoints of an event: `kind` (pod, service, node or
 * external) and where known `namespace`, `name`, `workload` {kind, name} and `node`.
 *
 * `enrich` is synchronous and allocation-light (a Map lookup per endpoint, a prebuilt enrichment
 * object spread into a new endpoint): call it inside an Effect. It never waits for the API server:
 * before the informers' first sync, or while the API server is unreachable, events go out with
 * what the index knows (the cache keeps serving). Before the first sync an unknown IP is left
 * without a `kind` (it may be a pod not listed yet); after it, unknown means `external`.
 *
 * Hits and misses are counted in plain numbers on the hot path and flushed into the
 * `droptailer_server_enrichment_*` metrics by `enrichAll` and every few seconds.
 */
import { Context, Effect, Layer, Metric, Schedule } from "effect"
import type { DropEvent, Endpoint } from "../domain/DropEvent.ts"
import { ipKey } from "./ip.ts"
import { IpIndex } from "./IpIndex.ts"
import { KubeInformers } from "./KubeInformers.ts"
import { counterSeries, enrichmentHits, enrichmentMisses } from "./metrics.ts"

export interface EnricherShape {
  /** Enriches src and dst. Synchronous, never fails, never blocks. */
  readonly enrich: (event: DropEvent) => DropEvent
  /** Enriches a batch and flushes the hit/miss counters into the metrics. */
  readonly enrichAll: (events: ReadonlyArray<DropEvent>) => Effect.Effect<ReadonlyArray<DropEvent>>
  /** Whether every informer has synced once (for /readyz); always true without Kubernetes. */
  readonly synced: Effect.Effect<boolean>
}

interface Counts {
  pod: number
  service: number
  node: number
  external: number
  unsynced: number
}

const zero = (): Counts => ({ pod: 0, service: 0, node: 0, external: 0, unsynced: 0 })

/** The series of each count, attributed once (not per flush). */
const series = {
  pod: counterSeries(enrichmentHits, { kind: "pod" }),
  service: counterSeries(enrichmentHits, { kind: "service" }),
  node: counterSeries(enrichmentHits, { kind: "node" }),
  external: counterSeries(enrichmentMisses, { kind: "external" }),
  unsynced: counterSeries(enrichmentMisses, { kind: "unsynced" })
}
const countedKinds = ["pod", "service", "node", "external", "unsynced"] as const

export class Enricher extends Context.Service<Enricher, EnricherShape>()("droptailer/k8s/Enricher") {
  static readonly layer: Layer.Layer<Enricher, never, IpIndex | KubeInformers> = Layer.effect(
    Enricher,
    Effect.gen(function*() {
      const index = yield* IpIndex
      const informers = yield* KubeInformers
      const counts = zero()
      const flushed = zero()

      const enrichEndpoint = (endpoint: Endpoint, timestamp: number): Endpoint => {
        const ip = endpoint.ip
        if (ip === undefined) return endpoint
        const found = index.lookup(ipKey(ip), timestamp)
        if (found !== undefined) {
          counts[found.kind]++
          return found.endpoint(ip, endpoint.port)
        }
        if (!informers.isSynced()) {
          counts.unsynced++
          return endpoint
        }
        counts.external++
        return endpoint.port === undefined ? { ip, kind: "external" } : { ip, port: endpoint.port, kind: "external" }
      }

      const enrich = (event: DropEvent): DropEvent => {
        const src = enrichEndpoint(event.src, event.timestamp)
        const dst = enrichEndpoint(event.dst, event.timestamp)
        return src === event.src && dst === event.dst ? event : { ...event, src, dst }
      }

      const flush = Effect.suspend(() => {
        const updates: Array<Effect.Effect<void>> = []
        for (const kind of countedKinds) {
          const delta = counts[kind] - flushed[kind]
          if (delta > 0) updates.push(Metric.update(series[kind], delta))
          flushed[kind] = counts[kind]
        }
        return updates.length === 0 ? Effect.void : Effect.all(updates, { discard: true })
      })

      yield* flush.pipe(Effect.repeat(Schedule.spaced("5 seconds")), Effect.forkScoped)
      yield* Effect.addFinalizer(() => flush)

      return Enricher.of({
        enrich,
        enrichAll: (events) =>
          Effect.suspend(() => {
            const out = events.map(enrich)
            return Effect.as(flush, out)
          }),
        synced: informers.synced
      })
    })
  )

  /** No Kubernetes: events pass unchanged, always ready. */
  static readonly layerNoop: Layer.Layer<Enricher> = Layer.succeed(
    Enricher,
    Enricher.of({
      enrich: (event) => event,
      enrichAll: (events) => Effect.succeed(events),
      synced: Effect.succeed(true)
    })
  )
}
