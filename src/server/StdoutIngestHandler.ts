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

const write = (stream: Writable, chunk: Buffer, done?: () => void): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    stream.write(chunk, (error) => {
      if (error) {
        // Output gone (reader closed, disk full): the events are NOT written, so the call must not
        // be acknowledged. A defect makes the server answer UNAVAILABLE; the client retries.
        resume(Effect.die(new OutputError(error.message)))
      } else {
        done?.()
        resume(Effect.void)
      }
    })
  })

/**
 * A batch's lines are written into one buffer, which is then handed to the stream as is (the
 * stream keeps it until written; the writer goes on in another buffer, so there is no copy of a
 * megabyte); a few lines are copied out instead. JSON lines are written straight into it by
 * `JsonLineWriter` (no string per line, and what equals the previous line's bytes is copied from
 * there); upstream lines are formatted as strings and UTF-8 encoded into it.
 *
 * For process.stdout and process.stderr, whose write callback means the bytes are in the pipe or
 * file (the stream holds no reference after it), a buffer handed over is used again once its write
 * completed: a fresh megabyte per call costs its allocation and, at first touch, a page fault per
 * 4 KiB page (measured ~0.2 µs an event). Any other stream (a test's PassThrough may still hold the
 * chunk after the callback) gets fresh buffers.
 */
const initialBuffer = 1024 * 1024
const handOverBytes = 64 * 1024
const writer = new JsonLineWriter(initialBuffer)

/** Buffers whose write completed, for the writer to go on in (at most `maxSpare`, none above `maxSpareBytes`). */
const spare: Array<Buffer> = []
const maxSpare = 4
const maxSpareBytes = 16 * initialBuffer

const writeJson = (w: JsonLineWriter, event: DropEvent): void => w.event(event)
const writeUpstream = (w: JsonLineWriter, event: DropEvent): void => w.utf8(formatUpstreamLine(event))

/** The lines of `events` in one chunk; `whole` is set to the buffer the chunk is the start of when it was handed over. */
const linesChunk = (
  events: ReadonlyArray<DropEvent>,
  line: (w: JsonLineWriter, event: DropEvent) => void,
  reuse: boolean,
  handedOver: { whole: Buffer | undefined }
): Buffer => {
  writer.reset()
  for (let i = 0; i < events.length; i++) {
    line(writer, events[i]!)
    writer.byte(10)
  }
  // a few lines (a unary Push): copied out, the buffer stays (a fresh megabyte per call would cost
  // more than the copy); a batch: handed over, the writer goes on in a spare buffer or a new one
  // of about this batch's size
  if (writer.pos < handOverBytes) return writer.copy()
  const whole = writer.buf
  handedOver.whole = reuse ? whole : undefined
  return writer.take(Math.min(16 * initialBuffer, Math.max(initialBuffer, writer.pos + (writer.pos >> 2))), reuse ? spare.pop() : undefined)
}

/**
 * `reuseBuffers`: whether the stream is done with a chunk when it calls back (see above; true
 * for process.stdout and process.stderr).
 */
export const makeStreamIngestHandler = (
  stream: Writable,
  format: OutputFormat,
  reuseBuffers: boolean = stream === process.stdout || stream === process.stderr
) => {
  // a broken pipe is reported to the write callback; without a listener it would also crash us
  if (stream.listenerCount("error") === 0) stream.on("error", () => undefined)
  const line = format === "upstream" ? writeUpstream : writeJson
  const reuse = reuseBuffers
  return IngestHandler.of({
    handle: (events: ReadonlyArray<DropEvent>) =>
      events.length === 0 ? Effect.void : Effect.suspend(() => {
        // (formatted when run: a buffer handed over may be reused once written, so a chunk is
        // never written twice)
        const handedOver: { whole: Buffer | undefined } = { whole: undefined }
        const chunk = linesChunk(events, line, reuse, handedOver)
        const whole = handedOver.whole
        return write(
          stream,
          chunk,
          whole === undefined ? undefined : () => {
            if (spare.length < maxSpare && whole.length <= maxSpareBytes) spare.push(whole)
          }
        )
      })
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
