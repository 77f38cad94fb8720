/**
 * `--stdout`: an EventSink that prints each event as a JSON line (formatJsonLine) and acknowledges a
 * batch once its lines were handed to the OS (the write callback), so the checkpoint never moves
 * past a line that was not written. A slow reader of stdout slows the pipeline down (backpressure)
 * instead of piling lines up in memory.
 */
import type { Writable } from "node:stream"
import { Effect, Layer } from "effect"
import { formatJsonLine } from "../domain/Format.ts"
import { logThrottled } from "../observability/LogThrottle.ts"
import { EventSink, type OutgoingEvent } from "./EventSink.ts"

/**
 * Resumes once `text` is handed to the OS. A write error (stdout closed: EPIPE) is a defect: the
 * client stops without acknowledging, so the checkpoint stays before the lines that were not written.
 */
const writeAll = (out: Writable, text: string): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    out.write(text, (error) => {
      if (error) {
        resume(
          logThrottled("Error", "stdout.write", "cannot write to stdout; stopping", { error: error.message }).pipe(
            Effect.andThen(Effect.die(error))
          )
        )
      } else resume(Effect.void)
    })
  })

export const makeStdoutSink = (out: Writable) =>
  EventSink.of({
    deliver: (batch: ReadonlyArray<OutgoingEvent>) =>
      Effect.suspend(() => {
        if (batch.length === 0) return Effect.void
        let text = ""
        for (const outgoing of batch) text += `${formatJsonLine(outgoing.event)}\n`
        return writeAll(out, text)
      })
  })

/** The EventSink layers that print: `StdoutSink.layer` (process.stdout), `StdoutSink.layerTo(out)`. */
export class StdoutSink {
  /**
   * Prints to `out`. While the layer is up, an 'error' listener keeps a closed pipe (EPIPE) from
   * crashing the process outright: the failed write is reported to `deliver`, which stops the
   * client through its finalizers (so the checkpoint of what was written is saved).
   */
  static readonly layerTo = (out: Writable): Layer.Layer<EventSink> =>
    Layer.effect(
      EventSink,
      Effect.acquireRelease(
        Effect.sync(() => {
          const onError = () => {}
          out.on("error", onError)
          return onError
        }),
        (onError) => Effect.sync(() => void out.off("error", onError))
      ).pipe(Effect.as(makeStdoutSink(out)))
    )
  static readonly layer: Layer.Layer<EventSink> = Layer.suspend(() => StdoutSink.layerTo(process.stdout))
}
