/**
 * Enricher throughput and IP index memory.
 *
 *   npx node --expose-gc bench/enrich.ts
 *
 * Builds an index of 10,000 pods (dual-stack: one IPv4 and one IPv6 each), 2,000 services and
 * 200 nodes, 300 ReplicaSets/Jobs — through the same slim decoders the informers use — and
 * measures: heapUsed delta after gc for the index, raw lookups/s, and events/s through the
 * Enricher's `enrich` (the whole stage: two lookups, new endpoints, new event) with a mix of pod,
 * service, node, external and uncompressed-IPv6 addresses. Targets: >= 500k events/s, index
 * within 50 MB. Then the Events sink's share of the path: enriched batches of 1,000 counted into
 * its table of pending kinds (`PendingKinds.add`, one table kept from batch to batch with the
 * sink's default bound, as the sink does), for the events above (nearly every drop a kind of its
 * own: the worst case; beyond 10,000 kinds the new ones are dropped) and for bench/e2e.ts's
 * traffic (256 external sources to one pod's port: few kinds, repeated).
 */
import { Context, Effect, Layer } from "effect"
import type { DropEvent } from "../src/domain/DropEvent.ts"
import { Enricher } from "../src/k8s/Enricher.ts"
import { PendingKinds } from "../src/k8s/EventsSink.ts"
import { IpIndex, IpIndexStore } from "../src/k8s/IpIndex.ts"
import { KubeInformers } from "../src/k8s/KubeInformers.ts"
import { defaultKubeSettings } from "../src/k8s/KubeSettings.ts"
import { toSlimNode, toSlimOwned, toSlimPod, toSlimService } from "../src/k8s/resources.ts"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) console.warn("run with --expose-gc for the memory figure")
const heap = () => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}

const PODS = 10_000
const SERVICES = 2_000
const NODES = 200

const v4 = (base: number, i: number) => `10.${base}.${(i >> 8) & 255}.${i & 255}`
const v6 = (i: number) => `fd00:10:244::${i.toString(16)}`
const v6Long = (i: number) => `fd00:0010:0244:0000:0000:0000:0000:${i.toString(16).padStart(4, "0")}`

// Raw objects as the API server sends them (with the fields we drop), built before measuring.
const rawPods = Array.from({ length: PODS }, (_, i) => ({
  metadata: {
    name: `app-${i % 500}-7d9f8c${i}-x${i}`,
    namespace: `ns-${i % 50}`,
    uid: `uid-${i}`,
    resourceVersion: String(1000 + i),
    creationTimestamp: "2026-11-27T10:00:00Z",
    labels: { app: `app-${i % 500}`, "pod-template-hash": "7d9f8c" },
    annotations: { "kubectl.kubernetes.io/restartedAt": "2026-11-27T09:00:00Z" },
    ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: `app-${i % 500}-7d9f8c`, uid: "u", controller: true }]
  },
  spec: {
    nodeName: `node-${i % NODES}`,
    containers: [{ name: "main", image: "registry.example/app:1.2.3", ports: [{ containerPort: 8080 }] }]
  },
  status: { phase: "Running", podIP: v4(244, i), podIPs: [{ ip: v4(244, i) }, { ip: v6(i) }] }
}))
const rawServices = Array.from({ length: SERVICES }, (_, i) => ({
  metadata: { name: `svc-${i}`, namespace: `ns-${i % 50}`, resourceVersion: "1" },
  spec: { clusterIP: v4(96, i), clusterIPs: [v4(96, i)], ports: [{ port: 80 }] },
  status: { loadBalancer: {} }
}))
const rawNodes = Array.from({ length: NODES }, (_, i) => ({
  metadata: { name: `node-${i}`, resourceVersion: "1" },
  status: { addresses: [{ type: "InternalIP", address: v4(1, i) }, { type: "Hostname", address: `node-${i}` }] }
}))
const rawReplicaSets = Array.from({ length: 500 }, (_, i) => ({
  metadata: {
    name: `app-${i}-7d9f8c`,
    namespace: `ns-${i % 50}`,
    ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: `app-${i}`, uid: "d", controller: true }]
  }
}))

const before = heap()
const store = new IpIndexStore({ graceMillis: 300_000 })
for (const raw of rawReplicaSets) store.upsertOwned(toSlimOwned("ReplicaSet")(raw)!.value)
for (const raw of rawNodes) store.upsertNode(toSlimNode(raw)!.value)
for (const raw of rawServices) store.upsertService(toSlimService(raw)!.value)
for (const raw of rawPods) store.upsertPod(toSlimPod(raw)!.value)
// The informers also keep their own slim copy per object (Informer store): count it too.
const informerCopies = [
  ...rawPods.map((r) => toSlimPod(r)),
  ...rawServices.map((r) => toSlimService(r)),
  ...rawNodes.map((r) => toSlimNode(r))
]
const after = heap()
const indexMb = (after - before) / 1024 / 1024
const informerRecords = informerCopies.length
// Free the raw API objects before timing (the server never holds them either).
rawPods.length = 0
rawServices.length = 0
rawNodes.length = 0
rawReplicaSets.length = 0
heap()

// Events: 40% pod→pod, 20% pod→service, 10% node, 20% external, 10% uncompressed IPv6 pods.
const N = 1 << 16
const events: Array<DropEvent> = []
for (let i = 0; i < N; i++) {
  const p = (i * 7919) % PODS
  const r = i % 10
  const src = r < 6 ? v4(244, p) : r < 7 ? v4(1, p % NODES) : r < 9 ? `203.0.${(i >> 8) & 255}.${i & 255}` : v6Long(p)
  const dst = r < 4 ? v4(244, (p + 1) % PODS) : r < 6 ? v4(96, p % SERVICES) : r < 9 ? v4(244, (p + 3) % PODS) : v6Long((p + 5) % PODS)
  events.push({
    timestamp: 1795790134013717 + i,
    action: "drop",
    host: "fw-1",
    protocol: "TCP",
    src: { ip: src, port: 40000 + (i & 1023) },
    dst: { ip: dst, port: 443 },
    in: "vrf09",
    out: "",
    fields: {}
  })
}

const informersSynced = Layer.succeed(
  KubeInformers,
  KubeInformers.of({ synced: Effect.succeed(true), isSynced: () => true, status: Effect.succeed([]) })
)
// Timing loops live in plain functions: V8 does not optimise long loops inside generators.
// Rates per wall-clock second and per CPU second of this process (the second is the steadier
// figure on a shared machine: time spent descheduled does not count).
const cpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

const timeLookups = (index: IpIndexStore, ips: ReadonlyArray<string>, rounds: number) => {
  let hits = 0
  const t = performance.now()
  const c = cpuSeconds()
  for (let i = 0; i < rounds; i++) if (index.lookup(ips[i & (N - 1)]!, 1795790134013717) !== undefined) hits++
  return { perSecond: rounds / ((performance.now() - t) / 1000), perCpuSecond: rounds / (cpuSeconds() - c), hits }
}

const timeEnrich = (enrich: (event: DropEvent) => DropEvent, rounds: number) => {
  let pods = 0
  const t = performance.now()
  const c = cpuSeconds()
  for (let i = 0; i < rounds; i++) if (enrich(events[i & (N - 1)]!).src.kind === "pod") pods++
  return { perSecond: rounds / ((performance.now() - t) / 1000), perCpuSecond: rounds / (cpuSeconds() - c), pods }
}

/**
 * The server's case: a gRPC batch is decoded (fresh objects, in cache) and goes through the stage
 * at once. Batches of 1,000 are copied from the 65,536 prepared events outside the timed part;
 * the index is hit uniformly over all 10,000 pods (no locality: the worst case for it).
 */
const timeFreshBatches = (enrich: (event: DropEvent) => DropEvent, batches: number) => {
  let elapsed = 0
  let cpu = 0
  let pods = 0
  for (let b = 0; b < batches; b++) {
    const offset = (b * 1000) & (N - 1)
    const batch = events.slice(offset, offset + 1000).map((e) => ({ ...e, src: { ...e.src }, dst: { ...e.dst } }))
    const t = performance.now()
    const c = cpuSeconds()
    for (let i = 0; i < batch.length; i++) if (enrich(batch[i]!).src.kind === "pod") pods++
    cpu += cpuSeconds() - c
    elapsed += performance.now() - t
  }
  void pods
  return { perSecond: (batches * 1000) / (elapsed / 1000), perCpuSecond: (batches * 1000) / cpu }
}

/** Events per CPU second through `PendingKinds.add` (the Events sink's work per batch in the caller's fiber). */
const timeOccurrences = (batches: ReadonlyArray<ReadonlyArray<DropEvent>>, rounds: number) => {
  const pending = new PendingKinds({
    max: defaultKubeSettings.eventsQueueSize,
    intervalMillis: defaultKubeSettings.eventsIntervalMillis,
    withAccepts: false
  })
  const c = cpuSeconds()
  for (let i = 0; i < rounds; i++) pending.add(batches[i % batches.length]!, 0)
  return (rounds * 1000) / (cpuSeconds() - c)
}

const program = Effect.gen(function*() {
  const enricher = yield* Enricher
  const index = yield* IpIndex
  const ips = events.map((e) => e.dst.ip!)
  timeLookups(index, ips, 500_000) // warm-up
  const lookupRuns = [1, 2, 3].map(() => timeLookups(index, ips, 3_000_000))
  const lookups = Math.max(...lookupRuns.map((r) => r.perSecond))
  const lookupsCpu = Math.max(...lookupRuns.map((r) => r.perCpuSecond))

  timeEnrich(enricher.enrich, 300_000) // warm-up
  const enrichRuns = [1, 2, 3, 4, 5].map(() => timeEnrich(enricher.enrich, 1_000_000))
  const runs = enrichRuns.map((r) => r.perSecond)
  console.log(
    "enrich runs (events/s wall | per CPU s):",
    enrichRuns.map((r) => `${Math.round(r.perSecond / 1000)}k|${Math.round(r.perCpuSecond / 1000)}k`).join(" ")
  )

  timeFreshBatches(enricher.enrich, 200) // warm-up
  const fresh = [1, 2, 3].map(() => timeFreshBatches(enricher.enrich, 2000))

  // Batched, as the server calls it (enrichAll per gRPC batch of 1,000; metrics flushed per batch)
  const batch = events.slice(0, 1000)
  for (let i = 0; i < 200; i++) yield* enricher.enrichAll(batch) // warm-up
  const batches = 2000
  const t = performance.now()
  const c = cpuSeconds()
  for (let i = 0; i < batches; i++) yield* enricher.enrichAll(batch)
  const batchedPerSecond = (batches * 1000) / ((performance.now() - t) / 1000)
  const batchedPerCpuSecond = (batches * 1000) / (cpuSeconds() - c)

  // Events: the enriched batches of 1,000 (64 distinct ones, cycled) grouped per pod and kind of drop
  const enrichedBatches = Array.from({ length: Math.floor(N / 1000) }, (_, b) =>
    events.slice(b * 1000, b * 1000 + 1000).map(enricher.enrich))
  timeOccurrences(enrichedBatches, 300) // warm-up
  const occurrenceRuns = [1, 2, 3].map(() => timeOccurrences(enrichedBatches, 2000))
  const pod = v4(244, 0)
  const repeatedBatches = [0, 1, 2, 3].map((b) =>
    events.slice(b * 1000, b * 1000 + 1000).map((e, i) =>
      enricher.enrich({ ...e, src: { ip: `203.0.113.${(b * 1000 + i) & 255}`, port: 40000 + i }, dst: { ip: pod, port: 443 } })
    )
  )
  timeOccurrences(repeatedBatches, 300) // warm-up
  const repeatedRuns = [1, 2, 3].map(() => timeOccurrences(repeatedBatches, 2000))

  return {
    occurrencesPerCpuSecond: Math.max(...occurrenceRuns),
    repeatedOccurrencesPerCpuSecond: Math.max(...repeatedRuns),
    freshPerSecond: Math.max(...fresh.map((r) => r.perSecond)),
    freshPerCpuSecond: Math.max(...fresh.map((r) => r.perCpuSecond)),
    lookupsPerSecond: lookups,
    lookupsPerCpuSecond: lookupsCpu,
    eventsPerCpuSecond: Math.max(...enrichRuns.map((r) => r.perCpuSecond)),
    batchedPerCpuSecond,
    eventsPerSecond: Math.max(...runs),
    medianPerSecond: runs.toSorted((a, b) => a - b)[2]!,
    batchedPerSecond,
    sample: enricher.enrich(events[9]!)
  }
})

const layer = Enricher.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(Layer.succeed(IpIndex, store), informersSynced))
)
const result = await Effect.runPromise(Effect.scoped(Effect.flatMap(Layer.build(layer), (ctx) => Effect.provide(program, ctx))))
void Context

const fmt = (n: number) => `${(n / 1000).toFixed(0)}k`
console.log(`index: ${PODS} pods (${PODS * 2} IPs), ${SERVICES} services, ${NODES} nodes ->`, store.sizes)
console.log(`index memory (heapUsed delta after gc, incl. informer copies of ${informerRecords} slim records): ${indexMb.toFixed(1)} MB (target <= 50 MB)`)
console.log(`load average: ${(await import("node:os")).loadavg().map((l) => l.toFixed(2)).join(" ")} on ${(await import("node:os")).cpus().length} CPUs`)
console.log(`lookups/s:                 ${fmt(result.lookupsPerSecond)} wall, ${fmt(result.lookupsPerCpuSecond)} per CPU second`)
console.log(`events/s through enrich, fresh batches of 1,000 (the server's case): ${fmt(result.freshPerSecond)} wall, ${fmt(result.freshPerCpuSecond)} per CPU second (target >= 500k)`)
console.log(`events/s through enrich, cold events (65,536 cycled, worst case):   best ${fmt(result.eventsPerSecond)}, median ${fmt(result.medianPerSecond)} wall; best ${fmt(result.eventsPerCpuSecond)} per CPU second (target >= 500k)`)
console.log(`events/s through enrichAll (the same 1,000 events again and again, with metrics): ${fmt(result.batchedPerSecond)} wall, ${fmt(result.batchedPerCpuSecond)} per CPU second`)
console.log(`events/s through PendingKinds.add (Events per pod and kind of drop, batches of 1,000): ${fmt(result.occurrencesPerCpuSecond)} per CPU second (the events above: nearly all kinds new), ${fmt(result.repeatedOccurrencesPerCpuSecond)} per CPU second (256 sources to one pod)`)
console.log("sample (uncompressed IPv6 pod -> pod):", JSON.stringify({ src: result.sample.src, dst: result.sample.dst }))
