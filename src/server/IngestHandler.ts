/**
 * What the server does with events it received, before it acknowledges the call that carried them.
 *
 * The gRPC `IngestServer` decodes and de-duplicates; `handle` then runs the server pipeline
 * (enrich → stdout line → Kubernetes Events and metrics). When `handle` completes, every event's
 * line has been written to stdout, so the call may be acknowledged. It never fails.
 */
import { Context, type Effect } from "effect"
import type { DropEvent } from "../domain/DropEvent.ts"

export class IngestHandler extends Context.Service<IngestHandler, {
  readonly handle: (events: ReadonlyArray<DropEvent>) => Effect.Effect<void>
}>()("droptailer/server/IngestHandler") {}
