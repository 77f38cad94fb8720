/**
 * The stdout handler hands a batch's buffer to the stream and, for streams that are done with a
 * chunk when they call back (process.stdout), lets the writer go on in it once written. Checked
 * with a stream that calls back late and verifies, at that moment, that the chunk it was given
 * still holds the bytes it had when written: several batches in flight, of growing and shrinking
 * size, big ones (handed over) and small ones (copied), every line as formatJsonLine writes it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Writable } from "node:stream"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { formatJsonLine } from "../../src/domain/Format.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { makeStreamIngestHandler } from "../../src/server/StdoutIngestHandler.ts"
import { allLines } from "../domain/lines.ts"

const events = (from: number, n: number): Array<DropEvent> =>
  Array.from({ length: n }, (_, i) => {
    const seq = from + i
    const line = allLines[seq % allLines.length]!
    const parsed = parseLine(line, defaultPrefixes, { timestamp: 1_700_000_000_000_000 + seq * 997, host: `fw-${seq % 3}` })
    if (parsed._tag !== "Event") throw new Error(`not an event: ${line}`)
    return { ...parsed.event, fields: { ...parsed.event.fields, SEQ: String(seq) } }
  })

/** Calls back after a few turns of the event loop, checking the chunk was left alone until then. */
class LateStream extends Writable {
  readonly chunks: Array<Buffer> = []
  changed = 0
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const copy = Buffer.from(chunk)
    this.chunks.push(copy)
    setTimeout(() => {
      if (!chunk.equals(copy)) this.changed++
      callback()
    }, 5)
  }
}

describe("the stdout handler's buffers", () => {
  it.effect("are reused only after the stream called back: every line intact, several batches in flight", () =>
    Effect.gen(function*() {
      const stream = new LateStream({ highWaterMark: 1 })
      const handler = makeStreamIngestHandler(stream, "json", true)
      const sizes = [3000, 200, 5000, 2500, 40, 6000, 100, 4000, 1, 3000, 3000, 3000]
      const batches: Array<Array<DropEvent>> = []
      let from = 0
      for (const n of sizes) {
        batches.push(events(from, n))
        from += n
      }
      yield* Effect.forEach(batches, (batch) => handler.handle(batch), { concurrency: 4, discard: true })
      assert.strictEqual(stream.changed, 0, "a chunk was overwritten before its write completed")
      const expected = batches.flat().map((e) => `${formatJsonLine(e)}\n`).join("")
      const written = Buffer.concat(stream.chunks).toString("utf8")
      // (in flight, batches may be written in any order: compare the lines as sets, and each batch whole)
      assert.strictEqual(written.length, expected.length)
      assert.deepStrictEqual(written.split("\n").sort(), expected.split("\n").sort())
      for (const chunk of stream.chunks) {
        const text = chunk.toString("utf8")
        assert.isTrue(batches.some((b) => b.map((e) => `${formatJsonLine(e)}\n`).join("") === text), "a chunk is one whole batch")
      }
    }))

  it.effect("run twice, a handle writes its batch twice, both whole (formatted when run)", () =>
    Effect.gen(function*() {
      const stream = new LateStream({ highWaterMark: 1 })
      const handler = makeStreamIngestHandler(stream, "json", true)
      const batch = events(0, 3000)
      const handle = handler.handle(batch)
      yield* handle
      yield* handler.handle(events(5000, 3000))
      yield* handle
      const expected = batch.map((e) => `${formatJsonLine(e)}\n`).join("")
      assert.strictEqual(stream.chunks[0]!.toString("utf8"), expected)
      assert.strictEqual(stream.chunks[2]!.toString("utf8"), expected)
      assert.strictEqual(stream.changed, 0)
    }))
})
