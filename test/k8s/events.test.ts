/**
 * Kubernetes Events through the real Events sink, over real HTTP, against the test server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Metric } from "effect"
import fc from "fast-check"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Enricher } from "../../src/k8s/Enricher.ts"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { EventsSink } from "../../src/k8s/EventsSink.ts"
import { kubeConfigForUrl, makeKubeClient } from "../../src/k8s/KubeClient.ts"
import { KubeInformers } from "../../src/k8s/KubeInformers.ts"
import { eventsSuppressed } from "../../src/k8s/metrics.ts"
import type { KubeApiServer } from "../support/kube-api-server.ts"
import { drop, eventually, kubeApiServer, kubernetesFor, node, owned, pod, service } from "../support/kube-fixtures.ts"
import { defaultKubeSettings, type KubeSettingsShape } from "../../src/k8s/KubeSettings.ts"

const setup = Effect.fn(function*(settings: Partial<KubeSettingsShape> = {}) {
  const server = yield* kubeApiServer()
  server.add("nodes", node("node-1", "10.1.0.1"))
  server.add("replicasets", owned("web-7d9f8", "shop", { kind: "Deployment", name: "web" }))
  server.add("pods", pod({ name: "web-7d9f8-abcde", namespace: "shop", ips: ["10.2.0.5"], owner: { kind: "ReplicaSet", name: "web-7d9f8" } }))
  server.add("pods", pod({ name: "db-0", namespace: "data", ips: ["10.2.0.6"] }))
  server.add("services", service({ name: "db", namespace: "data", clusterIPs: ["10.96.0.20"] }))
  const context = yield* kubernetesFor(server, settings)
  yield* eventually(() => Context.get(context, KubeInformers).synced, 10_000, "informers synced")
  return { server, enricher: Context.get(context, Enricher), sink: Context.get(context, EventsSink) }
})

const events = (server: KubeApiServer) => server.list("events")

/** Each Event's count, by pod and message. */
const countsOnServer = (server: KubeApiServer) =>
  new Map(events(server).map((e) => [`${(e.involvedObject as { name: string }).name}: ${e.message}`, e.count as number]))

const queueFull = Metric.withAttributes(eventsSuppressed, { reason: "queue_full" })
const droppedSoFar = Effect.map(Metric.value(queueFull), (s) => s.count)

/** How an Event's message names a peer (written out here, not taken from the sink). */
const peerText = (peer: DropEvent["src"]) =>
  peer.kind === "pod" || peer.kind === "service"
    ? `${peer.kind} ${peer.namespace}/${peer.name} (${peer.ip})`
    : peer.kind === "node"
    ? `node ${peer.name} (${peer.ip})`
    : peer.ip!

/** No rate limit to wait for. */
const fast = { eventsQps: 1000, eventsBurst: 1000 }

describe("Kubernetes Events", () => {
  it.live("one drop → an Event on each of the two pods, naming the peer, port, protocol and firewall", () =>
    Effect.gen(function*() {
      const { server, enricher, sink } = yield* setup()
      yield* sink.offer(enricher.enrich(drop({ src: "10.2.0.5", dst: "10.2.0.6", dport: 5432, host: "fw-7" })))
      yield* eventually(() => events(server).length === 2, 5000, "two Events")
      const onSource = events(server).find((e) => (e.involvedObject as { name: string }).name === "web-7d9f8-abcde")!
      const onDestination = events(server).find((e) => (e.involvedObject as { name: string }).name === "db-0")!
      const srcPodUid = server.get("pods", "shop", "web-7d9f8-abcde")!.metadata.uid
      expect(onSource).toMatchObject({
        type: "Warning",
        reason: "PacketDrop",
        count: 1,
        source: { component: "droptailer" },
        involvedObject: { kind: "Pod", apiVersion: "v1", namespace: "shop", name: "web-7d9f8-abcde", uid: srcPodUid },
        message: "Dropped TCP packet to pod data/db-0 (10.2.0.6) port 5432 by firewall fw-7"
      })
      expect(onSource.metadata.namespace).toBe("shop")
      expect(onDestination).toMatchObject({
        type: "Warning",
        reason: "PacketDrop",
        involvedObject: { kind: "Pod", namespace: "data", name: "db-0" },
        message: "Dropped TCP packet from pod shop/web-7d9f8-abcde (10.2.0.5) to port 5432 by firewall fw-7"
      })

      // peers that are services, nodes or outside the cluster are named as such
      yield* sink.offer(enricher.enrich(drop({ src: "10.2.0.5", dst: "10.96.0.20", dport: 5432 })))
      yield* sink.offer(enricher.enrich(drop({ src: "10.1.0.1", dst: "10.2.0.6", dport: 22, protocol: "UDP" })))
      yield* sink.offer(enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 22 })))
      yield* eventually(() => events(server).length === 5, 5000, "five Events")
      const messages = events(server).map((e) => e.message)
      expect(messages).toContain("Dropped TCP packet to service data/db (10.96.0.20) port 5432 by firewall fw-1")
      expect(messages).toContain("Dropped UDP packet from node node-1 (10.1.0.1) to port 22 by firewall fw-1")
      expect(messages).toContain("Dropped TCP packet from 203.0.113.9 to port 22 by firewall fw-1")
    }))

  it.live("accepts make Events only with DROPTAILER_EVENTS_FOR_ACCEPTS; DROPTAILER_EVENTS=false makes none", () =>
    Effect.gen(function*() {
      const { server, enricher, sink } = yield* setup()
      yield* sink.offer(enricher.enrich(drop({ src: "10.2.0.5", dst: "10.2.0.6", action: "accept" })))
      yield* sink.flush
      yield* Effect.sleep("300 millis")
      expect(events(server)).toHaveLength(0)

      const withAccepts = yield* setup({ eventsForAccepts: true })
      yield* withAccepts.sink.offer(withAccepts.enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 22, action: "accept" })))
      yield* eventually(() => events(withAccepts.server).length === 1, 5000, "accept Event")
      expect(events(withAccepts.server)[0]).toMatchObject({
        type: "Normal",
        reason: "PacketAccept",
        message: "Accepted TCP packet from 203.0.113.9 to port 22 by firewall fw-1"
      })

      const off = yield* setup({ events: false })
      yield* off.sink.offer(off.enricher.enrich(drop({ src: "10.2.0.5", dst: "10.2.0.6" })))
      yield* Effect.sleep("300 millis")
      expect(events(off.server)).toHaveLength(0)
    }))

  it.live("1,000 identical drops within a minute → one Event per pod whose count reflects them, within the rate limit (default settings)", () =>
    Effect.gen(function*() {
      // the defaults: 5 QPS, burst 20, 2 min interval, counts flushed every 10 s
      const { eventsQps: qps, eventsBurst: burst, eventsFlushMillis } = defaultKubeSettings
      const { server, enricher, sink } = yield* setup({ eventsFlushMillis })
      const started = Date.now()
      // 1,000 drops over ~10 s: a batch of 50 every 500 ms
      for (let batch = 0; batch < 20; batch++) {
        const batchEvents = Array.from({ length: 50 }, () => enricher.enrich(drop({ src: "10.2.0.5", dst: "10.2.0.6", dport: 5432 })))
        yield* sink.offerAll(batchEvents)
        yield* Effect.sleep("500 millis")
      }
      const counts = () => events(server).map((e) => e.count as number)
      yield* eventually(() => counts().length === 2 && counts().every((c) => c === 1000), 25_000, "counts of 1000")
      const elapsedSeconds = (Date.now() - started) / 1000
      const creates = server.countRequests({ method: "POST", path: /\/events$/ })
      const patches = server.countRequests({ method: "PATCH", path: /\/events\// })
      const calls = server.countRequests({ path: /\/events/ })
      expect(events(server)).toHaveLength(2)
      expect(creates).toBe(2)
      expect(calls).toBe(creates + patches)
      expect(calls).toBeLessThanOrEqual(burst + Math.ceil(qps * elapsedSeconds))
      // aggregation, not one call per drop: one PATCH per Event per flush
      expect(patches).toBeLessThanOrEqual(2 * Math.ceil(elapsedSeconds / (eventsFlushMillis / 1000)))
      for (const request of server.requests.filter((r) => r.method === "PATCH")) {
        expect(request.contentType).toBe("application/strategic-merge-patch+json")
      }
      const stats = yield* sink.stats
      expect(stats.offered).toBe(2000)
      expect(stats.suppressed).toBe(0)
      console.log(`1,000 drops: ${creates} creates + ${patches} patches in ${elapsedSeconds.toFixed(1)} s`)
    }), 60_000)

  it.live("a flood of distinct drops is held to the rate limit; beyond the table of pending kinds they count as suppressed, without blocking", () =>
    Effect.gen(function*() {
      const qps = 5
      const burst = 10
      const { server, enricher, sink } = yield* setup({ eventsQps: qps, eventsBurst: burst, eventsQueueSize: 100 })
      const started = Date.now()
      // 5,000 drops to 5,000 different ports: 10,000 kinds against a table of 100
      const flood = Array.from({ length: 5000 }, (_, i) => enricher.enrich(drop({ src: "10.2.0.5", dst: "10.2.0.6", dport: 1000 + i })))
      const before = performance.now()
      yield* sink.offerAll(flood)
      const offerMillis = performance.now() - before
      expect(offerMillis).toBeLessThan(1000)
      yield* Effect.sleep("2 seconds")
      const elapsedSeconds = (Date.now() - started) / 1000
      const calls = server.countRequests({ path: /\/events/ })
      expect(calls).toBeGreaterThan(0)
      expect(calls).toBeLessThanOrEqual(burst + Math.ceil(qps * elapsedSeconds))
      const stats = yield* sink.stats
      expect(stats.suppressed).toBeGreaterThan(9000)
      expect(stats.pending).toBeGreaterThan(0)
    }))

  it.live("a full table of pending kinds drops (and counts) a new kind's drops, never a pending kind's", () =>
    Effect.gen(function*() {
      const { server, enricher, sink } = yield* setup({ ...fast, eventsQueueSize: 2 })
      const before = yield* droppedSoFar
      const webToDb = () => enricher.enrich(drop({ src: "10.2.0.5", dst: "10.2.0.6", dport: 5432 }))
      // one drop, two kinds (on web and on db): the table is full
      yield* sink.offerAll([webToDb()])
      yield* eventually(() => events(server).length === 2, 5000, "two Events")
      yield* sink.offerAll([
        webToDb(),
        enricher.enrich(drop({ src: "10.2.0.5", dst: "10.96.0.20", dport: 5432 })), // new kind on web
        webToDb(),
        enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 5432 })), // new kind on db
        webToDb()
      ])
      expect((yield* droppedSoFar) - before).toBe(2)
      expect(yield* sink.stats).toMatchObject({ offered: 10, suppressed: 2 })
      yield* eventually(() => events(server).every((e) => e.count === 4), 5000, "counts of 4")
      expect(events(server)).toHaveLength(2)
    }))

  it.live("the created and patched Events count exactly the drops offered (random batches)", () =>
    Effect.gen(function*() {
      const address = fc.constantFrom("10.2.0.5", "10.2.0.6", "10.96.0.20", "10.1.0.1", "203.0.113.1", "203.0.113.2")
      const batch = fc.array(
        fc.record({
          src: address,
          dst: address,
          dport: fc.constantFrom(22, 80, 5432),
          protocol: fc.constantFrom("TCP", "UDP"),
          action: fc.constantFrom("drop", "drop", "drop", "accept")
        }),
        { maxLength: 60 }
      )
      // mostly a few milliseconds between batches (drops arrive while a create or patch is in flight), at times longer
      const pause = fc.oneof({ arbitrary: fc.nat(4), weight: 5 }, { arbitrary: fc.integer({ min: 100, max: 300 }), weight: 1 })
      const runs = fc.sample(fc.tuple(fc.array(batch, { minLength: 1, maxLength: 40 }), fc.array(pause, { minLength: 40, maxLength: 40 })), 4)
      for (const [batches, pauses] of runs) {
        const { server, enricher, sink } = yield* setup(fast)
        const want = new Map<string, number>()
        const all: Array<DropEvent> = []
        for (let b = 0; b < batches.length; b++) {
          const enriched = batches[b]!.map((options) => enricher.enrich(drop({ ...options, action: options.action as "drop" | "accept" })))
          all.push(...enriched)
          yield* sink.offerAll(enriched)
          // some batches while Events are being created and patched
          yield* Effect.sleep(pauses[b]!)
        }
        // what each pod's Event must count: its drops, by peer (the message names it, the port and the protocol)
        for (const e of all) {
          if (e.action !== "drop") continue
          const on = (name: string, message: string) => want.set(`${name}: ${message}`, (want.get(`${name}: ${message}`) ?? 0) + 1)
          if (e.src.kind === "pod") on(e.src.name!, `Dropped ${e.protocol} packet to ${peerText(e.dst)} port ${e.dst.port} by firewall fw-1`)
          if (e.dst.kind === "pod") on(e.dst.name!, `Dropped ${e.protocol} packet from ${peerText(e.src)} to port ${e.dst.port} by firewall fw-1`)
        }
        yield* eventually(() => Effect.map(sink.stats, (stats) => stats.pending === 0), 10_000, "everything sent")
        expect(countsOnServer(server)).toEqual(want)
        expect(yield* sink.stats).toMatchObject({ offered: [...want.values()].reduce((a, b) => a + b, 0), suppressed: 0 })
      }
    }), 60_000)

  it.live("repeats within the interval raise the Event's count; after the interval a new Event starts", () =>
    Effect.gen(function*() {
      const { server, enricher, sink } = yield* setup({ eventsIntervalMillis: 1000, eventsFlushMillis: 200 })
      yield* sink.offer(enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 22 })))
      yield* eventually(() => events(server).length === 1, 5000, "first Event")
      yield* sink.offer(enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 22 })))
      yield* eventually(() => events(server)[0]!.count === 2, 5000, "count 2")
      yield* Effect.sleep("1100 millis")
      yield* sink.offer(enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 22 })))
      yield* eventually(() => events(server).length === 2, 5000, "second Event in a new window")
    }))

  it.live("while the API server is down, drops aggregate into the Event still to be created, even past the interval", () =>
    Effect.gen(function*() {
      const { server, enricher, sink } = yield* setup({ eventsIntervalMillis: 1000, eventsFlushMillis: 200, backoffMaxMillis: 500 })
      yield* Effect.promise(() => server.stop())
      for (let i = 0; i < 5; i++) {
        yield* sink.offer(enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.6", dport: 22 })))
        yield* Effect.sleep("300 millis")
      }
      yield* Effect.promise(() => server.start())
      yield* eventually(() => events(server).length === 1 && events(server)[0]!.count === 5, 10_000, "one Event with count 5")
      expect((yield* sink.stats).suppressed).toBe(0)
    }))

  it.live("Event calls share one kept-alive connection (no connection, nor TLS handshake, per call)", () =>
    Effect.gen(function*() {
      let connections = 0
      const server = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<http.Server>((resolve) => {
            const s = http.createServer((req, res) => {
              req.resume()
              req.on("end", () => res.end("{}"))
            })
            s.on("connection", () => connections++)
            s.listen(0, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) => Effect.promise(() => new Promise<void>((resolve) => s.close(() => resolve())))
      )
      const client = makeKubeClient(kubeConfigForUrl(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), "url")
      for (let i = 0; i < 5; i++) {
        yield* client.request({ method: "POST", path: "/api/v1/namespaces/shop/events", body: { count: i } })
        yield* Effect.sleep("20 millis")
      }
      expect(connections).toBe(1)
    }))
})
