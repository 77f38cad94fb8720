/**
 * `droptailer server`: the gRPC ingest server (mutual TLS) printing one line per event on stdout.
 * Settings from the environment (SERVER_PORT, SERVER_CERTIFICATE, SERVER_KEY,
 * SERVER_CA_CERTIFICATE, DROPTAILER_*); logs go to stderr so stdout carries only events. A bad
 * setting (unreadable or mismatched certificate, expired, not a CA, ...) stops it before it
 * serves, with a non-zero exit and a message naming the variable.
 */
import { Effect, Layer, Logger, Runtime } from "effect"
import { Command } from "effect/cli"
import { StdoutIngestHandler } from "../server/StdoutIngestHandler.ts"
import { IngestServer } from "../transport/IngestServer.ts"

export const serverLayer = IngestServer.layer.pipe(Layer.provide(StdoutIngestHandler.layer))

/** Start-up failed and was already logged on stderr: exit 1 without a second report on stdout. */
export class ServerStartupFailed extends Error {
  override readonly [Runtime.errorReported] = false
}

export const runServer = Layer.launch(serverLayer).pipe(
  Effect.catch((error) =>
    Effect.andThen(
      Effect.logError(`droptailer server cannot start: ${error.message}`),
      Effect.fail(new ServerStartupFailed(error.message))
    )
  ),
  // logs on stderr: stdout is the event stream
  Effect.provideService(Logger.LogToStderr, true)
)

export const serverCommand = Command.make("server", {}, () => runServer).pipe(
  Command.withDescription(
    "Receive events from droptailer clients over gRPC with mutual TLS and print one line per event on stdout"
  )
)
