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
  /**
   * True when `event.fields` is exactly what parsing `message` gives with the text before its
   * first `IN=` as the prefix (the server's way): the Shipper then sends only ACTION in the
   * PushBatch map and the server rebuilds the rest from the message (half the bytes to encode,
   * send and decode). Unary Push to an upstream server always carries the whole map.
   */
  readonly fieldsFromMessage?: boolean
}

export class EventSink extends Context.Service<EventSink, {
  readonly deliver: (batch: ReadonlyArray<OutgoingEvent>) => Effect.Effect<void>
}>()("droptailer/client/EventSink") {}
