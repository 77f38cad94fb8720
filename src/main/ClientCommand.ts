/**
 * `droptailer client` — follows the journal and ships drop/accept events (ClientPipeline).
 * Settings come from the environment (src/client/ClientConfig.ts); `--stdout` (or
 * DROPTAILER_STDOUT=true) prints the events as JSON lines instead of shipping them.
 * Logs go to stderr: stdout carries only events.
 */
import { Effect, Layer, Logger, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { type ClientConfig, loadClientConfig } from "../client/ClientConfig.ts"
import { ClientPipeline } from "../client/ClientPipeline.ts"
import type { EventSink } from "../client/EventSink.ts"
import { StdoutSink } from "../client/StdoutSink.ts"
import { CheckpointStore } from "../journal/CheckpointStore.ts"
import { JournalSource } from "../journal/JournalSource.ts"

export class SinkUnavailable extends Schema.TaggedError<SinkUnavailable>()("SinkUnavailable", {
  message: Schema.String
}) {}

/**
 * THE place where the client's sink is chosen.
 * TODO(shipper): when src/transport/Shipper.ts lands, return its layer (it provides EventSink)
 * instead of failing, e.g. `return Shipper.layer` (configured from DROPTAILER_SERVER_ADDRESS etc.).
 */
const sinkLayer = (config: ClientConfig, stdoutFlag: boolean): Effect.Effect<Layer.Layer<EventSink>, SinkUnavailable> =>
  stdoutFlag || config.stdout
    ? Effect.succeed(StdoutSink.layer)
    : Effect.fail(
      new SinkUnavailable({
        message:
          "droptailer client: shipping to the server (gRPC) is not available in this build yet; run with --stdout (or DROPTAILER_STDOUT=true) to print the events"
      })
    )

/** All of the client's layers, assembled in one place. */
export const clientLayer = (config: ClientConfig, sink: Layer.Layer<EventSink>) =>
  ClientPipeline.layerWith({
    prefixes: config.prefixes,
    start: config.start,
    batchSize: config.batchSize,
    batchWindowMillis: config.batchWindowMillis,
    inFlight: config.inFlight
  }).pipe(
    Layer.provide(Layer.mergeAll(
      JournalSource.layerWith(config.journal),
      CheckpointStore.layerWith({ directory: config.stateDirectory, flushIntervalMillis: config.checkpointIntervalMillis }),
      sink
    ))
  )

export const clientCommand = Command.make(
  "client",
  {
    stdout: Flag.Boolean("stdout").pipe(
      Flag.withDescription("Print events as JSON lines on stdout instead of shipping them (also DROPTAILER_STDOUT=true)"),
      Flag.withDefault(false)
    )
  },
  ({ stdout }) =>
    Effect.gen(function*() {
      const config = yield* loadClientConfig
      const sink = yield* sinkLayer(config, stdout)
      yield* Effect.gen(function*() {
        const pipeline = yield* ClientPipeline
        yield* pipeline.run
      }).pipe(Effect.provide(clientLayer(config, sink)))
    }).pipe(
      // on stderr (runMain reports the failure again, on stdout)
      Effect.tapError((error) => Effect.logError(error.message)),
      Effect.provideService(Logger.LogToStderr, true)
    )
).pipe(
  Command.withDescription("Follow the systemd journal and ship firewall drop/accept events to the droptailer server")
)
