/**
 * Kubernetes Events for drops, so `kubectl describe pod` and `kubectl get events` show them.
 *
 * For each drop whose source or destination is a pod, a core/v1 Event (type Warning, reason
 * `PacketDrop`, source.component `droptailer`) on that pod names the peer (its pod, service or
 * node name, or the IP), the port, the protocol and the firewall host. Accepts produce Normal
 * `PacketAccept` Events only with DROPTAILER_EVENTS_FOR_ACCEPTS=true.
 *
 * Protecting the API server:
 * - `offerAll` never blocks and queues nothing: in the caller's fiber, each drop is counted
 *   straight into the pending aggregate of its kind of Event (pod, peer, port, protocol), so a
 *   batch costs a few Map lookups per drop and allocates only for kinds not pending yet.
 * - The table of pending kinds is bounded (DROPTAILER_EVENTS_QUEUE_SIZE kinds): when it is full, an
 *   occurrence of a kind not in it is dropped, counted
 *   (`droptailer_server_events_suppressed_total{reason="queue_full"}`) and logged (rate-limited);
 *   occurrences of a kind already pending are always counted. A kind stays pending until its
 *   window is over and its count sent; while it waits for the API server it keeps counting.
 * - De-duplication: occurrences with the same (pod, peer, port, protocol) within
 *   DROPTAILER_EVENTS_INTERVAL aggregate into one Event: the first creates it (POST), repeats
 *   raise its `count` and `lastTimestamp` with a strategic-merge PATCH, flushed every
 *   DROPTAILER_EVENTS_FLUSH_INTERVAL (not one call per repeat).
 * - A background fiber creates and patches the Events every 200 ms; a token bucket
 *   (DROPTAILER_EVENTS_QPS, DROPTAILER_EVENTS_BURST) bounds all calls; what does not fit waits
 *   (still aggregating) for the next tick.
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
  /** Counts the Events of one (enriched) event. Never blocks, never fails. */
  readonly offer: (event: DropEvent) => Effect.Effect<void>
  /** Counts the Events of a batch into the pending kinds, at once (nothing is queued). */
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
  /** Its aggregate in the table of pending kinds, when it has one (saves the lookup by key). */
  aggregate: Aggregate | undefined
}

/** The occurrences of one kind within one window: one Event. */
export interface Aggregate {
  readonly kind: Kind
  /** Our clock (ms) when the window started. */
  readonly windowStart: number
  /** Name of the Event object once created. */
  name: string | undefined
  /** Occurrences counted so far. */
  total: number
  /** Count the API server has. */
  sent: number
  /** Epoch microseconds of the first and the last drop. */
  first: number
  last: number
  /** Whether it is in the table of pending kinds (false once its window is over). */
  pending: boolean
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
    aggregate: undefined
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

  /** The kind if it is known, adding nothing (so a flood of new kinds costs no memory here). */
  find(event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst"): Kind | undefined {
    const kinds = this.#byPod.get(self.name!)?.get(event.dst.port)?.get(peer.ip ?? "")
    if (kinds === undefined) return undefined
    for (let i = 0; i < kinds.length; i++) {
      if (isKindOf(kinds[i]!, event, self, peer, side)) return kinds[i]!
    }
    return undefined
  }

  #peersOf(pod: string, port: number | undefined): Map<string, Array<Kind>> {
    return getOrAdd(getOrAdd(this.#byPod, pod, () => new Map()), port, () => new Map())
  }
}

const isNamedPod = (e: Endpoint): boolean => e.kind === "pod" && e.namespace !== undefined && e.name !== undefined

export interface PendingKindsOptions {
  /** At most this many kinds pending at once (DROPTAILER_EVENTS_QUEUE_SIZE). */
  readonly max: number
  /** DROPTAILER_EVENTS_INTERVAL: an Event aggregates the repeats within it. */
  readonly intervalMillis: number
  /** Accepts make Events too (DROPTAILER_EVENTS_FOR_ACCEPTS). */
  readonly withAccepts: boolean
}

/**
 * The table of pending kinds: the aggregate of each kind of Event (one per pod among src and dst
 * of an event) in its current window, keyed by the kind's key. `add` counts a batch into it
 * synchronously; the sink's tick creates and patches Events from it and removes the aggregates
 * that are done. Its size is bounded: an occurrence of a new kind when it is full is dropped
 * (`dropped`); one of a kind already in it is always counted. Aggregates whose window ended with
 * counts still to send wait in `closing` for the next flush (only a created Event's window ends,
 * so while the API server is away at most one per kind waits there).
 */
export class PendingKinds {
  readonly #options: PendingKindsOptions
  readonly #kinds: KindIndex
  /** In order of creation (the tick creates the oldest Events first). */
  readonly aggregates = new Map<string, Aggregate>()
  /** Aggregates whose window ended while they still had counts to send. */
  readonly closing: Array<Aggregate> = []
  /** Occurrences counted, and dropped because the table was full, so far. */
  counted = 0
  dropped = 0
  constructor(options: PendingKindsOptions, kinds: KindIndex = new KindIndex()) {
    this.#options = options
    this.#kinds = kinds
  }

  /** Counts the occurrences of a batch at `now` (our clock, ms); returns how many were dropped. */
  add(events: ReadonlyArray<DropEvent>, now: number): number {
    const before = this.dropped
    const withAccepts = this.#options.withAccepts
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      if (event.action === "accept" && !withAccepts) continue
      if (isNamedPod(event.src)) this.#count(event, event.src, event.dst, "src", now)
      if (isNamedPod(event.dst)) this.#count(event, event.dst, event.src, "dst", now)
    }
    return this.dropped - before
  }

  #count(event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst", now: number): void {
    const kind = this.aggregates.size < this.#options.max
      ? this.#kinds.get(event, self, peer, side)
      : this.#kindWhenFull(event, self, peer, side)
    if (kind === undefined) {
      this.dropped++
      return
    }
    let agg = kind.aggregate
    if (agg === undefined || !agg.pending || this.#ended(agg, now)) {
      agg = this.#aggregateOf(kind, event.timestamp, now)
      if (agg === undefined) {
        this.dropped++
        return
      }
    }
    this.counted++
    agg.total++
    const t = event.timestamp
    if (t > agg.last) agg.last = t
    else if (t < agg.first) agg.first = t
  }

  /**
   * With the table full, the kind only when it may be pending: known, or its key in the table (the
   * KindIndex may have started over since). A flood of new kinds (a port scan) then costs a key
   * and a lookup per drop, not a kind with its message.
   */
  #kindWhenFull(event: DropEvent, self: Endpoint, peer: Endpoint, side: "src" | "dst"): Kind | undefined {
    const known = this.#kinds.find(event, self, peer, side)
    if (known !== undefined) return known
    return this.aggregates.has(occurrenceKey(event, self, peer, side)) ? this.#kinds.get(event, self, peer, side) : undefined
  }

  /** A window ends for Events that exist; one never created (API down) keeps aggregating. */
  #ended(agg: Aggregate, now: number): boolean {
    return agg.name !== undefined && now - agg.windowStart >= this.#options.intervalMillis
  }

  /**
   * The kind's aggregate, found by key (the kind may be new to the KindIndex, which starts over
   * beyond its bound) or started (a new window); undefined when the table is full.
   */
  #aggregateOf(kind: Kind, timestamp: number, now: number): Aggregate | undefined {
    let agg = this.aggregates.get(kind.key)
    if (agg !== undefined && this.#ended(agg, now)) {
      this.remove(agg)
      if (agg.total > agg.sent) this.closing.push(agg)
      agg = undefined
    }
    if (agg === undefined) {
      if (this.aggregates.size >= this.#options.max) return undefined
      agg = { kind, windowStart: now, name: undefined, total: 0, sent: 0, first: timestamp, last: timestamp, pending: true }
      this.aggregates.set(kind.key, agg)
    }
    kind.aggregate = agg
    return agg
  }

  /** Takes an aggregate out of the table (its window is over). */
  remove(agg: Aggregate): void {
    agg.pending = false
    this.aggregates.delete(agg.kind.key)
  }

  /** Aggregates with counts the API server does not have yet. */
  get unsent(): number {
    let n = this.closing.length
    for (const agg of this.aggregates.values()) if (agg.name === undefined || agg.total > agg.sent) n++
    return n
  }
}

/** metav1.Time: RFC 3339 with seconds. */
const kubeTime = (micros: number) => `${formatTimestamp(micros).slice(0, 19)}Z`

const tickMillis = 200

export const makeEventsSink = Effect.fn("EventsSink.make")(function*(settings: KubeSettingsShape) {
  const client = yield* KubeClient
  const index = yield* IpIndex
  const table = new PendingKinds({
    max: settings.eventsQueueSize,
    intervalMillis: settings.eventsIntervalMillis,
    withAccepts: settings.eventsForAccepts
  })
  const { aggregates, closing } = table
  const instance = hostname()
  const stats = { posted: 0, patched: 0 }
  let tokens = settings.eventsBurst
  let refilledAt = Date.now()
  let nextFlush = Date.now() + settings.eventsFlushMillis
  let pausedUntil = 0
  let failures = 0
  let sequence = 0

  const suppressed = Metric.withAttributes(eventsSuppressed, { reason: "queue_full" })
  const tableFull = (dropped: number) =>
    Effect.andThen(
      Metric.update(suppressed, dropped),
      logThrottled("Warning", "k8s.events.queue-full", "the table of pending kinds of Kubernetes Event is full: drops of new kinds get no Event", {
        dropped,
        pendingKinds: aggregates.size
      })
    )

  const offerAll = (events: ReadonlyArray<DropEvent>): Effect.Effect<void> =>
    Effect.suspend(() => {
      const dropped = table.add(events, Date.now())
      return dropped === 0 ? Effect.void : tableFull(dropped)
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

  /** One round: create new Events, flush counts when due. */
  const tick = (force: boolean) =>
    Effect.gen(function*() {
      const now = Date.now()
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
        for (const agg of aggregates.values()) {
          if (now - agg.windowStart >= settings.eventsIntervalMillis && agg.name !== undefined && agg.total <= agg.sent) {
            table.remove(agg)
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
      offered: table.counted + table.dropped,
      posted: stats.posted,
      patched: stats.patched,
      suppressed: table.dropped,
      pending: table.unsent
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
