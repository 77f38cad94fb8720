/**
 * The IngestHandler that prints: one line per event on stdout (`DROPTAILER_OUTPUT_FORMAT`:
 * `json`, the default, or `upstream` for the Go server's lines). A batch becomes one write, and
 * `handle` completes only when the stream has taken it (the write callback: the bytes are in the
 * pipe or file, so a crash after the ack cannot lose them), which is also the backpressure: a
 * slow reader slows the acknowledgements and so the clients.
 */
import type { Writable } from "node:stream"
import { Config, Effect, Layer } from "effect"
import { formatJsonLine, formatUpstreamLine, OutputFormat } from "../domain/Format.ts"
import type { DropEvent } from "../domain/DropEvent.ts"
import { IngestHandler } from "./IngestHandler.ts"

export const outputFormatConfig = Config.Literals(OutputFormat, "DROPTAILER_OUTPUT_FORMAT").pipe(
  Config.withDefault("json" as const)
)

export class OutputError extends Error {
  override readonly name = "OutputError"
}

const write = (stream: Writable, chunk: string): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    stream.write(chunk, (error) => {
      if (error) {
        // Output gone (reader closed, disk full): the events are NOT written, so the call must not
        // be acknowledged. A defect makes the server answer UNAVAILABLE; the client retries.
        resume(Effect.die(new OutputError(error.message)))
      } else {
        resume(Effect.void)
      }
    })
  })

export const makeStreamIngestHandler = (stream: Writable, format: OutputFormat) => {
  // a broken pipe is reported to the write callback; without a listener it would also crash us
  if (stream.listenerCount("error") === 0) stream.on("error", () => undefined)
  const line = format === "upstream" ? formatUpstreamLine : formatJsonLine
  return IngestHandler.of({
    handle: (events: ReadonlyArray<DropEvent>) => {
      if (events.length === 0) return Effect.void
      let chunk = ""
      for (const event of events) chunk += line(event) + "\n"
      return write(stream, chunk)
    }
  })
}

export class StdoutIngestHandler {
  /** Prints to process.stdout in the format of DROPTAILER_OUTPUT_FORMAT. */
  static readonly layer: Layer.Layer<IngestHandler, Config.ConfigError> = Layer.effect(
    IngestHandler,
    Effect.map(outputFormatConfig, (format) => makeStreamIngestHandler(process.stdout, format))
  )
  /** Prints to any writable stream (tests). */
  static readonly layerTo = (stream: Writable, format: OutputFormat = "json"): Layer.Layer<IngestHandler> =>
    Layer.succeed(IngestHandler, makeStreamIngestHandler(stream, format))
}
