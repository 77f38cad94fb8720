/**
 * Where the client delivers events: the gRPC `Shipper`, or `--stdout` for a client without a server.
 *
 * The contract that makes the checkpoint safe: `deliver` completes only once every event of the batch
 * has been acknowledged (written, or accepted by the server). It never fails: transient trouble is
 * retried inside, an event the receiver rejects as invalid is logged, counted and skipped. The client
 * pipeline advances the journal checkpoint past a batch only after its `deliver` completed.
 */
import { Context, type Effect } from "effect"
import type { DropEvent } from "../domain/DropEvent.ts"

/** An event on its way out, with what the wire needs besides the parsed event. */
export interface OutgoingEvent {
  /** Stable per journal entry (derived from its cursor), so a receiver can drop retransmits. */
  readonly id: string
  /** The journal MESSAGE the event was parsed from, so a receiver can re-parse it fully. */
  readonly message: string
  readonly event: DropEvent
}

export class EventSink extends Context.Service<EventSink, {
  readonly deliver: (batch: ReadonlyArray<OutgoingEvent>) => Effect.Effect<void>
}>()("droptailer/client/EventSink") {}
