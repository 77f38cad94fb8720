/**
 * The IngestHandler that prints: one line per event on stdout (`DROPTAILER_OUTPUT_FORMAT`:
 * `json`, the default, or `upstream` for the Go server's lines). A batch becomes one write, and
 * `handle` completes only when the stream has taken it (the write callback: the bytes are in the
 * pipe or file, so a crash after the ack cannot lose them), which is also the backpressure: a
 * slow reader slows the acknowledgements and so the clients.
 */
import type { Writable } from "node:stream"
import { Config, Effect, Layer } from "effect"
import { formatUpstreamLine, JsonLineWriter, OutputFormat } from "../domain/Format.ts"
import type { DropEvent } from "../domain/DropEvent.ts"
import { IngestHandler } from "./IngestHandler.ts"

export const outputFormatConfig = Config.Literals(OutputFormat, "DROPTAILER_OUTPUT_FORMAT").pipe(
  Config.withDefault("json" as const)
)

export class OutputError extends Error {
  override readonly name = "OutputError"
}

const write = (stream: Writable, chunk: Buffer): Effect.Effect<void> =>
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

/**
 * A batch's lines are written into one buffer, which is then handed to the stream as is (the
 * stream keeps it until written; the writer goes on in a fresh buffer of about the same size, so
 * there is no copy of a megabyte); a few lines are copied out instead. JSON lines are written straight into it by `JsonLineWriter` (no string per
 * line, and what equals the previous line's bytes is copied from there); upstream lines are
 * formatted as strings and UTF-8 encoded into it.
 */
const initialBuffer = 1024 * 1024
const handOverBytes = 64 * 1024
const writer = new JsonLineWriter(initialBuffer)

const writeJson = (w: JsonLineWriter, event: DropEvent): void => w.event(event)
const writeUpstream = (w: JsonLineWriter, event: DropEvent): void => w.utf8(formatUpstreamLine(event))

const linesChunk = (events: ReadonlyArray<DropEvent>, line: (w: JsonLineWriter, event: DropEvent) => void): Buffer => {
  writer.reset()
  for (let i = 0; i < events.length; i++) {
    line(writer, events[i]!)
    writer.byte(10)
  }
  // a few lines (a unary Push): copied out, the buffer stays (a fresh megabyte per call would cost
  // more than the copy); a batch: handed over, the next one gets a buffer of about its size
  if (writer.pos < handOverBytes) return writer.copy()
  return writer.take(Math.min(16 * initialBuffer, Math.max(initialBuffer, writer.pos + (writer.pos >> 2))))
}

export const makeStreamIngestHandler = (stream: Writable, format: OutputFormat) => {
  // a broken pipe is reported to the write callback; without a listener it would also crash us
  if (stream.listenerCount("error") === 0) stream.on("error", () => undefined)
  const line = format === "upstream" ? writeUpstream : writeJson
  return IngestHandler.of({
    handle: (events: ReadonlyArray<DropEvent>) => {
      if (events.length === 0) return Effect.void
      return write(stream, linesChunk(events, line))
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
