/** Metrics of the journal source and checkpoint (served over HTTP by the observability work). */
import { Metric } from "effect"

export const journalEntriesRead = Metric.counter("droptailer_client_journal_entries_read_total", {
  description: "Journal entries read from journalctl",
  incremental: true
})

export const journalctlRestarts = Metric.counter("droptailer_client_journalctl_restarts_total", {
  description: "Times journalctl exited or failed and was started again",
  incremental: true
})

export const cursorLostResets = Metric.counter("droptailer_client_cursor_lost_resets_total", {
  description: "Times the saved cursor no longer existed (journal rotated or vacuumed) and reading restarted from the oldest entry",
  incremental: true
})

export const checkpointLagSeconds = Metric.gauge("droptailer_client_checkpoint_lag_seconds", {
  description: "Now minus the realtime clock of the last acknowledged journal entry"
})

export const checkpointWrites = Metric.counter("droptailer_client_checkpoint_writes_total", {
  description: "Checkpoint files written (coalesced)",
  incremental: true
})

export const checkpointWriteErrors = Metric.counter("droptailer_client_checkpoint_write_errors_total", {
  description: "Checkpoint writes that failed (retried at the next flush)",
  incremental: true
})
