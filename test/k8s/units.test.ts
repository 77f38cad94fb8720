/**
 * Pure parts: canonical IPs, the IP index's reuse rules, settings validation, messages, the
 * Events sink's table of pending kinds.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Metric } from "effect"
import type { DropEvent, Endpoint } from "../../src/domain/DropEvent.ts"
import { describePeer, KindIndex, PendingKinds, type PendingKindsOptions } from "../../src/k8s/EventsSink.ts"
import { canonicalIp, ipKey } from "../../src/k8s/ip.ts"
import { IpIndexStore } from "../../src/k8s/IpIndex.ts"
import { loadKubeSettings, parseDurationMillis } from "../../src/k8s/KubeSettings.ts"
import { counterSeries } from "../../src/k8s/metrics.ts"
import type { SlimPod } from "../../src/k8s/resources.ts"
import { toSlimNode, toSlimPod, toSlimService } from "../../src/k8s/resources.ts"
import { AttributedMetrics } from "../../src/transport/metrics.ts"
import { drop } from "../support/kube-fixtures.ts"

describe("canonical IPs (RFC 5952)", () => {
  it("compress the longest zero run, lower-case, drop leading zeros", () => {
    expect(canonicalIp("2001:0DB8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1")
    expect(canonicalIp("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1")
    expect(canonicalIp("2001:0:0:1:0:0:0:1")).toBe("2001:0:0:1::1")
    expect(canonicalIp("2001:db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1")
    expect(canonicalIp("0000:0000:0000:0000:0000:0000:0000:0000")).toBe("::")
    expect(canonicalIp("0000:0000:0000:0000:0000:ffff:0a00:0001")).toBe("::ffff:10.0.0.1")
    expect(canonicalIp("fe80::1%eth0")).toBe("fe80::1")
    expect(canonicalIp("10.0.0.1")).toBe("10.0.0.1")
    expect(canonicalIp("10.0.0.256")).toBeUndefined()
    expect(canonicalIp("1:2:3:4:5:6:7:8:9")).toBeUndefined()
    expect(canonicalIp("bogus")).toBeUndefined()
    expect(ipKey("FD00:0000:0000:0000:0000:0000:0000:0005")).toBe("fd00::5")
    expect(ipKey("not-an-ip")).toBe("not-an-ip")
  })
})

const slimPod = (overrides: Partial<SlimPod> & { name: string; uid: string }): SlimPod => ({
  namespace: "default",
  node: "node-1",
  hostNetwork: false,
  phase: "Running",
  ips: ["10.0.0.1"],
  owner: undefined,
  createdAt: 0,
  ...overrides
})

describe("IP index", () => {
  const t0 = 1_800_000_000_000_000 // microseconds
  const second = 1_000_000

  it("an IP reused after a deletion: the event's timestamp decides", () => {
    const index = new IpIndexStore({ graceMillis: 300_000 })
    index.upsertPod(slimPod({ name: "old", uid: "1", createdAt: t0 }))
    index.deletePod(slimPod({ name: "old", uid: "1" }), t0 + 100 * second)
    index.upsertPod(slimPod({ name: "new", uid: "2", createdAt: t0 + 110 * second }))
    expect(index.lookup("10.0.0.1", t0 + 50 * second)?.name).toBe("old")
    expect(index.lookup("10.0.0.1", t0 + 105 * second)?.name).toBe("new") // deleted, successor not yet created: the live one
    expect(index.lookup("10.0.0.1", t0 + 120 * second)?.name).toBe("new")
    // after the grace period the tombstone goes
    expect(index.prune(t0 + 100 * second + 300 * second)).toBe(1)
    expect(index.lookup("10.0.0.1", t0 + 50 * second)?.name).toBe("new")
  })

  it("a deleted pod resolves only for events before its deletion", () => {
    const index = new IpIndexStore({ graceMillis: 300_000 })
    index.upsertPod(slimPod({ name: "gone", uid: "1", createdAt: t0 }))
    index.deletePod(slimPod({ name: "gone", uid: "1" }), t0 + 10 * second)
    expect(index.lookup("10.0.0.1", t0 + 5 * second)?.name).toBe("gone")
    expect(index.lookup("10.0.0.1", t0 + 15 * second)).toBeUndefined()
    expect(index.podUid("default", "gone")).toBeUndefined()
  })

  it("a running pod wins over a finished one; hostNetwork pods resolve to their node; pod > service > node", () => {
    const index = new IpIndexStore({ graceMillis: 300_000 })
    index.upsertPod(slimPod({ name: "job", uid: "1", phase: "Succeeded", createdAt: t0 }))
    index.upsertPod(slimPod({ name: "web", uid: "2", createdAt: t0 + second }))
    expect(index.lookup("10.0.0.1", t0 + 5 * second)?.name).toBe("web")
    index.upsertNode({ name: "node-1", ips: ["10.1.0.1"] })
    index.upsertPod(slimPod({ name: "ds", uid: "3", hostNetwork: true, ips: ["10.1.0.1"] }))
    expect(index.lookup("10.1.0.1", t0)).toMatchObject({ kind: "node", name: "node-1" })
    index.upsertService({ namespace: "default", name: "svc", ips: ["10.1.0.1"] })
    expect(index.lookup("10.1.0.1", t0)).toMatchObject({ kind: "service", name: "svc" })
    index.deleteService({ namespace: "default", name: "svc" })
    index.deleteNode({ name: "node-1" })
    expect(index.lookup("10.1.0.1", t0)).toBeUndefined()
  })

  it("workloads: ReplicaSet → Deployment, Job → CronJob, others as they are; owners learnt later apply", () => {
    const index = new IpIndexStore({ graceMillis: 300_000 })
    index.upsertPod(slimPod({ name: "web-abc-1", uid: "1", owner: { kind: "ReplicaSet", name: "web-abc" } }))
    expect(index.lookup("10.0.0.1", t0)?.workload).toEqual({ kind: "ReplicaSet", name: "web-abc" })
    index.upsertOwned({ kind: "ReplicaSet", namespace: "default", name: "web-abc", owner: { kind: "Deployment", name: "web" } })
    expect(index.lookup("10.0.0.1", t0)?.workload).toEqual({ kind: "Deployment", name: "web" })
    index.upsertPod(slimPod({ name: "b-1", uid: "2", ips: ["10.0.0.2"], owner: { kind: "Job", name: "b-29" } }))
    index.upsertOwned({ kind: "Job", namespace: "default", name: "b-29", owner: { kind: "CronJob", name: "b" } })
    expect(index.lookup("10.0.0.2", t0)?.workload).toEqual({ kind: "CronJob", name: "b" })
  })

  it("slim decoders keep only what the index needs, with canonical IPs", () => {
    const pod = toSlimPod({
      metadata: { name: "p", namespace: "ns", uid: "u", resourceVersion: "7", labels: { a: "b" } },
      spec: { nodeName: "n", containers: [{ name: "c" }] },
      status: { phase: "Running", podIP: "10.0.0.1", podIPs: [{ ip: "10.0.0.1" }, { ip: "FD00:0:0:0:0:0:0:1" }] }
    })
    expect(pod).toEqual({
      resourceVersion: "7",
      value: { uid: "u", namespace: "ns", name: "p", node: "n", hostNetwork: false, phase: "Running", ips: ["10.0.0.1", "fd00::1"], owner: undefined, createdAt: 0 }
    })
    expect(toSlimService({ metadata: { name: "s", namespace: "ns" }, spec: { clusterIP: "None", clusterIPs: ["None"] } })?.value.ips).toEqual([])
    expect(toSlimNode({ metadata: { name: "n" }, status: { addresses: [{ type: "Hostname", address: "n" }, { type: "InternalIP", address: "10.1.0.1" }] } })?.value.ips).toEqual(["10.1.0.1"])
    expect(toSlimPod({ metadata: {} })).toBeUndefined()
  })
})

const withEnv = (env: Record<string, string>) =>
  loadKubeSettings.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))

describe("settings", () => {
  it("parses durations", () => {
    expect(parseDurationMillis("5m")).toBe(300_000)
    expect(parseDurationMillis("2m30s")).toBe(150_000)
    expect(parseDurationMillis("1500ms")).toBe(1500)
    expect(parseDurationMillis("120")).toBe(120_000)
    expect(parseDurationMillis("soon")).toBeUndefined()
  })

  it.effect("defaults, and errors that name the variable", () =>
    Effect.gen(function*() {
      const defaults = yield* withEnv({})
      expect(defaults).toMatchObject({ podGracePeriodMillis: 300_000, eventsIntervalMillis: 120_000, eventsQps: 5, eventsBurst: 20, events: true, eventsForAccepts: false })
      const custom = yield* withEnv({ DROPTAILER_POD_GRACE_PERIOD: "90s", DROPTAILER_EVENTS: "false", DROPTAILER_EVENTS_QPS: "0.5" })
      expect(custom).toMatchObject({ podGracePeriodMillis: 90_000, events: false, eventsQps: 0.5 })
      const bad = yield* withEnv({ DROPTAILER_EVENTS_BURST: "lots" }).pipe(Effect.flip)
      expect(bad.variable).toBe("DROPTAILER_EVENTS_BURST")
      expect(bad.message).toContain("DROPTAILER_EVENTS_BURST")
      const badDuration = yield* withEnv({ DROPTAILER_EVENTS_INTERVAL: "2 fortnights" }).pipe(Effect.flip)
      expect(badDuration.variable).toBe("DROPTAILER_EVENTS_INTERVAL")
      const badMode = yield* withEnv({ DROPTAILER_KUBERNETES: "maybe" }).pipe(Effect.flip)
      expect(badMode.variable).toBe("DROPTAILER_KUBERNETES")
    }))
})

const withPort = (e: Endpoint, port: number | undefined): Endpoint => port === undefined ? e : { ...e, port }

/** What a batch must give: per key, the count, the first and last timestamp and the message of its first drop. */
const expectedOccurrences = (batch: ReadonlyArray<DropEvent>) => {
  const byKey = new Map<string, { pod: string; count: number; first: number; last: number; message: string }>()
  for (const e of batch) {
    for (const [self, peer, side] of [[e.src, e.dst, "src"], [e.dst, e.src, "dst"]] as const) {
      if (self.kind !== "pod") continue
      const key = JSON.stringify([e.action, self.namespace, self.name, side, peer.namespace, peer.name, peer.ip, e.dst.port, e.protocol])
      const seen = byKey.get(key)
      if (seen !== undefined) {
        seen.count++
        seen.first = Math.min(seen.first, e.timestamp)
        seen.last = Math.max(seen.last, e.timestamp)
        continue
      }
      const verb = e.action === "drop" ? "Dropped" : "Accepted"
      const port = e.dst.port === undefined ? "" : ` port ${e.dst.port}`
      const host = e.host === "" ? "" : ` by firewall ${e.host}`
      const message = side === "src"
        ? `${verb} ${e.protocol} packet to ${describePeer(peer)}${port}${host}`
        : `${verb} ${e.protocol} packet from ${describePeer(peer)} to${port === "" ? " this pod" : port}${host}`
      byKey.set(key, { pod: self.name!, count: 1, first: e.timestamp, last: e.timestamp, message })
    }
  }
  return [...byKey.values()]
}
/** A table of pending kinds: room for all, windows longer than any test, accepts counted. */
const table = (options: Partial<PendingKindsOptions> = {}, kinds?: KindIndex) =>
  new PendingKinds({ max: 10_000, intervalMillis: 60_000, withAccepts: true, ...options }, kinds)
/** The pending aggregates, in order of creation. */
const pendingView = (pending: PendingKinds) =>
  [...pending.aggregates.values()].map((a) => ({ pod: a.kind.pod, count: a.total, first: a.first, last: a.last, message: a.kind.message }))
/** The aggregates' counts, by pod and message. */
const countsOf = (pending: PendingKinds) => pendingView(pending).map((a) => [a.pod, a.message, a.count])

describe("Event messages", () => {
  it("name the peer by pod, service, node or IP", () => {
    expect(describePeer({ ip: "10.0.0.1", kind: "pod", namespace: "a", name: "b" })).toBe("pod a/b (10.0.0.1)")
    expect(describePeer({ ip: "10.96.0.1", kind: "service", namespace: "a", name: "s" })).toBe("service a/s (10.96.0.1)")
    expect(describePeer({ ip: "10.1.0.1", kind: "node", name: "n" })).toBe("node n (10.1.0.1)")
    expect(describePeer({ ip: "1.2.3.4", kind: "external" })).toBe("1.2.3.4")
    const event = drop({ src: "10.0.0.1", dst: "1.2.3.4", protocol: "ICMP" })
    const icmp = table()
    icmp.add([{
      ...event,
      src: { ip: "10.0.0.1", kind: "pod", namespace: "a", name: "b" },
      dst: { ip: "1.2.3.4", kind: "external" }
    }], 0)
    expect(pendingView(icmp).map((a) => a.message)).toEqual(["Dropped ICMP packet to 1.2.3.4 by firewall fw-1"])
  })

  it("count the repeats of one kind of drop in a batch together, from the first to the last timestamp", () => {
    const base = drop({ src: "10.0.0.1", dst: "10.0.0.2", dport: 80 })
    const pod = (ip: string, name: string) => ({ ip, kind: "pod" as const, namespace: "a", name })
    const at = (timestamp: number, port = 80) => ({
      ...base,
      timestamp,
      src: pod("10.0.0.1", "client"),
      dst: { ...pod("10.0.0.2", "web"), port }
    })
    const pending = table()
    pending.add([at(3_000_000), at(1_000_000), at(2_000_000, 443), at(5_000_000)], 0)
    // per event: one Event on the source pod and one on the destination pod; port 443 is another kind
    expect(pendingView(pending).map((a) => [a.pod, a.count, a.first, a.last, a.message])).toEqual([
      ["client", 3, 1_000_000, 5_000_000, "Dropped TCP packet to pod a/web (10.0.0.2) port 80 by firewall fw-1"],
      ["web", 3, 1_000_000, 5_000_000, "Dropped TCP packet from pod a/client (10.0.0.1) to port 80 by firewall fw-1"],
      ["client", 1, 2_000_000, 2_000_000, "Dropped TCP packet to pod a/web (10.0.0.2) port 443 by firewall fw-1"],
      ["web", 1, 2_000_000, 2_000_000, "Dropped TCP packet from pod a/client (10.0.0.1) to port 443 by firewall fw-1"]
    ])
    // accepts only when asked for
    const withoutAccepts = table({ withAccepts: false })
    withoutAccepts.add([{ ...at(1), action: "accept" }], 0)
    expect(withoutAccepts.aggregates.size).toBe(0)
  })

  it("count each kind's drops over all batches, also when the kinds start over (too many) between batches", () => {
    // few pods, peers, ports, hosts and protocols: many repeats and near-repeats (the same pod name
    // in two namespaces, a pod's IP, namespace and name as a service's, a pod to itself)
    let seed = 7
    const pick = <T>(values: ReadonlyArray<T>): T => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return values[seed % values.length]!
    }
    const pods: Array<Endpoint> = [
      { ip: "10.0.0.1", kind: "pod", namespace: "a", name: "web" },
      { ip: "10.0.0.2", kind: "pod", namespace: "b", name: "web" },
      { ip: "10.0.0.3", kind: "pod", namespace: "a", name: "db" }
    ]
    const others: Array<Endpoint> = [
      { ip: "10.96.0.1", kind: "service", namespace: "a", name: "web" },
      { ip: "10.0.0.1", kind: "service", namespace: "a", name: "web" },
      { ip: "10.1.0.1", kind: "node", name: "node-1", node: "node-1" },
      { ip: "10.0.0.1", kind: "external" },
      { ip: "10.0.0.1" },
      { ip: "203.0.113.9", kind: "external" },
      {}
    ]
    const endpoints = [...pods, ...others]
    const event = (timestamp: number): DropEvent => ({
      ...drop({ src: "", dst: "" }),
      timestamp,
      action: pick(["drop", "drop", "accept"] as const),
      host: pick(["fw-1", "fw-2", ""]),
      protocol: pick(["TCP", "UDP", "ICMP"]),
      src: withPort(pick(endpoints), pick([40_000, 40_001, undefined])),
      dst: withPort(pick(endpoints), pick([80, 443, undefined]))
    })
    const kept = table()
    const small = table({}, new KindIndex(5))
    const all: Array<DropEvent> = []
    for (let b = 0; b < 100; b++) {
      const batch = Array.from({ length: 1 + (b % 40) }, (_, i) => event(1_000_000 * b + pick([i, 40 - i])))
      const alone = table()
      alone.add(batch, b)
      expect(pendingView(alone)).toEqual(expectedOccurrences(batch))
      all.push(...batch)
      kept.add(batch, b)
      small.add(batch, b)
      expect(pendingView(kept)).toEqual(expectedOccurrences(all))
      expect(pendingView(small)).toEqual(expectedOccurrences(all))
    }
  })
})

/** A drop from 203.0.113.9 to the pod `name`'s port 80 (one kind per pod, on the destination side). */
const to = (name: string, timestamp = 1_000_000): DropEvent => ({
  ...drop({ src: "203.0.113.9", dst: "", timestamp }),
  src: { ip: "203.0.113.9", port: 40_000, kind: "external" },
  dst: { ip: `10.0.0.${name.length}`, port: 80, kind: "pod", namespace: "a", name }
})

describe("the table of pending kinds", () => {

  it("when full, a new kind's occurrence is dropped and counted as such; a pending kind's is always counted", () => {
    const pending = table({ max: 2 })
    expect(pending.add([to("a"), to("bb")], 0)).toBe(0)
    expect(pending.add([to("a"), to("ccc"), to("a"), to("bb"), to("ccc")], 0)).toBe(2)
    expect(countsOf(pending)).toEqual([
      ["a", "Dropped TCP packet from 203.0.113.9 to port 80 by firewall fw-1", 3],
      ["bb", "Dropped TCP packet from 203.0.113.9 to port 80 by firewall fw-1", 2]
    ])
    expect([pending.counted, pending.dropped]).toEqual([5, 2])
    // room again once a kind is done
    pending.remove(pending.aggregates.get(pending.aggregates.keys().next().value!)!)
    expect(pending.add([to("ccc"), to("bb")], 0)).toBe(0)
    expect(countsOf(pending).map(([p, , n]) => [p, n])).toEqual([["bb", 3], ["ccc", 1]])
  })

  it("when full, a pending kind is still found after the kinds started over (too many), and counted", () => {
    const pending = table({ max: 3 }, new KindIndex(2))
    pending.add([to("a"), to("bb")], 0)
    // the KindIndex holds two kinds: the third starts it over; the table is full then
    pending.add([to("ccc")], 0)
    expect(pending.add([to("a"), to("bb"), to("dddd"), to("a")], 0)).toBe(1)
    expect(countsOf(pending).map(([p, , n]) => [p, n])).toEqual([["a", 3], ["bb", 2], ["ccc", 1]])
    expect([pending.counted, pending.dropped]).toEqual([6, 1])
  })

  it("a created Event's window ends after the interval: the next occurrence starts a new one, even when full", () => {
    const pending = table({ max: 1, intervalMillis: 1000 })
    pending.add([to("a", 5), to("a", 7)], 0)
    const first = pending.aggregates.values().next().value!
    // not created yet (the API server is away): it keeps counting past the interval
    pending.add([to("a", 3)], 5000)
    expect(pending.aggregates.values().next().value).toBe(first)
    expect([first.total, first.first, first.last]).toEqual([3, 3, 7])
    // created: its window (from 0) is over, the next occurrence starts a new one, the old one closes
    first.name = "a.1"
    first.sent = 2
    pending.add([to("a", 10)], 6000)
    const second = pending.aggregates.values().next().value!
    expect(second).not.toBe(first)
    expect([second.total, second.first, second.last, second.windowStart]).toEqual([1, 10, 10, 6000])
    expect(pending.closing).toEqual([first])
    expect([first.pending, first.total]).toEqual([false, 3])
    // within its window it counts
    second.name = "a.2"
    second.sent = 1
    pending.add([to("a", 11)], 6999)
    expect(second.total).toBe(2)
    // a window that ended with everything sent leaves nothing to close
    second.sent = 2
    pending.add([to("a", 12)], 7000)
    expect(pending.closing).toEqual([first])
    expect(pending.dropped).toBe(0)
    expect(pending.unsent).toBe(2)
  })
})

describe("metrics", () => {
  it.effect("a series attributed once counts into the same series as one attributed per update", () =>
    Effect.gen(function*() {
      const counter = Metric.counter("droptailer_test_attributed_total", { incremental: true })
      const series = new AttributedMetrics(counter)
      const a = { action: "drop", src_namespace: "shop", dst_namespace: "none" }
      const b = { action: "drop", src_namespace: "none", dst_namespace: "shop" }
      yield* Metric.update(series.get("a", a), 2)
      yield* Metric.update(Metric.withAttributes(counter, a), 3)
      yield* Metric.update(series.get("a", a), 4)
      yield* Metric.update(series.get("b", b), 5)
      expect((yield* Metric.value(Metric.withAttributes(counter, a))).count).toBe(9)
      expect((yield* Metric.value(series.get("b", b))).count).toBe(5)
    }))

  it.effect("a series as a counter of its own counts into the same series as one attributed per update", () =>
    Effect.gen(function*() {
      const counter = Metric.counter("droptailer_test_series_total", { description: "test", incremental: true })
      const a = { kind: "pod" }
      const b = { kind: "node" }
      yield* Metric.update(counterSeries(counter, a), 2)
      yield* Metric.update(Metric.withAttributes(counter, a), 3)
      yield* Metric.update(counterSeries(counter, b), 4)
      yield* Metric.update(counterSeries(counter, a), 5)
      expect((yield* Metric.value(Metric.withAttributes(counter, a))).count).toBe(10)
      expect((yield* Metric.value(Metric.withAttributes(counter, b))).count).toBe(4)
      const snapshot = (yield* Metric.snapshot).filter((m) => m.id === "droptailer_test_series_total")
      expect(snapshot.map((m) => [m.description, m.attributes])).toEqual([["test", a], ["test", b]])
    }))
})
