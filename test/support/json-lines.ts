/** Helpers for tests of the JSON line writer (src/domain/Format.ts). */
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import type { JsonLineWriter } from "../../src/domain/Format.ts"

/** `events` as JSON lines written by one `writer` in one generation (so later lines may reuse earlier bytes). */
export const writeAll = (writer: JsonLineWriter, events: ReadonlyArray<DropEvent>): string => {
  writer.reset()
  for (const e of events) {
    writer.event(e)
    writer.byte(10)
  }
  return writer.buf.toString("utf8", 0, writer.pos)
}
