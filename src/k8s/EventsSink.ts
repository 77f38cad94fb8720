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
import { Context, Effect, Layer, Metric, Result, Schedule } from "effect"
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

/** One kind of drop on one pod: the Event's key and text, built once and shared by its repeats. */
export interface Kind {
  /** The aggregation key (see `occurrenceKey`). */
  readonly key: string
  readonly namespace: string
  readonly pod: string
  readonly reason: string
  readonly type: "Warning" | "Normal"
  readonly message: string
  // What the key and the message are made of, for finding the kind again (see `KindIndex`).
  readonly action: string
  readonly side: "src" | "dst"
  readonly protocol: string
  readonly host: string
  readonly peerKind: string | undefined
  readonly peerNamespace: string | undefined
  readonly peerName: string | undefined
  /** The `occurrencesOf` call (its number) that last counted this kind, and its occurrence there. */
  call: number
  occurrence: Occurrence | undefined
}

/** Occurrences of one kind of drop on one pod (those of one batch with the same key). */
export interface Occurrence {
  readonly kind: Kind
  /** Epoch microseconds of the first and the last drop. */
  first: number
  last: number
  count: number
}

interface Aggregate {
  readonly kind: Kind
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

/** The kind of the Event on `self` (a pod with namespace and name) for one event. */
const kindOf = (event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst"): Kind => {
  const drop = event.action === "drop"
  const verb = drop ? "Dropped" : "Accepted"
  const port = event.dst.port
  const portText = port === undefined ? "" : ` port ${port}`
  const host = event.host === "" ? "" : ` by firewall ${event.host}`
  const peerText = describePeer(peer)
  return {
    key: occurrenceKey(event, self, peer, side),
    namespace: self.namespace!,
    pod: self.name!,
    reason: drop ? "PacketDrop" : "PacketAccept",
    type: drop ? "Warning" : "Normal",
    message: side === "src"
      ? `${verb} ${event.protocol} packet to ${peerText}${portText}${host}`
      : `${verb} ${event.protocol} packet from ${peerText} to${portText === "" ? " this pod" : portText}${host}`,
    action: event.action,
    side,
    protocol: event.protocol,
    host: event.host,
    peerKind: peer.kind,
    peerNamespace: peer.namespace,
    peerName: peer.name,
    call: 0,
    occurrence: undefined
  }
}

/** Whether `kind` is the kind of the Event on `self` for `event` (peer IP, port and pod name already matched). */
const isKindOf = (kind: Kind, event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst"): boolean =>
  kind.action === event.action && kind.side === side && kind.namespace === self.namespace &&
  kind.protocol === event.protocol && kind.host === event.host && kind.peerKind === peer.kind &&
  kind.peerNamespace === peer.namespace && kind.peerName === peer.name

const getOrAdd = <K, V>(map: Map<K, V>, key: K, make: () => V): V => {
  let value = map.get(key)
  if (value === undefined) {
    value = make()
    map.set(key, value)
  }
  return value
}

/** The last pod and destination port looked up on one side (src or dst) of a KindIndex, and their peers. */
interface LastPeers {
  pod: string | undefined
  port: number | undefined
  peers: Map<string, Array<Kind>> | undefined
}

/**
 * The kinds seen so far, found without building their key for every drop: by pod name, destination
 * port and peer IP (strings the event holds already), then the few sharing those are compared field
 * by field. The peers of the last pod and port on each side are remembered, so a run of events to
 * one pod's port (the usual case) costs one Map lookup per event: its peer's IP. Starts over beyond
 * `max` kinds (a bound on its memory).
 */
export class KindIndex {
  readonly #max: number
  #byPod = new Map<string, Map<number | undefined, Map<string, Array<Kind>>>>()
  #size = 0
  // the last pod and port looked up on each side, and their peers
  readonly #src: LastPeers = { pod: undefined, port: undefined, peers: undefined }
  readonly #dst: LastPeers = { pod: undefined, port: undefined, peers: undefined }
  constructor(max = 20_000) {
    this.#max = max
  }

  /** The kind of the Event on `self` (a pod with namespace and name) for `event`. */
  get(event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst"): Kind {
    if (this.#size >= this.#max) {
      this.#byPod = new Map()
      this.#size = 0
      this.#src.peers = undefined
      this.#dst.peers = undefined
    }
    const pod = self.name!
    const port = event.dst.port
    const last = side === "src" ? this.#src : this.#dst
    let peers = last.peers
    if (peers === undefined || pod !== last.pod || port !== last.port) {
      peers = this.#peersOf(pod, port)
      last.pod = pod
      last.port = port
      last.peers = peers
    }
    const kinds = getOrAdd(peers, peer.ip ?? "", (): Array<Kind> => [])
    for (let i = 0; i < kinds.length; i++) {
      if (isKindOf(kinds[i]!, event, self, peer, side)) return kinds[i]!
    }
    const kind = kindOf(event, self, peer, side)
    kinds.push(kind)
    this.#size++
    return kind
  }

  #peersOf(pod: string, port: number | undefined): Map<string, Array<Kind>> {
    return getOrAdd(getOrAdd(this.#byPod, pod, () => new Map()), port, () => new Map())
  }
}

const isNamedPod = (e: Endpoint): boolean => e.kind === "pod" && e.namespace !== undefined && e.name !== undefined

/**
 * The Events of a batch: one per pod among src and dst of each event, those with the same key
 * counted together (a batch holds many repeats of few kinds of drop). `kinds` carries the kinds
 * over from batch to batch: a kind's key and message are built once.
 */
export const occurrencesOf = (
  events: ReadonlyArray<DropEvent>,
  withAccepts = true,
  kinds: KindIndex = new KindIndex()
): Array<Occurrence> => {
  // A kind counted before in this call finds its occurrence on itself (`call`), without the Map.
  const call = ++calls
  const byKey = new Map<string, Occurrence>()
  const out: Array<Occurrence> = []
  const add = (event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst") => {
    const kind = kinds.get(event, self, peer, side)
    let seen = kind.call === call ? kind.occurrence : undefined
    if (seen === undefined) {
      seen = byKey.get(kind.key)
      if (seen === undefined) {
        seen = { kind, first: event.timestamp, last: event.timestamp, count: 1 }
        byKey.set(kind.key, seen)
        out.push(seen)
        kind.call = call
        kind.occurrence = seen
        return
      }
      kind.call = call
      kind.occurrence = seen
    }
    seen.count++
    if (event.timestamp < seen.first) seen.first = event.timestamp
    if (event.timestamp > seen.last) seen.last = event.timestamp
  }
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    if (event.action === "accept" && !withAccepts) continue
    if (isNamedPod(event.src)) add(event, event.src, event.dst, "src")
    if (isNamedPod(event.dst)) add(event, event.dst, event.src, "dst")
  }
  return out
}
/** Numbers the calls of `occurrencesOf`. */
let calls = 0

/** metav1.Time: RFC 3339 with seconds. */
const kubeTime = (micros: number) => `${formatTimestamp(micros).slice(0, 19)}Z`

const maxAggregates = 10_000
const tickMillis = 200

export const makeEventsSink = Effect.fn("EventsSink.make")(function*(settings: KubeSettingsShape) {
  const client = yield* KubeClient
  const index = yield* IpIndex
  const kinds = new KindIndex()
  /** Occurrences offered since the last tick: at most eventsQueueSize, beyond that suppressed. */
  let queued: Array<Occurrence> = []
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

  const occurrencesOfBatch = (events: ReadonlyArray<DropEvent>): ReadonlyArray<Occurrence> =>
    occurrencesOf(events, settings.eventsForAccepts, kinds)

  /** Queues the occurrences of a batch; returns how many drops the full queue refused. */
  const enqueue = (occurrences: ReadonlyArray<Occurrence>): number => {
    let dropped = 0
    for (let i = 0; i < occurrences.length; i++) {
      const o = occurrences[i]!
      stats.offered += o.count
      if (queued.length < settings.eventsQueueSize) queued.push(o)
      else dropped += o.count
    }
    return dropped
  }

  const offerOccurrences = (occurrences: ReadonlyArray<Occurrence>): Effect.Effect<void> =>
    Effect.suspend(() => {
      const dropped = enqueue(occurrences)
      return dropped === 0 ? Effect.void : suppress("queue_full", dropped)
    })

  const offerAll = (events: ReadonlyArray<DropEvent>): Effect.Effect<void> =>
    Effect.suspend(() => offerOccurrences(occurrencesOfBatch(events)))

  const offer = (event: DropEvent): Effect.Effect<void> => offerAll([event])

  const takeToken = (): boolean => {
    const now = Date.now()
    tokens = Math.min(settings.eventsBurst, tokens + ((now - refilledAt) / 1000) * settings.eventsQps)
    refilledAt = now
    if (tokens < 1) return false
    tokens -= 1
    return true
  }

  /** Adds occurrences to their aggregates; returns how many drops found no room for a new one. */
  const aggregate = (occurrences: ReadonlyArray<Occurrence>, now: number): number => {
    let tooMany = 0
    for (const o of occurrences) {
      const key = o.kind.key
      let agg = aggregates.get(key)
      // A window ends for Events that exist; one never created (API down) keeps aggregating.
      if (agg !== undefined && agg.name !== undefined && now - agg.windowStart >= settings.eventsIntervalMillis) {
        aggregates.delete(key)
        if (agg.total > agg.sent) closing.push(agg)
        agg = undefined
      }
      if (agg === undefined) {
        if (aggregates.size >= maxAggregates) {
          tooMany += o.count
          continue
        }
        aggregates.set(key, {
          kind: o.kind,
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
    return tooMany
  }

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
      const { namespace, pod, reason, message, type } = agg.kind
      const name = `${pod}.${Date.now().toString(16)}${(sequence++ % 65_536).toString(16).padStart(4, "0")}`
      const uid = index.podUid(namespace, pod)
      const count = agg.total
      const body = {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: "v1",
          kind: "Pod",
          namespace,
          name: pod,
          ...(uid === undefined ? {} : { uid })
        },
        reason,
        message,
        type,
        count,
        firstTimestamp: kubeTime(agg.first),
        lastTimestamp: kubeTime(agg.last),
        source: { component: "droptailer" },
        reportingComponent: "droptailer",
        reportingInstance: instance
      }
      const result = yield* Effect.result(
        client.request({ method: "POST", path: `/api/v1/namespaces/${namespace}/events`, body, timeoutMillis: 10_000 })
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
          path: `/api/v1/namespaces/${agg.kind.namespace}/events/${agg.name}`,
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
      const taken = queued
      queued = []
      const tooMany = aggregate(taken, now)
      if (tooMany > 0) yield* suppress("too_many_keys", tooMany)
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
