/**
 * Kubernetes Events for drops, so `kubectl describe pod` and `kubectl get events` show them.
 *
 * For each drop whose source or destination is a pod, a core/v1 Event (type Warning, reason
 * `PacketDrop`, source.component `droptailer`) on that pod names the peer (its pod, service or
 * node name, or the IP), the port, the protocol and the firewall host. Accepts produce Normal
 * `PacketAccept` Events only with DROPTAILER_EVENTS_FOR_ACCEPTS=true.
 *
 * Protecting the API server:
 * - `offer` never blocks: the occurrences of a batch, counted per pod and kind of drop, go into a
 *   bounded queue; when it is full their drops are counted
 *   as suppressed (`droptailer_server_events_suppressed_total{reason="queue_full"}`).
 * - De-duplication: occurrences with the same (pod, peer, port, protocol) within
 *   DROPTAILER_EVENTS_INTERVAL aggregate into one Event: the first creates it (POST), repeats
 *   raise its `count` and `lastTimestamp` with a strategic-merge PATCH, flushed every
 *   DROPTAILER_EVENTS_FLUSH_INTERVAL (not one call per repeat).
 * - A token bucket (DROPTAILER_EVENTS_QPS, DROPTAILER_EVENTS_BURST) bounds all calls; what does
 *   not fit waits (still aggregating) for the next tick.
 * - After a failed call the sink pauses with jittered exponential backoff (API server down).
 */
import { Context, Effect, Layer, Metric, Queue, Result, Schedule } from "effect"
import { hostname } from "node:os"
import type { DropEvent, Endpoint } from "../domain/DropEvent.ts"
import { formatTimestamp } from "../domain/DropEvent.ts"
import { logThrottled } from "../observability/LogThrottle.ts"
import { IpIndex } from "./IpIndex.ts"
import { type KubeApiError, KubeClient } from "./KubeClient.ts"
import { KubeSettings, type KubeSettingsShape } from "./KubeSettings.ts"
import { apiErrors, eventsPatched, eventsPosted, eventsSuppressed } from "./metrics.ts"

export interface EventsSinkStats {
  readonly offered: number
  readonly posted: number
  readonly patched: number
  readonly suppressed: number
  /** Aggregates waiting to be created or patched. */
  readonly pending: number
}

export interface EventsSinkShape {
  /** Queues the Events of one (enriched) event. Never blocks, never fails. */
  readonly offer: (event: DropEvent) => Effect.Effect<void>
  readonly offerAll: (events: ReadonlyArray<DropEvent>) => Effect.Effect<void>
  /** Sends what is pending now, as far as the rate limit allows (shutdown, tests). */
  readonly flush: Effect.Effect<void>
  readonly stats: Effect.Effect<EventsSinkStats>
}

/** Occurrences of one kind of drop on one pod (those of one batch with the same key). */
interface Occurrence {
  readonly key: string
  readonly namespace: string
  readonly pod: string
  readonly reason: string
  readonly type: "Warning" | "Normal"
  readonly message: string
  /** Epoch microseconds of the first and the last drop. */
  first: number
  last: number
  count: number
}

interface Aggregate {
  readonly key: string
  readonly namespace: string
  readonly pod: string
  readonly reason: string
  readonly type: "Warning" | "Normal"
  readonly message: string
  /** Our clock (ms) when the window started. */
  readonly windowStart: number
  /** Name of the Event object once created. */
  name: string | undefined
  /** Occurrences counted so far. */
  total: number
  /** Count the API server has. */
  sent: number
  first: number
  last: number
}

/** `pod ns/name (ip)`, `service ns/name (ip)`, `node name (ip)`, or the IP. */
export const describePeer = (peer: Endpoint): string => {
  const ip = peer.ip ?? "unknown address"
  switch (peer.kind) {
    case "pod":
      return `pod ${peer.namespace}/${peer.name} (${ip})`
    case "service":
      return `service ${peer.namespace}/${peer.name} (${ip})`
    case "node":
      return `node ${peer.name} (${ip})`
    default:
      return ip
  }
}

/** The aggregation key of the Event on `self` (a pod) for `event`; `side` is where `self` is. */
const occurrenceKey = (event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst"): string =>
  `${event.action}|${self.namespace}/${self.name}|${side}|${peer.namespace ?? ""}/${peer.name ?? ""}/${
    peer.ip ?? ""
  }|${event.dst.port ?? ""}|${event.protocol}`

/** The Event on `self` (a pod with namespace and name) for one event. */
const occurrence = (event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst", key: string): Occurrence => {
  const drop = event.action === "drop"
  const verb = drop ? "Dropped" : "Accepted"
  const port = event.dst.port
  const portText = port === undefined ? "" : ` port ${port}`
  const host = event.host === "" ? "" : ` by firewall ${event.host}`
  const peerText = describePeer(peer)
  return {
    key,
    namespace: self.namespace!,
    pod: self.name!,
    reason: drop ? "PacketDrop" : "PacketAccept",
    type: drop ? "Warning" : "Normal",
    message: side === "src"
      ? `${verb} ${event.protocol} packet to ${peerText}${portText}${host}`
      : `${verb} ${event.protocol} packet from ${peerText} to${portText === "" ? " this pod" : portText}${host}`,
    first: event.timestamp,
    last: event.timestamp,
    count: 1
  }
}

const isNamedPod = (e: Endpoint): boolean => e.kind === "pod" && e.namespace !== undefined && e.name !== undefined

/**
 * The Events of a batch: one per pod among src and dst of each event, those with the same key
 * counted together (a batch holds many repeats of few kinds of drop; the message of each kind is
 * built once).
 */
export const occurrencesOf = (events: ReadonlyArray<DropEvent>, withAccepts = true): Array<Occurrence> => {
  const byKey = new Map<string, Occurrence>()
  const add = (event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst") => {
    const key = occurrenceKey(event, self, peer, side)
    const seen = byKey.get(key)
    if (seen === undefined) {
      byKey.set(key, occurrence(event, self, peer, side, key))
    } else {
      seen.count++
      if (event.timestamp < seen.first) seen.first = event.timestamp
      if (event.timestamp > seen.last) seen.last = event.timestamp
    }
  }
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    if (event.action === "accept" && !withAccepts) continue
    if (isNamedPod(event.src)) add(event, event.src, event.dst, "src")
    if (isNamedPod(event.dst)) add(event, event.dst, event.src, "dst")
  }
  return [...byKey.values()]
}

/** metav1.Time: RFC 3339 with seconds. */
const kubeTime = (micros: number) => `${formatTimestamp(micros).slice(0, 19)}Z`

const maxAggregates = 10_000
const tickMillis = 200

export const makeEventsSink = Effect.fn("EventsSink.make")(function*(settings: KubeSettingsShape) {
  const client = yield* KubeClient
  const index = yield* IpIndex
  const queue = yield* Queue.dropping<Occurrence>(settings.eventsQueueSize)
  const aggregates = new Map<string, Aggregate>()
  /** Aggregates whose window ended while they still had counts to send. */
  const closing: Array<Aggregate> = []
  const instance = hostname()
  const stats = { offered: 0, posted: 0, patched: 0, suppressed: 0 }
  let tokens = settings.eventsBurst
  let refilledAt = Date.now()
  let nextFlush = Date.now() + settings.eventsFlushMillis
  let pausedUntil = 0
  let failures = 0
  let sequence = 0

  const suppress = (reason: string, n: number) => {
    stats.suppressed += n
    return Metric.update(Metric.withAttributes(eventsSuppressed, { reason }), n)
  }

  /** Queues the occurrences of a batch; returns how many drops the full queue refused. */
  const enqueue = (events: ReadonlyArray<DropEvent>): number => {
    let dropped = 0
    for (const o of occurrencesOf(events, settings.eventsForAccepts)) {
      stats.offered += o.count
      if (!Queue.offerUnsafe(queue, o)) dropped += o.count
    }
    return dropped
  }

  const offerAll = (events: ReadonlyArray<DropEvent>): Effect.Effect<void> =>
    Effect.suspend(() => {
      const dropped = enqueue(events)
      return dropped === 0 ? Effect.void : suppress("queue_full", dropped)
    })

  const offer = (event: DropEvent): Effect.Effect<void> => offerAll([event])

  const takeToken = (): boolean => {
    const now = Date.now()
    tokens = Math.min(settings.eventsBurst, tokens + ((now - refilledAt) / 1000) * settings.eventsQps)
    refilledAt = now
    if (tokens < 1) return false
    tokens -= 1
    return true
  }

  const aggregate = (occurrences: ReadonlyArray<Occurrence>, now: number) =>
    Effect.gen(function*() {
      let tooMany = 0
      for (const o of occurrences) {
        let agg = aggregates.get(o.key)
        // A window ends for Events that exist; one never created (API down) keeps aggregating.
        if (agg !== undefined && agg.name !== undefined && now - agg.windowStart >= settings.eventsIntervalMillis) {
          aggregates.delete(o.key)
          if (agg.total > agg.sent) closing.push(agg)
          agg = undefined
        }
        if (agg === undefined) {
          if (aggregates.size >= maxAggregates) {
            tooMany += o.count
            continue
          }
          aggregates.set(o.key, {
            key: o.key,
            namespace: o.namespace,
            pod: o.pod,
            reason: o.reason,
            type: o.type,
            message: o.message,
            windowStart: now,
            name: undefined,
            total: o.count,
            sent: 0,
            first: o.first,
            last: o.last
          })
        } else {
          agg.total += o.count
          if (o.last > agg.last) agg.last = o.last
        }
      }
      if (tooMany > 0) yield* suppress("too_many_keys", tooMany)
    })

  const failed = (operation: string, error: KubeApiError) =>
    Effect.gen(function*() {
      failures++
      const delay = Math.min(settings.backoffMaxMillis, settings.backoffBaseMillis * 2 ** Math.min(failures, 10))
      pausedUntil = Date.now() + delay * (0.8 + Math.random() * 0.4)
      yield* Metric.update(Metric.withAttributes(apiErrors, { operation, resource: "events" }), 1)
      yield* logThrottled("Warning", `k8s.events.${operation}`, `Kubernetes Event ${operation} failed; pausing Events`, {
        error: error.message,
        status: error.status ?? "",
        pauseMillis: Math.round(delay)
      })
    })

  const create = (agg: Aggregate) =>
    Effect.gen(function*() {
      const name = `${agg.pod}.${Date.now().toString(16)}${(sequence++ % 65_536).toString(16).padStart(4, "0")}`
      const uid = index.podUid(agg.namespace, agg.pod)
      const count = agg.total
      const body = {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace: agg.namespace },
        involvedObject: {
          apiVersion: "v1",
          kind: "Pod",
          namespace: agg.namespace,
          name: agg.pod,
          ...(uid === undefined ? {} : { uid })
        },
        reason: agg.reason,
        message: agg.message,
        type: agg.type,
        count,
        firstTimestamp: kubeTime(agg.first),
        lastTimestamp: kubeTime(agg.last),
        source: { component: "droptailer" },
        reportingComponent: "droptailer",
        reportingInstance: instance
      }
      const result = yield* Effect.result(
        client.request({ method: "POST", path: `/api/v1/namespaces/${agg.namespace}/events`, body, timeoutMillis: 10_000 })
      )
      if (Result.isFailure(result)) {
        // AlreadyExists: our name collided; the next tick tries another one.
        if (result.failure.status !== 409) yield* failed("create_event", result.failure)
        return false
      }
      failures = 0
      agg.name = name
      agg.sent = count
      stats.posted++
      yield* Metric.update(eventsPosted, 1)
      return true
    })

  const patch = (agg: Aggregate) =>
    Effect.gen(function*() {
      const count = agg.total
      const result = yield* Effect.result(
        client.request({
          method: "PATCH",
          path: `/api/v1/namespaces/${agg.namespace}/events/${agg.name}`,
          contentType: "application/strategic-merge-patch+json",
          body: { count, lastTimestamp: kubeTime(agg.last) },
          timeoutMillis: 10_000
        })
      )
      if (Result.isFailure(result)) {
        if (result.failure.status === 404) {
          // The Event expired on the server (event TTL): create a fresh one with the full count.
          agg.name = undefined
          agg.sent = 0
          return true
        }
        yield* failed("patch_event", result.failure)
        return false
      }
      failures = 0
      agg.sent = count
      stats.patched++
      yield* Metric.update(eventsPatched, 1)
      return true
    })

  /** One round: take what was offered, aggregate, create new Events, flush counts when due. */
  const tick = (force: boolean) =>
    Effect.gen(function*() {
      const now = Date.now()
      const taken = yield* Queue.clear(queue)
      if (taken.length > 0) yield* aggregate(taken, now)
      if (now < pausedUntil && !force) return
      // New Events first: they carry the news; counts can wait.
      for (const agg of aggregates.values()) {
        if (agg.name !== undefined) continue
        if (!takeToken()) return
        if (!(yield* create(agg))) return
      }
      const flushDue = force || now >= nextFlush
      if (flushDue) {
        while (closing.length > 0) {
          const agg = closing[0]!
          if (agg.name === undefined || agg.total <= agg.sent) {
            closing.shift()
            continue
          }
          if (!takeToken()) return
          if (!(yield* patch(agg))) return
          if (agg.name !== undefined) closing.shift()
        }
        for (const agg of aggregates.values()) {
          if (agg.name === undefined || agg.total <= agg.sent) continue
          if (!takeToken()) return
          if (!(yield* patch(agg))) return
        }
        nextFlush = now + settings.eventsFlushMillis
        // Windows that ended with nothing left to send are done.
        for (const [key, agg] of aggregates) {
          if (now - agg.windowStart >= settings.eventsIntervalMillis && agg.name !== undefined && agg.total <= agg.sent) {
            aggregates.delete(key)
          }
        }
      }
    })

  yield* tick(false).pipe(
    Effect.repeat(Schedule.spaced(`${tickMillis} millis`)),
    Effect.forkScoped
  )
  // On shutdown: one last flush of what the rate limit allows.
  yield* Effect.addFinalizer(() => tick(true).pipe(Effect.timeout("5 seconds"), Effect.ignore))

  const sink: EventsSinkShape = {
    offer,
    offerAll,
    flush: tick(true),
    stats: Effect.sync(() => ({
      ...stats,
      pending: closing.length +
        [...aggregates.values()].filter((a) => a.name === undefined || a.total > a.sent).length
    }))
  }
  return sink
})

export class EventsSink extends Context.Service<EventsSink, EventsSinkShape>()("droptailer/k8s/EventsSink") {
  /** Posts Events through KubeClient (or does nothing when DROPTAILER_EVENTS=false). */
  static readonly layer: Layer.Layer<EventsSink, never, KubeClient | IpIndex | KubeSettings> = Layer.effect(
    EventsSink,
    Effect.gen(function*() {
      const settings = yield* KubeSettings
      if (!settings.events) {
        yield* Effect.logInfo("Kubernetes Events are off (DROPTAILER_EVENTS=false)")
        return EventsSink.of(noop)
      }
      return EventsSink.of(yield* makeEventsSink(settings))
    })
  )

  static readonly layerNoop: Layer.Layer<EventsSink> = Layer.sync(EventsSink, () => EventsSink.of(noop))
}

const noop: EventsSinkShape = {
  offer: () => Effect.void,
  offerAll: () => Effect.void,
  flush: Effect.void,
  stats: Effect.succeed({ offered: 0, posted: 0, patched: 0, suppressed: 0, pending: 0 })
}
