/**
 * The client's `EventSink` over gRPC with mutual TLS.
 *
 * `deliver(batch)` encodes each event once (a `Drop` with event_id, host and the raw message),
 * sends them in PushBatch calls bounded by count and bytes, and completes only when the server
 * acknowledged every event. It never fails:
 * - UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, connection trouble (and any other
 *   unexpected status: losing events is worse than waiting) → retried forever, exponential
 *   backoff with jitter capped at DROPTAILER_RETRY_MAX_MS; the server drops retransmits by id.
 * - INVALID_ARGUMENT on a batch → its events are sent one by one, so only the bad one is skipped
 *   (logged, throttled, and counted).
 * - UNIMPLEMENTED on PushBatch (an upstream Go server) → unary Push per event, remembered.
 * - "message larger than max" → the batch is split; a single event that is too large is skipped.
 * Concurrent `deliver` calls are safe (they share one channel and the fallback flag).
 */
import * as grpc from "@grpc/grpc-js"
import { Clock, type Config, Effect, Layer, Metric, Schedule, Schema } from "effect"
import { EventSink, type OutgoingEvent } from "../client/EventSink.ts"
import { logThrottled } from "../observability/LogThrottle.ts"
import { shipperConfig, type ShipperConfig } from "./ClientConfig.ts"
import { DropBatchWriter, encodeDrop } from "./DropEncoder.ts"
import { BatchAck } from "./generated/droptailer.ts"
import {
  clientBatchesSent,
  clientEventsRejected,
  clientEventsSent,
  clientRetries,
  clientSendLatency,
  clientUpstreamFallback
} from "./metrics.ts"
import { loadTlsMaterial, type TlsConfigError, type TlsMaterial } from "./Tls.ts"
import { wireTimestamp } from "./WireDrop.ts"

/** A call that ended with a gRPC status other than OK. */
export class RpcError extends Schema.TaggedError<RpcError>()("RpcError", {
  code: Schema.Number,
  details: Schema.String
}) {
  get transient(): boolean {
    return this.code !== grpc.status.INVALID_ARGUMENT && this.code !== grpc.status.UNIMPLEMENTED && !this.tooLarge
  }
  get tooLarge(): boolean {
    return this.code === grpc.status.RESOURCE_EXHAUSTED && /larger than max/i.test(this.details)
  }
  override get message(): string {
    return `${grpc.status[this.code] ?? this.code}: ${this.details}`
  }
}

/** A delivery's events and their Drops for PushBatch, framed in one buffer (see DropBatchWriter). */
interface EncodedBatch {
  readonly events: ReadonlyArray<OutgoingEvent>
  readonly bytes: Buffer
  /** Where the frame of `events[i]` ends in `bytes`. */
  readonly ends: ReadonlyArray<number>
}

/** Events `from` to `to` (exclusive) of an encoded batch: what one PushBatch call sends. */
interface Frames {
  readonly batch: EncodedBatch
  readonly from: number
  readonly to: number
}

const pushPath = "/proto.Droptailer/Push"
const pushBatchPath = "/proto.Droptailer/PushBatch"
const identity = (bytes: Buffer): Buffer => bytes
const ignoreResponse = (): void => undefined

/**
 * A Drop's bytes, to size a delivery's buffer up front (a drop log line with an ACTION-only map is
 * ~350): one allocation per delivery, small ones from Node's pool.
 */
const dropBytesGuess = 384

/** The DropBatch of `frames`: consecutive frames are one. */
const framesBytes = ({ batch, from, to }: Frames): Buffer =>
  batch.bytes.subarray(from === 0 ? 0 : batch.ends[from - 1], batch.ends[to - 1])

/** The `Drop` an outgoing event becomes (timestamp with microseconds, id, host, raw line). */
const dropOf = (event: OutgoingEvent, fields: Readonly<Record<string, string>>) => {
  const { seconds, nanos } = wireTimestamp(event.event.timestamp)
  return {
    seconds,
    nanos,
    fields,
    eventId: event.id,
    host: event.event.host,
    message: event.message
  }
}

const dropAction = { ACTION: "drop" } as const
const acceptAction = { ACTION: "accept" } as const

/**
 * The map a PushBatch carries: only ACTION when the server can rebuild the rest from the message
 * (`fieldsFromMessage`, see EventSink), else the whole map.
 */
const batchFields = (event: OutgoingEvent): Readonly<Record<string, string>> =>
  event.fieldsFromMessage === true
    ? (event.event.fields.ACTION === "accept" ? acceptAction : dropAction)
    : event.event.fields

/** One event as the protobuf bytes of a `Drop` with its whole map (Push, and any receiver). */
export const encodeOutgoing = (event: OutgoingEvent): Uint8Array => encodeDrop(dropOf(event, event.event.fields))

/** The channel arguments; `dns:///` targets are balanced round-robin over all addresses. */
export const channelOptions = (config: ShipperConfig): grpc.ChannelOptions => ({
  "grpc.ssl_target_name_override": config.serverName,
  "grpc.default_authority": config.serverName,
  "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": Math.min(config.maxBackoffMillis, 5_000),
  "grpc.max_send_message_length": config.maxBatchBytes + 1024 * 1024,
  "grpc.max_receive_message_length": 1024 * 1024,
  // Per-call work we do not use: call counters and traces for channelz, and grpc-js's own retry
  // bookkeeping (the Shipper retries every transient failure itself, see withRetry).
  "grpc.enable_channelz": 0,
  "grpc.enable_retries": 0
})

/** The Shipper for settings whose TLS files were already loaded and checked. */
export const makeShipperWith = Effect.fn("Shipper.make")(function*(config: ShipperConfig, tls: TlsMaterial) {
  const client = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new grpc.Client(config.address, grpc.credentials.createSsl(tls.ca, tls.key, tls.cert), channelOptions(config))
    ),
    (client) => Effect.sync(() => client.close())
  )
  /** Set once the server answered UNIMPLEMENTED to PushBatch: from then on, unary Push. */
  let upstreamServer = false

  const call = <A>(path: string, bytes: Buffer, decode: (b: Buffer) => A) =>
    Effect.callback<A, RpcError>((resume) => {
      // grpc-js makes an Error per call to give a failed call the caller's stack; we never read
      // it (RpcError keeps code and details), and capturing the stack was most of
      // makeUnaryRequest's own time: capture none.
      const stackTraceLimit = Error.stackTraceLimit
      Error.stackTraceLimit = 0
      let pending: grpc.ClientUnaryCall
      try {
        pending = client.makeUnaryRequest(
          path,
          identity,
          decode,
          bytes,
          new grpc.Metadata(),
          { deadline: Date.now() + config.callTimeoutMillis },
          (error, response) => {
            if (error) resume(Effect.fail(new RpcError({ code: error.code, details: error.details })))
            else resume(Effect.succeed(response as A))
          }
        )
      } finally {
        Error.stackTraceLimit = stackTraceLimit
      }
      return Effect.sync(() => pending.cancel())
    })

  const retrySchedule = Schedule.min([
    Schedule.exponential(`${config.initialBackoffMillis} millis`),
    Schedule.spaced(`${config.maxBackoffMillis} millis`)
  ]).pipe(Schedule.jittered)

  /** Retries transient failures forever; returns the non-transient ones. */
  const withRetry = <A>(attempt: Effect.Effect<A, RpcError>) =>
    attempt.pipe(
      Effect.tapError((error) =>
        error.transient
          ? Effect.andThen(
            Metric.update(clientRetries, 1),
            logThrottled(
              error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED ? "Warning" : "Error",
              `shipper.retry.${error.code}`,
              `sending to ${config.address} failed, retrying: ${error.message}`
            )
          )
          : Effect.void
      ),
      Effect.retry({ schedule: retrySchedule, while: (error: RpcError) => error.transient })
    )

  const rejectInvalid = (event: OutgoingEvent, reason: string) =>
    Effect.andThen(
      Metric.update(clientEventsRejected, 1),
      logThrottled("Warning", "shipper.invalid-event", `the server rejected event ${event.id}, skipped: ${reason}`)
    )

  const acknowledged = (events: number) =>
    Effect.andThen(Metric.update(clientBatchesSent, 1), Metric.update(clientEventsSent, events))

  const fallBackToPush = Effect.suspend(() => {
    if (upstreamServer) return Effect.void
    upstreamServer = true
    return Effect.andThen(
      Metric.update(clientUpstreamFallback, 1),
      Effect.logWarning("the server does not implement PushBatch (upstream server?): sending events one by one with Push")
    )
  })

  /** Event `i` of `batch` on its own (after a batch was refused, or to an upstream server). */
  const sendOne = (batch: EncodedBatch, i: number): Effect.Effect<void> =>
    Effect.suspend(() =>
      upstreamServer
        ? withRetry(call(pushPath, Buffer.from(encodeOutgoing(batch.events[i]!)), ignoreResponse))
        : withRetry(call(pushBatchPath, framesBytes({ batch, from: i, to: i + 1 }), BatchAck.decode))
    ).pipe(
      Effect.matchEffect({
        onSuccess: () => acknowledged(1),
        onFailure: (error) =>
          error.code === grpc.status.UNIMPLEMENTED && !upstreamServer
            ? Effect.andThen(fallBackToPush, sendOne(batch, i))
            : rejectInvalid(batch.events[i]!, error.message)
      })
    )

  const sendEach = ({ batch, from, to }: Frames) =>
    Effect.forEach(Array.from({ length: to - from }, (_, k) => from + k), (i) => sendOne(batch, i), { discard: true })

  /** One PushBatch call's worth of events, with the fallbacks. */
  const sendFrames = (frames: Frames): Effect.Effect<void> =>
    Effect.suspend(() => {
      const count = frames.to - frames.from
      if (upstreamServer || count === 1) return sendEach(frames)
      return withRetry(call(pushBatchPath, framesBytes(frames), BatchAck.decode)).pipe(
        Effect.matchEffect({
          onSuccess: () => acknowledged(count),
          onFailure: (error) => {
            if (error.code === grpc.status.UNIMPLEMENTED) return Effect.andThen(fallBackToPush, sendEach(frames))
            if (error.tooLarge) {
              const half = frames.from + Math.ceil(count / 2)
              return Effect.andThen(
                sendFrames({ batch: frames.batch, from: frames.from, to: half }),
                sendFrames({ batch: frames.batch, from: half, to: frames.to })
              )
            }
            // INVALID_ARGUMENT: find the bad event(s) by sending one by one
            return Effect.andThen(
              logThrottled("Warning", "shipper.invalid-batch", `the server rejected a batch (${error.message}); resending its events one by one`),
              sendEach(frames)
            )
          }
        })
      )
    })

  /** The events' Drops for PushBatch, framed in one buffer; events too large to send are left out (and rejected). */
  const encodeBatch = Effect.fnUntraced(function*(events: ReadonlyArray<OutgoingEvent>) {
    const writer = new DropBatchWriter(events.length * dropBytesGuess)
    const kept: Array<OutgoingEvent> = []
    for (const event of events) {
      const size = writer.encode(dropOf(event, batchFields(event)))
      if (size > config.maxEventBytes) {
        yield* rejectInvalid(event, `${size} bytes encoded, more than DROPTAILER_EVENT_MAX_BYTES=${config.maxEventBytes}`)
        continue
      }
      writer.commit()
      kept.push(event)
    }
    const encoded: EncodedBatch = { events: kept, bytes: writer.bytes, ends: writer.ends }
    return encoded
  })

  /** Cuts an encoded batch into PushBatch calls of at most maxBatchEvents events and maxBatchBytes bytes. */
  const cutIntoCalls = (batch: EncodedBatch): Array<Frames> => {
    const out: Array<Frames> = []
    let from = 0
    let start = 0
    for (let i = 0; i < batch.events.length; i++) {
      const full = i - from >= config.maxBatchEvents || batch.ends[i]! - start > config.maxBatchBytes
      if (i > from && full) {
        out.push({ batch, from, to: i })
        from = i
        start = batch.ends[i - 1]!
      }
    }
    if (batch.events.length > from) out.push({ batch, from, to: batch.events.length })
    return out
  }

  // untraced: no span and no call-site stack capture per delivery (nothing here reads spans)
  const deliver = Effect.fnUntraced(function*(events: ReadonlyArray<OutgoingEvent>) {
    if (events.length === 0) return
    const started = yield* Clock.currentTimeMillis
    const batch = yield* encodeBatch(events)
    for (const frames of cutIntoCalls(batch)) yield* sendFrames(frames)
    const finished = yield* Clock.currentTimeMillis
    yield* Metric.update(clientSendLatency, (finished - started) / 1000)
  })

  return EventSink.of({ deliver })
})

/** Loads and checks the TLS files, then makes the Shipper. */
export const makeShipper = (config: ShipperConfig) =>
  Effect.flatMap(loadTlsMaterial(config.tls), (tls) => makeShipperWith(config, tls))

export class Shipper {
  /** The gRPC EventSink for explicit settings. */
  static readonly layerConfig = (config: ShipperConfig) => Layer.effect(EventSink, makeShipper(config))
  /** The gRPC EventSink, configured from the environment (DROPTAILER_SERVER_ADDRESS, ...). */
  static readonly layer: Layer.Layer<EventSink, TlsConfigError | Config.ConfigError> = Layer.unwrap(
    Effect.map(shipperConfig, Shipper.layerConfig)
  )
  /**
   * Reads the settings and checks the TLS files now, failing with a message that names the
   * variable; the layer it returns cannot fail. For the client command:
   * `const sink = yield* Shipper.fromEnvironment` then provide `sink`.
   */
  static readonly fromEnvironment: Effect.Effect<Layer.Layer<EventSink>, TlsConfigError | Config.ConfigError> = Effect.gen(
    function*() {
      const config = yield* shipperConfig
      const tls = yield* loadTlsMaterial(config.tls)
      return Layer.effect(EventSink, makeShipperWith(config, tls))
    }
  )
}
