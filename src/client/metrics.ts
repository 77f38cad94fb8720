/** Metrics of the client pipeline (served over HTTP by the observability work). */
import { Metric } from "effect"

const events = Metric.counter("droptailer_client_events_total", {
  description: "Drop/accept events parsed from the journal, by action",
  incremental: true
})
export const dropEvents = events.pipe(Metric.withAttributes({ action: "drop" }))
export const acceptEvents = events.pipe(Metric.withAttributes({ action: "accept" }))

export const skippedLines = Metric.counter("droptailer_client_skipped_lines_total", {
  description: "Journal entries that are neither drops nor accepts (moved past)",
  incremental: true
})

export const malformedLines = Metric.counter("droptailer_client_malformed_lines_total", {
  description: "Journal entries with a drop/accept prefix that could not be parsed",
  incremental: true
})

export const eventsAcknowledged = Metric.counter("droptailer_client_events_acknowledged_total", {
  description: "Events the sink acknowledged",
  incremental: true
})

export const batchSize = Metric.histogram("droptailer_client_batch_entries", {
  description: "Journal entries per delivered batch",
  boundaries: [1, 10, 50, 100, 250, 500, 1000, 2000]
})
