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
import { DropArena, encodeDrop, encodeDropIn } from "./DropEncoder.ts"
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

/** One encoded Drop, ready to be framed into a batch (or sent alone with PushBatch). */
interface Encoded {
  readonly id: string
  readonly bytes: Uint8Array
  readonly event: OutgoingEvent
}

const pushPath = "/proto.Droptailer/Push"
const pushBatchPath = "/proto.Droptailer/PushBatch"
const identity = (bytes: Buffer): Buffer => bytes
const ignoreResponse = (): void => undefined

const varintLength = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5)

/** A DropBatch is `repeated Drop drops = 1`: each Drop framed as tag 0x0a, length, bytes. */
const frameBatch = (drops: ReadonlyArray<Encoded>): Buffer => {
  let size = 0
  for (const d of drops) size += 1 + varintLength(d.bytes.length) + d.bytes.length
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  for (const d of drops) {
    out[pos++] = 0x0a
    let n = d.bytes.length
    while (n >= 0x80) {
      out[pos++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    out[pos++] = n
    out.set(d.bytes, pos)
    pos += d.bytes.length
  }
  return out
}

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

/** The event for PushBatch, as a view into `arena` (see DropArena). */
const encodeForBatch = (event: OutgoingEvent, arena: DropArena): Uint8Array =>
  encodeDropIn(dropOf(event, batchFields(event)), arena)

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
  "grpc.max_receive_message_length": 1024 * 1024
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
      const pending = client.makeUnaryRequest(
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

  const rejectInvalid = (event: Encoded, reason: string) =>
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

  /** One event on its own (after a batch was refused, or to an upstream server). */
  const sendOne = (event: Encoded): Effect.Effect<void> =>
    Effect.suspend(() =>
      upstreamServer
        ? withRetry(call(pushPath, Buffer.from(encodeOutgoing(event.event)), ignoreResponse))
        : withRetry(call(pushBatchPath, frameBatch([event]), BatchAck.decode))
    ).pipe(
      Effect.matchEffect({
        onSuccess: () => acknowledged(1),
        onFailure: (error) =>
          error.code === grpc.status.UNIMPLEMENTED && !upstreamServer
            ? Effect.andThen(fallBackToPush, sendOne(event))
            : rejectInvalid(event, error.message)
      })
    )

  const sendEach = (events: ReadonlyArray<Encoded>) => Effect.forEach(events, sendOne, { discard: true })

  /** One PushBatch call's worth of events, with the fallbacks. */
  const sendChunk = (events: ReadonlyArray<Encoded>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (upstreamServer || events.length === 1) return sendEach(events)
      return withRetry(call(pushBatchPath, frameBatch(events), BatchAck.decode)).pipe(
        Effect.matchEffect({
          onSuccess: () => acknowledged(events.length),
          onFailure: (error) => {
            if (error.code === grpc.status.UNIMPLEMENTED) return Effect.andThen(fallBackToPush, sendEach(events))
            if (error.tooLarge) {
              const half = Math.ceil(events.length / 2)
              return Effect.andThen(sendChunk(events.slice(0, half)), sendChunk(events.slice(half)))
            }
            // INVALID_ARGUMENT: find the bad event(s) by sending one by one
            return Effect.andThen(
              logThrottled("Warning", "shipper.invalid-batch", `the server rejected a batch (${error.message}); resending its events one by one`),
              sendEach(events)
            )
          }
        })
      )
    })

  const deliver = Effect.fn("Shipper.deliver")(function*(batch: ReadonlyArray<OutgoingEvent>) {
    if (batch.length === 0) return
    const started = yield* Clock.currentTimeMillis
    let chunk: Array<Encoded> = []
    let chunkBytes = 0
    const arena = new DropArena()
    for (const event of batch) {
      const bytes = encodeForBatch(event, arena)
      const encoded: Encoded = { id: event.id, bytes, event }
      if (bytes.length > config.maxEventBytes) {
        yield* rejectInvalid(encoded, `${bytes.length} bytes encoded, more than DROPTAILER_EVENT_MAX_BYTES=${config.maxEventBytes}`)
        continue
      }
      const framed = bytes.length + 6
      if (chunk.length > 0 && (chunk.length >= config.maxBatchEvents || chunkBytes + framed > config.maxBatchBytes)) {
        yield* sendChunk(chunk)
        chunk = []
        chunkBytes = 0
      }
      chunk.push(encoded)
      chunkBytes += framed
    }
    if (chunk.length > 0) yield* sendChunk(chunk)
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
