/**
 * The client (`droptailer client`): follows the journal and ships drop/accept events (ClientPipeline).
 * Settings come from the environment (src/client/ClientConfig.ts); `--stdout` (or
 * DROPTAILER_STDOUT=true) prints the events as JSON lines instead of shipping them.
 * Logs go to stderr: stdout carries only events.
 */
import { Effect, Layer } from "effect"
import { type ClientConfig, loadClientConfig } from "../client/ClientConfig.ts"
import { ClientPipeline } from "../client/ClientPipeline.ts"
import type { EventSink } from "../client/EventSink.ts"
import { StdoutSink } from "../client/StdoutSink.ts"
import { CheckpointStore } from "../journal/CheckpointStore.ts"
import { JournalSource } from "../journal/JournalSource.ts"
import { asCommand } from "./Startup.ts"
import { metricsAddressConfig, OpsServer } from "../observability/OpsServer.ts"
import { Readiness } from "../observability/Readiness.ts"
import { Shipper } from "../transport/Shipper.ts"

/**
 * THE place where the client's sink is chosen: stdout with `--stdout` / DROPTAILER_STDOUT=true,
 * otherwise the gRPC Shipper (its settings and TLS files are checked here, before anything starts).
 */
const sinkLayer = (config: ClientConfig, stdoutFlag: boolean) =>
  stdoutFlag || config.stdout ? Effect.succeed(StdoutSink.layer) : Shipper.fromEnvironment

/** All of the client's layers, assembled in one place. */
export const clientLayer = (config: ClientConfig, sink: Layer.Layer<EventSink>) =>
  ClientPipeline.layerWith({
    prefixes: config.prefixes,
    start: config.start,
    batchSize: config.batchSize,
    inFlight: config.inFlight
  }).pipe(
    Layer.provide(Layer.mergeAll(
      JournalSource.layerWith(config.journal),
      CheckpointStore.layerWith({ directory: config.stateDirectory, flushIntervalMillis: config.checkpointIntervalMillis }),
      sink
    ))
  )

/** Runs the client until interrupted; `stdout` is the `--stdout` flag. */
export const runClient = (stdout: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const config = yield* loadClientConfig
    const sink = yield* sinkLayer(config, stdout)
    const metricsAddress = yield* metricsAddressConfig(":9091")
    yield* Layer.build(Layer.provide(OpsServer(metricsAddress), Readiness.layer))
    yield* Effect.gen(function*() {
      const pipeline = yield* ClientPipeline
      yield* pipeline.run
    }).pipe(Effect.provide(clientLayer(config, sink)))
  })).pipe(asCommand("droptailer client"))
