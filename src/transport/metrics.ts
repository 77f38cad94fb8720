/**
 * The transport's metrics (served over HTTP by the observability work). Label values that come
 * from the network (origin host, protocol) are capped: after `maxLabelValues` distinct values,
 * new ones are counted under `other`, so a hostile or misconfigured client cannot blow up the
 * series count.
 */
import { type Effect, Metric } from "effect"

// ---- client ------------------------------------------------------------------------------

export const clientBatchesSent = Metric.counter("droptailer_client_batches_sent_total", {
  description: "Calls (PushBatch, or Push in the upstream fallback) acknowledged by the server",
  incremental: true
})
export const clientEventsSent = Metric.counter("droptailer_client_events_sent_total", {
  description: "Events acknowledged by the server",
  incremental: true
})
export const clientRetries = Metric.counter("droptailer_client_retries_total", {
  description: "Calls that failed with a transient error and were retried",
  incremental: true
})
export const clientEventsRejected = Metric.counter("droptailer_client_events_rejected_invalid_total", {
  description: "Events the server rejected as INVALID_ARGUMENT (or too large to send); skipped",
  incremental: true
})
export const clientSendLatency = Metric.histogram("droptailer_client_send_latency_seconds", {
  description: "Time from the first attempt of a batch to its acknowledgement, retries included",
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 16 })
})
export const clientUpstreamFallback = Metric.gauge("droptailer_client_upstream_fallback", {
  description: "1 when the server does not implement PushBatch and events go one by one via Push"
})

// ---- server ------------------------------------------------------------------------------

export const serverEventsReceived = Metric.counter("droptailer_server_events_received_total", {
  description: "Events received and written, by action, protocol and origin host",
  incremental: true
})
export const serverRequestsRejected = Metric.counter("droptailer_server_requests_rejected_total", {
  description: "Calls rejected, by reason",
  incremental: true
})
export const serverDuplicatesDropped = Metric.counter("droptailer_server_duplicates_dropped_total", {
  description: "Retransmitted events recognised by event_id and not written again",
  incremental: true
})

/** Caps the distinct values of one label; values beyond the cap become `other`. */
export class BoundedLabel {
  readonly #seen = new Set<string>()
  readonly #max: number
  constructor(max = 100) {
    this.#max = max
  }
  value(raw: string): string {
    if (this.#seen.has(raw)) return raw
    if (this.#seen.size >= this.#max) return "other"
    this.#seen.add(raw)
    return raw
  }
}

/**
 * One metric's series, each attributed once: `Metric.withAttributes` costs about four updates, and
 * the attributed metric remembers its series key. The series are few (their labels are bounded).
 */
export class AttributedMetrics<Input, State> {
  readonly #metric: Metric.Metric<Input, State>
  readonly #byKey = new Map<string, Metric.Metric<Input, State>>()
  constructor(metric: Metric.Metric<Input, State>) {
    this.#metric = metric
  }
  /** The series with `attributes`, which `key` names. */
  get(key: string, attributes: Metric.Metric.Attributes): Metric.Metric<Input, State> {
    let attributed = this.#byKey.get(key)
    if (attributed === undefined) {
      attributed = Metric.withAttributes(this.#metric, attributes)
      this.#byKey.set(key, attributed)
    }
    return attributed
  }
}

/** A batch's count for one series. */
export interface SeriesCount {
  readonly series: Metric.Metric<number, unknown>
  n: number
}

const hostLabel = new BoundedLabel(100)
const protocolLabel = new BoundedLabel(32)
const receivedSeries = new AttributedMetrics(serverEventsReceived)

export interface ReceivedKey {
  readonly action: string
  readonly protocol: string
  readonly host: string
}

/**
 * Counts a batch's events per (action, protocol, host) with one metric update per distinct key.
 * Runs of events with the same key (the usual case: one client, one protocol) cost three string
 * comparisons each, without building the key.
 */
export const countReceived = (events: ReadonlyArray<ReceivedKey>): ReadonlyArray<Effect.Effect<void>> => {
  const counts = new Map<string, SeriesCount>()
  let last: SeriesCount | undefined
  let lastAction = ""
  let lastProtocol = ""
  let lastHost = ""
  for (const event of events) {
    if (last !== undefined && event.action === lastAction && event.protocol === lastProtocol && event.host === lastHost) {
      last.n++
      continue
    }
    const action = event.action === "accept" ? "accept" : "drop"
    const protocol = protocolLabel.value(event.protocol === "" ? "unknown" : event.protocol)
    const host = hostLabel.value(event.host === "" ? "unknown" : event.host)
    const key = `${action}\u0000${protocol}\u0000${host}`
    let entry = counts.get(key)
    if (entry === undefined) {
      entry = { series: receivedSeries.get(key, { action, protocol, host }), n: 0 }
      counts.set(key, entry)
    }
    entry.n++
    last = entry
    lastAction = event.action
    lastProtocol = event.protocol
    lastHost = event.host
  }
  const updates: Array<Effect.Effect<void>> = []
  for (const { series, n } of counts.values()) updates.push(Metric.update(series, n))
  return updates
}

export type RejectReason =
  | "malformed"
  | "missing_timestamp"
  | "missing_fields"
  | "too_large"
  | "batch_too_large"
  | "too_many_fields"
  | "invalid"
  | "permission_denied"
  | "busy"
  | "shutting_down"

export const countRejected = (reason: RejectReason): Effect.Effect<void> =>
  Metric.update(Metric.withAttributes(serverRequestsRejected, { reason }), 1)
