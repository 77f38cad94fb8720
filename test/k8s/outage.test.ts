/**
 * The API server goes away for 60 s (the real figure, not shortened): events keep flowing and
 * known IPs stay enriched from the cache, Events wait without blocking, and when the server is
 * back the index catches up (re-list after 410, since the history was compacted meanwhile) and
 * the pending Events go out. The backoff cap is 5 s here (DROPTAILER_KUBERNETES_BACKOFF_MAX), so
 * catching up takes seconds, not the default 30 s cap.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect } from "effect"
import { Enricher } from "../../src/k8s/Enricher.ts"
import { EventsSink } from "../../src/k8s/EventsSink.ts"
import { KubeInformers } from "../../src/k8s/KubeInformers.ts"
import { drop, eventually, kubeApiServer, kubernetesFor, node, pod, service } from "../support/kube-fixtures.ts"

const outageSeconds = Number(process.env.DROPTAILER_TEST_OUTAGE_SECONDS ?? "60")

describe("API server outage", () => {
  it.live(`API server stopped for ${outageSeconds} s: events keep flowing, the index catches up`, () =>
    Effect.gen(function*() {
      const server = yield* kubeApiServer()
      server.add("nodes", node("node-1", "10.1.0.1"))
      server.add("pods", pod({ name: "web-1", namespace: "shop", ips: ["10.2.0.5"] }))
      server.add("services", service({ name: "db", namespace: "data", clusterIPs: ["10.96.0.20"] }))
      const context = yield* kubernetesFor(server, { backoffBaseMillis: 250, backoffMaxMillis: 5000 })
      const enricher = Context.get(context, Enricher)
      const informers = Context.get(context, KubeInformers)
      const sink = Context.get(context, EventsSink)
      yield* eventually(() => informers.synced, 10_000, "synced")

      yield* Effect.promise(() => server.stop())
      const outageStart = Date.now()
      // changes the informers cannot see while the server is down
      server.add("pods", pod({ name: "api-1", namespace: "shop", ips: ["10.2.0.77"] }))
      server.remove("pods", "shop", "web-1")
      server.compact()

      let enriched = 0
      let slowest = 0
      while (Date.now() - outageStart < outageSeconds * 1000) {
        const started = performance.now()
        const batch = yield* enricher.enrichAll(
          Array.from({ length: 1000 }, () => drop({ src: "10.2.0.5", dst: "10.96.0.20", dport: 5432 }))
        )
        yield* sink.offerAll(batch)
        slowest = Math.max(slowest, performance.now() - started)
        for (const event of batch) {
          if (event.src.name === "web-1" && event.dst.name === "db") enriched++
        }
        yield* Effect.sleep("500 millis")
      }
      const batches = Math.floor((outageSeconds * 1000) / 500)
      expect(enriched).toBeGreaterThanOrEqual(batches * 1000 * 0.9)
      expect(slowest).toBeLessThan(250) // never waits for the API server
      expect(yield* enricher.synced).toBe(true) // readiness holds on the cache
      const during = yield* informers.status
      expect(during.every((s) => !s.watching)).toBe(true)
      expect(server.list("events")).toHaveLength(0)

      yield* Effect.promise(() => server.start())
      const back = Date.now()
      yield* eventually(
        () => enricher.enrich(drop({ src: "10.2.0.77", dst: "1.1.1.1" })).src.name === "api-1",
        15_000,
        "new pod after the outage"
      )
      yield* eventually(
        () => enricher.enrich(drop({ src: "10.2.0.5", dst: "1.1.1.1" })).src.kind === "external",
        15_000,
        "deleted pod after the outage"
      )
      const catchUpSeconds = (Date.now() - back) / 1000
      expect(catchUpSeconds).toBeLessThan(15)
      // the Event held back during the outage goes out, with the aggregated count
      yield* eventually(() => server.list("events").length === 1, 15_000, "Event after the outage")
      yield* eventually(() => (countOf(server.list("events")[0]) ?? 0) >= enriched, 15_000, "count after the outage")
      yield* eventually(
        () => Effect.map(informers.status, (all) => all.every((s) => s.watching)),
        15_000,
        "every informer watching again"
      )
      console.log(`outage ${outageSeconds}s: ${enriched} events enriched from cache, caught up in ${catchUpSeconds.toFixed(1)}s`)
    }), (outageSeconds + 60) * 1000)
})

const countOf = (event: { readonly [key: string]: unknown } | undefined) => (typeof event?.count === "number" ? event.count : undefined)
