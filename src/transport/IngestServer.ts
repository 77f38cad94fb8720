/**
 * The gRPC server: `proto.Droptailer` (Push, PushBatch) and `grpc.health.v1.Health` (Check) over
 * TLS with required, CA-verified client certificates (and an optional allow-list of client CNs).
 *
 * A call is decoded and checked (`WireDrop`), retransmits are dropped by event id, the events go
 * to `IngestHandler.handle` (stdout), and only then is the call acknowledged. Bad requests get
 * INVALID_ARGUMENT with the reason; nothing a client sends can crash the server. On shutdown the
 * server stops accepting, lets in-flight calls finish (up to a deadline), then closes.
 */
import * as grpc from "@grpc/grpc-js"
import { Context, Deferred, Effect, Exit, Layer, Metric, Result, Schema } from "effect"
import type { DropEvent } from "../domain/DropEvent.ts"
import { eventFromFields, maxLineLength, parseBody } from "../domain/Parser.ts"
import { logThrottled } from "../observability/LogThrottle.ts"
import { IngestHandler } from "../server/IngestHandler.ts"
import { DedupLog } from "./DedupLog.ts"
import { DedupWindow } from "./DedupWindow.ts"
import { BatchAck, DroptailerService, Void } from "./generated/droptailer.ts"
import { HealthCheckResponse, HealthService } from "./generated/health.ts"
import { countReceived, countRejected, type RejectReason, serverDuplicatesDropped } from "./metrics.ts"
import { receiveWindowBytes, widenConnectionWindows, widenStreamWindow } from "./ReceiveWindow.ts"
import { ingestServerConfig, type IngestServerConfig } from "./ServerConfig.ts"
import { loadTlsMaterial, type TlsConfigError } from "./Tls.ts"
import { isSharedActionMap, makeWireDecoder, ownFields, type Rejection, timestampMicros, type WireDrop } from "./WireDrop.ts"

export class ServerStartError extends Schema.TaggedError<ServerStartError>()("ServerStartError", {
  message: Schema.String
}) {}

/** A call the server refuses, with the gRPC status it answers. */
class CallRejected {
  readonly code: grpc.status
  readonly reason: RejectReason
  readonly details: string
  constructor(code: grpc.status, reason: RejectReason, details: string) {
    this.code = code
    this.reason = reason
    this.details = details
  }
}

const invalid = (rejection: Rejection) => new CallRejected(grpc.status.INVALID_ARGUMENT, rejection.kind, rejection.reason)

/** The action a client put in the fields (upstream: `ACTION`). */
const actionOf = (fields: Readonly<Record<string, string>>): "drop" | "accept" =>
  fields.ACTION === "accept" ? "accept" : "drop"

/** Used when neither the message nor the fields parse: the event is still printed, not lost. */
const minimalEvent = (fields: Readonly<Record<string, string>>, timestamp: number, host: string): DropEvent => {
  const port = (value: string | undefined) => {
    const n = value === undefined ? NaN : Number(value)
    return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined
  }
  const endpoint = (ip: string | undefined, p: string | undefined) => {
    const out: { ip?: string; port?: number } = {}
    if (ip !== undefined && ip !== "") out.ip = ip
    const n = port(p)
    if (n !== undefined) out.port = n
    return out
  }
  return {
    timestamp,
    action: actionOf(fields),
    host,
    protocol: fields.PROTO ?? "",
    src: endpoint(fields.SRC, fields.SPT),
    dst: endpoint(fields.DST, fields.DPT),
    in: fields.IN ?? "",
    out: fields.OUT ?? "",
    fields: ownFields(fields)
  }
}

/** A map that is only `ACTION`: the client left the rest to be rebuilt from the message. */
const onlyAction = (fields: Readonly<Record<string, string>>): boolean => {
  // (the decoder's shared maps for ACTION=drop and ACTION=accept: no walk over the keys)
  if (isSharedActionMap(fields)) return true
  let keys = 0
  for (const key in fields) {
    if (key !== "ACTION" || ++keys > 1) return false
  }
  return keys === 1
}

/** The host of a Drop's event: as sent, else the map's `host` or `HOST`, else the client's certificate name. */
const hostOf = (drop: WireDrop, peerName: () => string): string => {
  if (drop.host !== "") return drop.host
  const fields = drop.fields
  return fields.host ?? fields.HOST ?? peerName()
}

/**
 * The event for one checked Drop. With the raw line (`message`), the server re-parses it for the
 * full packet detail, classifying it by the ACTION the client sent (the client's prefix is
 * whatever precedes `IN=`); otherwise (upstream clients) it builds the event from the fields.
 * `fields` is the map as sent; when a PushBatch client sent only ACTION (it does so when the
 * message, parsed this way, gives exactly its map), it is the parser's map of the message.
 *
 * (This is `parseLine` with the message's own prefix, without its prefix test: a `startsWith` of
 * the prefix costs ~0.15 µs, and it was done twice per event. `parseBody` of the part from `IN=`
 * on gives the same event; test/transport/event-of-drop.test.ts compares the two.)
 */
export const eventOfDrop = (drop: WireDrop, peerName: () => string): DropEvent => eventOf(drop, hostOf(drop, peerName))

/** `eventOfDrop` for a Drop whose host (`hostOf`) is known. */
const eventOf = (drop: WireDrop, host: string): DropEvent => {
  const fields = drop.fields
  const timestamp = timestampMicros(drop.timestamp)
  const context = { timestamp, host }
  const message = drop.message
  // (parseLine takes a message up to maxLineLength, else it is Malformed)
  if (message !== "" && message.length <= maxLineLength) {
    const at = message.indexOf("IN=")
    const parsed = parseBody(at > 0 ? message.slice(at) : message, actionOf(fields), context)
    if (parsed._tag === "Event") {
      // the parser's fresh object: give it the wire map (DESIGN: `fields` as sent) without a copy
      if (!onlyAction(fields)) (parsed.event as { fields: DropEvent["fields"] }).fields = fields
      return parsed.event
    }
  }
  return eventFromFields(fields, context) ?? minimalEvent(fields, timestamp, host)
}

/**
 * The client certificate's CN, cached per connection (peer address): reading the peer
 * certificate builds a large object, too much to do for every call of an upstream client.
 */
const peerNames = new Map<string, string>()
const peerCommonName = (call: grpc.ServerUnaryCall<unknown, unknown>): string => {
  const peer = call.getPeer()
  const cached = peerNames.get(peer)
  if (cached !== undefined) return cached
  const name = readPeerCommonName(call)
  if (peerNames.size >= 10_000) peerNames.clear()
  peerNames.set(peer, name)
  return name
}

const readPeerCommonName = (call: grpc.ServerUnaryCall<unknown, unknown>): string => {
  const subject = call.getAuthContext().sslPeerCertificate?.subject as Record<string, string | Array<string>> | undefined
  const cn = subject?.CN
  return Array.isArray(cn) ? (cn[0] ?? "") : (cn ?? "")
}

const peerSubject = (call: grpc.ServerUnaryCall<unknown, unknown>): string => {
  const subject = call.getAuthContext().sslPeerCertificate?.subject as Record<string, string | Array<string>> | undefined
  if (subject === undefined) return ""
  return Object.entries(subject).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : v}`).join(",")
}

/** Events per write when their ids are recorded (DROPTAILER_DEDUP_FILE): ~64 KiB of JSON lines. */
const recordEvery = 64

/**
 * Events per piece otherwise. A piece's events are built, written and let go before the next
 * piece is built: the events being formatted are still in the CPU's caches, and die young (built
 * all at once, a 2000-event call's events are ~3.5 MB). Measured: decode, parse and format ~15%
 * less CPU per event than building the whole call first (pieces of 64 to 512 alike).
 */
const pieceEvents = 256

/** The DedupLog of DROPTAILER_DEDUP_FILE, its ids read into `window`; closed with the server. */
const openDedupLog = (file: string, capacity: number, window: DedupWindow) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => DedupLog.open(file, capacity, window),
      catch: (error) => new ServerStartError({ message: `DROPTAILER_DEDUP_FILE=${file}: ${error instanceof Error ? error.message : String(error)}` })
    }),
    (log) => Effect.sync(() => log.close())
  ).pipe(
    Effect.tap((log) => Effect.logInfo(`de-duplication window: ids of earlier runs read from ${log.path}`))
  )

/** The service definition with raw-bytes requests: decoding is ours (see WireDrop). */
const rawRequests = <D extends grpc.ServiceDefinition>(definition: D): D =>
  Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [
      name,
      { ...method, requestDeserialize: (bytes: Buffer) => bytes }
    ])
  ) as unknown as D

export interface IngestServerShape {
  /** The port actually bound (SERVER_PORT=0 picks one). */
  readonly port: number
}

export class IngestServer extends Context.Service<IngestServer, IngestServerShape>()("droptailer/transport/IngestServer") {
  /** The server for the given settings; shut down gracefully when the scope closes. */
  static readonly make = Effect.fn("IngestServer.make")(function*(config: IngestServerConfig) {
    const tls = yield* loadTlsMaterial(config.tls)
    const handler = yield* IngestHandler
    const context = yield* Effect.context<never>()
    const decoder = makeWireDecoder(config.limits)
    const dedup = new DedupWindow(config.dedupWindow)
    const dedupLog = config.dedupFile === undefined ? undefined : yield* openDedupLog(config.dedupFile, config.dedupWindow, dedup)
    /** The ids of written events go to disk before the call is acknowledged (DedupLog). */
    const persist = (hosts: ReadonlyArray<string>, drops: ReadonlyArray<WireDrop>, from: number, to: number): Effect.Effect<void> => {
      if (dedupLog === undefined) return Effect.void
      const written: Array<string> = []
      const writtenHosts: Array<string> = []
      for (let i = from; i < to; i++) {
        if (drops[i]!.eventId === "") continue
        writtenHosts.push(hosts[i]!)
        written.push(drops[i]!.eventId)
      }
      try {
        dedupLog.append(writtenHosts, written)
        return Effect.void
      } catch (error) {
        // the events are written: acknowledge them; only a restart right now could repeat them
        return logThrottled("Warning", "grpc.dedup-file", "cannot append to DROPTAILER_DEDUP_FILE", {
          file: dedupLog.path,
          error: String(error)
        })
      }
    }
    /**
     * A call's events are built and handed over in pieces (`pieceEvents`; with a
     * DROPTAILER_DEDUP_FILE, `recordEvery`, each recorded once written: a kill can then interrupt
     * only the write of one piece, and only its printed part can repeat after a restart).
     */
    const every = dedupLog === undefined ? pieceEvents : recordEvery
    const allowed = new Set(config.allowedClients)
    let active = 0
    let draining = false

    /** Calls between de-duplication and the end of `handle`. */
    const handling = new Set<Deferred.Deferred<void>>()

    /**
     * De-duplicate, hand over, count; resolves with (accepted, duplicates). All the call's ids are
     * entered into the window first, before anything is written (which also catches repeats
     * inside one batch), and those of the events not handed over are taken out again if a piece's
     * `handle` did not complete (interrupted, or a defect), so a retransmit is then accepted for
     * them (and skips the pieces written). A call whose events are duplicates of a call still
     * being handled (a client retrying after its deadline) is acknowledged only after that call
     * finished, and refused with UNAVAILABLE if that call failed: an ack always means "written".
     */
    const ingest = (drops: ReadonlyArray<WireDrop>, peerName: () => string): Effect.Effect<
      { accepted: number; duplicates: number },
      CallRejected
    > => {
      /** The drops to write, and the host of each (the one its event gets). */
      const kept: Array<WireDrop> = []
      const hosts: Array<string> = []
      const repeated: Array<{ host: string; id: string }> = []
      for (let i = 0; i < drops.length; i++) {
        const drop = drops[i]!
        const host = hostOf(drop, peerName)
        const id = drop.eventId
        if (id !== "" && !dedup.add(host, id, drop.idHash)) {
          repeated.push({ host, id })
          continue
        }
        kept.push(drop)
        hosts.push(host)
      }
      const earlier = repeated.length > 0 ? [...handling] : []
      const done = Deferred.makeUnsafe<void>()
      handling.add(done)
      const duplicates = repeated.length
      /** The kept drops before this one were handed over (their ids stay in the window). */
      let handedOver = 0
      /** Builds the events of kept[from..), hands them over, records and counts them. */
      const piece = (from: number): Effect.Effect<void> =>
        Effect.suspend(() => {
          const to = Math.min(kept.length, from + every)
          const events: Array<DropEvent> = new Array(to - from)
          for (let i = from; i < to; i++) events[i - from] = eventOf(kept[i]!, hosts[i]!)
          return Effect.andThen(
            handler.handle(events),
            Effect.suspend(() => {
              handedOver = to
              return Effect.andThen(persist(hosts, kept, from, to), Effect.all(countReceived(events), { discard: true }))
            })
          )
        })
      const write = kept.length === 0
        ? handler.handle([])
        : kept.length <= every
        ? piece(0)
        : Effect.forEach(Array.from({ length: Math.ceil(kept.length / every) }, (_, i) => i * every), piece, { discard: true })
      return write.pipe(
        Effect.onError(() =>
          Effect.sync(() => {
            for (let i = handedOver; i < kept.length; i++) {
              if (kept[i]!.eventId !== "") dedup.remove(hosts[i]!, kept[i]!.eventId)
            }
          })
        ),
        Effect.ensuring(Effect.sync(() => {
          handling.delete(done)
          Deferred.doneUnsafe(done, Exit.void)
        })),
        Effect.andThen(() =>
          earlier.length === 0 ? Effect.void : Effect.forEach(earlier, (d) => Deferred.await(d), { discard: true })
        ),
        Effect.andThen(() =>
          repeated.every(({ host, id }) => dedup.has(host, id))
            ? Effect.void
            : Effect.fail(
              new CallRejected(grpc.status.UNAVAILABLE, "busy", "an earlier copy of these events failed; retry")
            )
        ),
        Effect.andThen(() => duplicates > 0 ? Metric.update(serverDuplicatesDropped, duplicates) : Effect.void),
        Effect.as({ accepted: kept.length, duplicates })
      )
    }

    /** Runs one call: admission, decoding, ingest, then the callback (the acknowledgement). */
    const serve = <Res>(
      call: grpc.ServerUnaryCall<Buffer, Res>,
      callback: grpc.sendUnaryData<Res>,
      decode: (bytes: Buffer) => ReturnType<typeof decoder.batch>,
      respond: (ack: { accepted: number; duplicates: number }) => Res
    ): void => {
      const peerName = () => peerCommonName(call)
      const program = Effect.suspend(() => {
        if (draining) {
          return Effect.fail(new CallRejected(grpc.status.UNAVAILABLE, "shutting_down", "server is shutting down"))
        }
        // checked from the certificate of this very call, never from the per-connection cache
        if (allowed.size > 0 && !allowed.has(readPeerCommonName(call)) && !allowed.has(peerSubject(call))) {
          return Effect.fail(
            new CallRejected(grpc.status.PERMISSION_DENIED, "permission_denied", `client "${readPeerCommonName(call)}" is not allowed`)
          )
        }
        if (active >= config.maxConcurrentCalls) {
          return Effect.fail(new CallRejected(grpc.status.RESOURCE_EXHAUSTED, "busy", "too many concurrent calls, retry later"))
        }
        const decoded = decode(call.request)
        if (decoded._tag === "Failure") return Effect.fail(invalid(decoded.failure))
        active++
        return ingest(decoded.success, peerName).pipe(Effect.ensuring(Effect.sync(() => active--)))
      }).pipe(
        Effect.tapError((rejected) =>
          Effect.andThen(
            countRejected(rejected.reason),
            logThrottled("Warning", `grpc.rejected.${rejected.reason}`, "request rejected", {
              code: grpc.status[rejected.code],
              reason: rejected.details,
              peer: call.getPeer()
            })
          )
        )
      )
      Effect.runCallbackWith(context)(program, {
        onExit: (exit) => {
          if (Exit.isSuccess(exit)) {
            callback(null, respond(exit.value))
          } else {
            const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
            if (failure !== undefined && failure._tag === "Fail") {
              callback({ code: failure.error.code, details: failure.error.details })
            } else {
              // interrupted (shutdown) or a defect (e.g. stdout broken): not written, not acknowledged
              const defect = exit.cause.reasons.find((r) => r._tag === "Die")
              callback({
                code: grpc.status.UNAVAILABLE,
                details: defect?._tag === "Die" ? `server cannot handle events: ${String(defect.defect)}` : "interrupted"
              })
              if (defect !== undefined) {
                Effect.runFork(
                  logThrottled("Error", "grpc.handler-defect", "events not handled, call refused", { defect: String(defect._tag === "Die" ? defect.defect : "") })
                )
              }
            }
          }
        }
      })
    }

    const voidResponse: Void = {}
    const droptailer: grpc.UntypedServiceImplementation = {
      push: (call: grpc.ServerUnaryCall<Buffer, Void>, callback: grpc.sendUnaryData<Void>) =>
        serve(call, callback, (bytes) => Result.map(decoder.single(bytes), (drop) => [drop]), () => voidResponse),
      pushBatch: (call: grpc.ServerUnaryCall<Buffer, BatchAck>, callback: grpc.sendUnaryData<BatchAck>) =>
        serve(call, callback, decoder.batch, (ack) => ack)
    }
    const health: grpc.UntypedServiceImplementation = {
      check: (call: grpc.ServerUnaryCall<{ service: string }, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
        const service = call.request.service
        if (service === "" || service === "proto.Droptailer") {
          callback(null, {
            status: draining ? HealthCheckResponse_NOT_SERVING : HealthCheckResponse_SERVING
          })
        } else {
          callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${service}` })
        }
      }
    }

    const server = yield* Effect.acquireRelease(
      Effect.callback<{ server: grpc.Server; port: number }, ServerStartError>((resume) => {
        const server = new grpc.Server({
          "grpc.max_receive_message_length": config.maxReceiveBytes,
          "grpc.max_send_message_length": 1024 * 1024,
          "grpc.max_concurrent_streams": Math.min(config.maxConcurrentCalls, 1000),
          "grpc.keepalive_time_ms": 60_000,
          "grpc.keepalive_timeout_ms": 20_000,
          "grpc.keepalive_permit_without_calls": 1,
          "grpc.http2.min_ping_interval_without_data_ms": 10_000
        })
        widenStreamWindow(server, receiveWindowBytes)
        server.addService(rawRequests(DroptailerService), droptailer)
        server.addService(HealthService, health)
        const credentials = grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true)
        server.bindAsync(`${config.listenHost}:${config.port}`, credentials, (error, port) => {
          if (error) {
            server.forceShutdown()
            resume(Effect.fail(new ServerStartError({ message: `cannot listen on ${config.listenHost}:${config.port}: ${error.message}` })))
          } else {
            widenConnectionWindows(server, receiveWindowBytes)
            resume(Effect.succeed({ server, port }))
          }
        })
      }),
      ({ server }) =>
        Effect.gen(function*() {
          draining = true
          yield* Effect.logInfo(`shutting down: finishing ${active} in-flight calls`)
          const graceful = yield* Effect.callback<boolean>((resume) => {
            const timer = setTimeout(() => resume(Effect.succeed(false)), config.shutdownTimeoutMillis)
            server.tryShutdown(() => {
              clearTimeout(timer)
              resume(Effect.succeed(true))
            })
          })
          if (!graceful) {
            yield* Effect.logWarning(`${active} in-flight calls did not finish in time; closing them`)
            server.forceShutdown()
          }
          yield* Effect.logInfo("server stopped")
        })
    )
    yield* Effect.logInfo(`listening on ${config.listenHost}:${server.port}`).pipe(
      Effect.annotateLogs({
        certificate: tls.commonName,
        allowedClients: config.allowedClients.length === 0 ? "any" : config.allowedClients.join(",")
      })
    )
    return IngestServer.of({ port: server.port })
  })

  static readonly layerConfig = (config: IngestServerConfig): Layer.Layer<IngestServer, TlsConfigError | ServerStartError, IngestHandler> =>
    Layer.effect(IngestServer, IngestServer.make(config))

  /** From the environment (SERVER_*, DROPTAILER_*). */
  static readonly layer = Layer.unwrap(Effect.map(ingestServerConfig, IngestServer.layerConfig))
}

const HealthCheckResponse_SERVING = 1 as const
const HealthCheckResponse_NOT_SERVING = 2 as const
