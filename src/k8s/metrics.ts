/**
 * Prometheus metrics of the Kubernetes side of the server (`droptailer_server_*`).
 *
 * The enricher's hot path counts in plain numbers and flushes them into these metrics per batch
 * (see Enricher): a metric update per event would cost more than the lookup itself.
 */
import { Metric } from "effect"

/** Endpoints resolved from the index, by what they resolved to (pod, service, node). */
export const enrichmentHits = Metric.counter("droptailer_server_enrichment_hits_total", {
  description: "Event endpoints (src/dst) whose IP was found in the Kubernetes index, by kind",
  incremental: true
})

/** Endpoints not found: `external` once all informers synced, `unsynced` before that. */
export const enrichmentMisses = Metric.counter("droptailer_server_enrichment_misses_total", {
  description: "Event endpoints whose IP was not found in the Kubernetes index, by kind",
  incremental: true
})

/** 1 when the informer of a resource has listed and is watching, 0 while it (re)lists. */
export const informerSynced = Metric.gauge("droptailer_server_informer_synced", {
  description: "Whether the informer of a Kubernetes resource is synced (1) or not (0), by resource"
})

/** Objects currently held per resource (slim records). */
export const informerObjects = Metric.gauge("droptailer_server_informer_objects", {
  description: "Objects held by the informer of a Kubernetes resource, by resource"
})

/** Full re-lists per resource and why (start, gone, error). */
export const informerRelists = Metric.counter("droptailer_server_informer_relists_total", {
  description: "Full re-lists of a Kubernetes resource, by resource and reason",
  incremental: true
})

export const eventsPosted = Metric.counter("droptailer_server_events_posted_total", {
  description: "Kubernetes Events created (POST)",
  incremental: true
})

export const eventsPatched = Metric.counter("droptailer_server_events_patched_total", {
  description: "Kubernetes Events whose count was raised (PATCH)",
  incremental: true
})

/**
 * Occurrences (a drop on a pod) left out of Events because the table of pending kinds of Event
 * (DROPTAILER_EVENTS_QUEUE_SIZE) was full when they were of a kind not in it: reason `queue_full`.
 */
export const eventsSuppressed = Metric.counter("droptailer_server_events_suppressed_total", {
  description: "Event occurrences dropped because the table of pending kinds of Event was full (reason queue_full)",
  incremental: true
})

/** Failed calls to the Kubernetes API, by operation (list, watch, create_event, patch_event). */
export const apiErrors = Metric.counter("droptailer_server_kubernetes_api_errors_total", {
  description: "Failed Kubernetes API calls, by operation",
  incremental: true
})

/**
 * The series of an incremental counter with `attributes`, as a counter of its own (same name,
 * description and attributes: the same series). Series made with `Metric.withAttributes` share
 * their counter's one cached series key and rebuild it (a JSON.stringify) whenever updates
 * alternate between series, ~2 µs an update; this one builds its key once.
 */
export const counterSeries = (
  counter: Metric.Metric<number, unknown>,
  attributes: Metric.Metric.Attributes
): Metric.Metric<number, unknown> =>
  Metric.counter(counter.id, { description: counter.description, incremental: true, attributes })
