/**
 * Enrichment through the real informers, over real HTTP, against the Kubernetes-API-compatible
 * test server: pods (IPv4 and IPv6), services, nodes, hostNetwork pods, workloads, IP reuse,
 * watch cuts and 410 Gone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Metric } from "effect"
import { Enricher } from "../../src/k8s/Enricher.ts"
import { IpIndex } from "../../src/k8s/IpIndex.ts"
import { KubeInformers } from "../../src/k8s/KubeInformers.ts"
import { drop, eventually, kubeApiServer, kubernetesFor, node, nowMicros, owned, pod, service } from "../support/kube-fixtures.ts"

const setup = Effect.fn(function*() {
  const server = yield* kubeApiServer()
  server.add("nodes", node("node-1", "10.1.0.1", "203.0.113.1"))
  server.add("nodes", node("node-2", "10.1.0.2"))
  server.add("replicasets", owned("web-7d9f8", "shop", { kind: "Deployment", name: "web" }))
  server.add("jobs", owned("backup-29000000", "ops", { kind: "CronJob", name: "backup" }))
  server.add("pods", pod({ name: "web-7d9f8-abcde", namespace: "shop", ips: ["10.2.0.5", "fd00:10:2::5"], node: "node-1", owner: { kind: "ReplicaSet", name: "web-7d9f8" } }))
  server.add("pods", pod({ name: "db-0", namespace: "shop", ips: ["10.2.0.6"], node: "node-2", owner: { kind: "StatefulSet", name: "db" } }))
  server.add("pods", pod({ name: "backup-29000000-xyz", namespace: "ops", ips: ["10.2.0.7"], owner: { kind: "Job", name: "backup-29000000" } }))
  server.add("pods", pod({ name: "agent-x1", namespace: "kube-system", ips: ["10.1.0.2"], node: "node-2", hostNetwork: true, owner: { kind: "DaemonSet", name: "agent" } }))
  server.add("services", service({ name: "web", namespace: "shop", clusterIPs: ["10.96.0.10", "fd00:96::a"], externalIPs: ["198.51.100.7"], loadBalancer: ["192.0.2.80"] }))
  const context = yield* kubernetesFor(server)
  const enricher = Context.get(context, Enricher)
  const informers = Context.get(context, KubeInformers)
  const index = Context.get(context, IpIndex)
  yield* eventually(() => informers.synced, 10_000, "informers synced")
  return { server, enricher, informers, index }
})

describe("Kubernetes enrichment over real informers", () => {
  it.live("enriches pods (IPv4 and IPv6), services, nodes and hostNetwork pods", () =>
    Effect.gen(function*() {
      const { enricher } = yield* setup()
      // IPv6 as the kernel logs it: uncompressed.
      const event = enricher.enrich(drop({ src: "fd00:0010:0002:0000:0000:0000:0000:0005", dst: "10.96.0.10", dport: 80 }))
      expect(event.src).toEqual({
        ip: "fd00:0010:0002:0000:0000:0000:0000:0005",
        port: 40000,
        kind: "pod",
        namespace: "shop",
        name: "web-7d9f8-abcde",
        workload: { kind: "Deployment", name: "web" },
        node: "node-1"
      })
      expect(event.dst).toEqual({ ip: "10.96.0.10", port: 80, kind: "service", namespace: "shop", name: "web" })

      const v4 = enricher.enrich(drop({ src: "10.2.0.5", dst: "8.8.8.8" }))
      expect(v4.src.name).toBe("web-7d9f8-abcde")
      expect(v4.dst).toEqual({ ip: "8.8.8.8", port: 443, kind: "external" })

      expect(enricher.enrich(drop({ src: "10.2.0.6", dst: "fd00:96:0:0:0:0:0:a" })).dst.name).toBe("web")
      expect(enricher.enrich(drop({ src: "10.2.0.6", dst: "1.1.1.1" })).src.workload).toEqual({ kind: "StatefulSet", name: "db" })
      expect(enricher.enrich(drop({ src: "10.2.0.7", dst: "1.1.1.1" })).src.workload).toEqual({ kind: "CronJob", name: "backup" })
      expect(enricher.enrich(drop({ src: "198.51.100.7", dst: "192.0.2.80" })).src.name).toBe("web")
      expect(enricher.enrich(drop({ src: "198.51.100.7", dst: "192.0.2.80" })).dst.kind).toBe("service")
      // node addresses; the hostNetwork pod's IP is its node's
      expect(enricher.enrich(drop({ src: "10.1.0.1", dst: "203.0.113.1" })).src).toMatchObject({ kind: "node", name: "node-1" })
      expect(enricher.enrich(drop({ src: "10.1.0.1", dst: "203.0.113.1" })).dst).toMatchObject({ kind: "node", name: "node-1" })
      expect(enricher.enrich(drop({ src: "10.1.0.2", dst: "1.1.1.1" })).src).toMatchObject({ kind: "node", name: "node-2" })

      const batch = yield* enricher.enrichAll([drop({ src: "10.2.0.5", dst: "10.2.0.6" })])
      expect(batch[0]!.dst.name).toBe("db-0")

      // metrics: hits/misses by kind, informer sync state per resource
      const snapshot = yield* Metric.snapshot
      const series = (id: string) => snapshot.filter((m) => m.id === id)
      const hits = series("droptailer_server_enrichment_hits_total")
      expect(hits.map((m) => m.attributes?.kind).toSorted()).toEqual(["node", "pod", "service"])
      expect(series("droptailer_server_enrichment_misses_total").map((m) => m.attributes?.kind)).toContain("external")
      const synced = series("droptailer_server_informer_synced")
      expect(synced.map((m) => m.attributes?.resource).toSorted()).toEqual(["jobs", "nodes", "pods", "replicasets", "services"])
      expect(synced.every((m) => (m.state as { value: number }).value === 1)).toBe(true)
    }))

  it.live("follows changes: a new pod, the Deployment behind it, a modified service, a deleted node", () =>
    Effect.gen(function*() {
      const { server, enricher } = yield* setup()
      server.add("replicasets", owned("api-55c4d", "shop", { kind: "Deployment", name: "api" }))
      server.add("pods", pod({ name: "api-55c4d-q1", namespace: "shop", ips: ["10.2.1.1"], owner: { kind: "ReplicaSet", name: "api-55c4d" } }))
      yield* eventually(() => enricher.enrich(drop({ src: "10.2.1.1", dst: "1.1.1.1" })).src.kind === "pod", 5000, "new pod")
      expect(enricher.enrich(drop({ src: "10.2.1.1", dst: "1.1.1.1" })).src.workload).toEqual({ kind: "Deployment", name: "api" })

      server.modify("services", service({ name: "web", namespace: "shop", clusterIPs: ["10.96.0.11"] }))
      yield* eventually(() => enricher.enrich(drop({ src: "1.1.1.1", dst: "10.96.0.11" })).dst.kind === "service", 5000, "modified service")
      expect(enricher.enrich(drop({ src: "1.1.1.1", dst: "10.96.0.10" })).dst.kind).toBe("external")

      server.remove("nodes", undefined, "node-1")
      yield* eventually(() => enricher.enrich(drop({ src: "10.1.0.1", dst: "1.1.1.1" })).src.kind === "external", 5000, "deleted node")
    }))

  it.live("an IP reused by a new pod: older events resolve to the deleted pod, newer ones to its successor", () =>
    Effect.gen(function*() {
      const { server, enricher } = yield* setup()
      const beforeDeletion = nowMicros()
      yield* Effect.sleep("20 millis")
      server.remove("pods", "shop", "db-0")
      yield* eventually(
        () => enricher.enrich(drop({ src: "10.2.0.6", dst: "1.1.1.1" })).src.kind === "external",
        5000,
        "deletion seen"
      )
      // still within the grace period: an event from before the deletion resolves to the old pod
      expect(enricher.enrich(drop({ src: "10.2.0.6", dst: "1.1.1.1", timestamp: beforeDeletion })).src.name).toBe("db-0")

      yield* Effect.sleep("1100 millis") // creationTimestamp has second precision
      server.add("pods", pod({ name: "db-0", namespace: "shop", ips: ["10.2.0.99"] })) // the StatefulSet pod comes back elsewhere
      server.add("pods", pod({ name: "cache-1", namespace: "shop", ips: ["10.2.0.6"], owner: { kind: "StatefulSet", name: "cache" } }))
      yield* eventually(() => enricher.enrich(drop({ src: "10.2.0.6", dst: "1.1.1.1" })).src.kind === "pod", 5000, "successor")
      expect(enricher.enrich(drop({ src: "10.2.0.6", dst: "1.1.1.1" })).src.name).toBe("cache-1")
      expect(enricher.enrich(drop({ src: "10.2.0.6", dst: "1.1.1.1", timestamp: beforeDeletion })).src.name).toBe("db-0")
      expect(enricher.enrich(drop({ src: "10.2.0.99", dst: "1.1.1.1" })).src.name).toBe("db-0")
    }))

  it.live("a running pod wins over a finished one holding the same IP", () =>
    Effect.gen(function*() {
      const { server, enricher } = yield* setup()
      server.modify("pods", pod({ name: "backup-29000000-xyz", namespace: "ops", ips: ["10.2.0.7"], phase: "Succeeded", owner: { kind: "Job", name: "backup-29000000" } }))
      server.add("pods", pod({ name: "worker-1", namespace: "ops", ips: ["10.2.0.7"] }))
      yield* eventually(() => enricher.enrich(drop({ src: "10.2.0.7", dst: "1.1.1.1" })).src.name === "worker-1", 5000, "running pod wins")
    }))

  it.live("a cut watch resumes from its resourceVersion, and a 410 Gone re-lists without losing updates", () =>
    Effect.gen(function*() {
      const { server, enricher } = yield* setup()
      const listsBefore = server.countRequests({ method: "GET", path: /^\/api\/v1\/pods$/, watch: false })

      // 1. cut every watch; change things while the informers reconnect
      server.cutWatches()
      server.add("pods", pod({ name: "late-1", namespace: "shop", ips: ["10.2.2.1"] }))
      yield* eventually(() => enricher.enrich(drop({ src: "10.2.2.1", dst: "1.1.1.1" })).src.kind === "pod", 5000, "pod added across a cut")
      expect(server.countRequests({ method: "GET", path: /^\/api\/v1\/pods$/, watch: false })).toBe(listsBefore)

      // 2. cut, change, and compact the history so the resumed watch gets 410 Gone
      const watchesBefore = server.countRequests({ path: /^\/api\/v1\/pods$/, watch: true })
      yield* eventually(() => server.watchCount >= 5, 5000, "watches back")
      yield* Effect.promise(() => server.stop())
      server.add("pods", pod({ name: "late-2", namespace: "shop", ips: ["10.2.2.2"] }))
      server.remove("pods", "shop", "late-1")
      server.modify("services", service({ name: "web", namespace: "shop", clusterIPs: ["10.96.0.12"] }))
      server.compact()
      yield* Effect.promise(() => server.start())
      yield* eventually(() => enricher.enrich(drop({ src: "10.2.2.2", dst: "1.1.1.1" })).src.kind === "pod", 10_000, "pod added across a 410")
      yield* eventually(() => enricher.enrich(drop({ src: "1.1.1.1", dst: "10.96.0.12" })).dst.kind === "service", 10_000, "service across a 410")
      yield* eventually(() => enricher.enrich(drop({ src: "10.2.2.1", dst: "1.1.1.1" })).src.kind === "external", 10_000, "pod deleted across a 410")
      expect(server.countRequests({ method: "GET", path: /^\/api\/v1\/pods$/, watch: false })).toBeGreaterThan(listsBefore)
      expect(server.countRequests({ path: /^\/api\/v1\/pods$/, watch: true })).toBeGreaterThan(watchesBefore)
      // the deleted pod still resolves for events from before its deletion (tombstone)
      expect(enricher.enrich(drop({ src: "10.2.2.1", dst: "1.1.1.1", timestamp: nowMicros(-60_000) })).src.name).toBe("late-1")
    }))

  it.live("before the first sync events pass with what is known; unknown IPs are not yet called external", () =>
    Effect.gen(function*() {
      const server = yield* kubeApiServer()
      yield* Effect.promise(() => server.stop()) // API server down from the start
      const context = yield* kubernetesFor(server)
      const enricher = Context.get(context, Enricher)
      const event = drop({ src: "10.2.0.5", dst: "1.1.1.1" })
      const out = enricher.enrich(event)
      expect(out.src).toEqual(event.src)
      expect(yield* enricher.synced).toBe(false)
      server.add("pods", pod({ name: "p", ips: ["10.2.0.5"] }))
      yield* Effect.promise(() => server.start())
      yield* eventually(() => enricher.synced, 10_000, "synced after the server came up")
      expect(enricher.enrich(event).src.name).toBe("p")
      expect(enricher.enrich(event).dst.kind).toBe("external")
    }))
})
