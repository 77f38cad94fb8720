/**
 * The hand-checked hot paths of JournalEntry.ts agree with what they replace: `isCursor` with the
 * cursor regex, and `decodeJournalEntry`'s fast path with the `JournalFields` schema.
 */
import * as fc from "fast-check"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  cursorPattern,
  cursorPosition,
  decodeJournalEntry,
  entryId,
  ExportDecoder,
  ExportParser,
  isCursor,
  JournalFields
} from "../../src/journal/JournalEntry.ts"

const hex = (min: number, max: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: min, maxLength: max })
const validCursor = fc.tuple(hex(32, 32), hex(1, 8), hex(32, 32), hex(1, 10), hex(1, 14), hex(1, 16)).map(
  ([s, i, b, m, t, x]) => `s=${s};i=${i};b=${b};m=${m};t=${t};x=${x}`
)
/** Valid cursors with one character changed, inserted or removed, and odd strings. */
const nearCursor = fc.oneof(
  validCursor,
  fc.tuple(validCursor, fc.nat(), fc.constantFrom(..."0aAfgz;=\n ixX-")).map(([c, at, ch]) => c.slice(0, at % c.length) + ch + c.slice(at % c.length + 1)),
  fc.tuple(validCursor, fc.nat(), fc.constantFrom(..."0aF;=\n")).map(([c, at, ch]) => c.slice(0, at % c.length) + ch + c.slice(at % c.length)),
  fc.tuple(validCursor, fc.nat()).map(([c, at]) => c.slice(0, at % c.length) + c.slice(at % c.length + 1)),
  validCursor.map((c) => `${c}\n`),
  fc.string()
)

const viaSchema = Schema.decodeUnknownResult(JournalFields)

describe("hand-checked hot paths", () => {
  it("isCursor agrees with the cursor pattern", () => {
    fc.assert(fc.property(nearCursor, (s) => isCursor(s) === cursorPattern.test(s)), { numRuns: 5_000 })
  })

  it("ExportDecoder's in-place cursor check agrees with the cursor pattern", () => {
    fc.assert(
      fc.property(nearCursor.filter((c) => !c.includes("\n")), fc.constantFrom("", "\nMESSAGE=m"), (c, after) => {
        const decoder = new ExportDecoder()
        const entries = decoder.push(Buffer.from(`__CURSOR=${c}${after}\n__REALTIME_TIMESTAMP=1\n\n`, "utf8"))
        expect(entries.length).toBe(cursorPattern.test(c) ? 1 : 0)
        expect(decoder.failures.length).toBe(cursorPattern.test(c) ? 0 : 1)
      }),
      { numRuns: 5_000 }
    )
  })

  it("entryId is `<seqnum id>-<seqnum>` from cursorPosition, or the cursor itself", () => {
    const odd = fc.oneof(
      nearCursor,
      fc.constantFrom("s=", "s=;i=1", "s=a;i=", "s=a;i=;", "s=a;i=b", "s=a;x=1;i=2", "t=1;s=a;i=b;x=1", "s=a;i=b;", ";s=a;i=b"),
      fc.tuple(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 })).map(([a, b]) => `s=${a};i=${b}`)
    )
    fc.assert(
      fc.property(odd, (s) => {
        const position = cursorPosition(s)
        expect(entryId(s)).toBe(position === undefined ? s : `${position.seqnumId}-${position.seqnum}`)
      }),
      { numRuns: 5_000 }
    )
  })

  it("decodeJournalEntry accepts exactly what the JournalFields schema accepts", () => {
    const text = fc.oneof(fc.string(), fc.constant(undefined))
    const fieldValue = fc.oneof(
      fc.string(),
      fc.constant(null),
      fc.constant(undefined),
      fc.uint8Array({ maxLength: 4 }),
      fc.array(fc.nat(255), { maxLength: 3 }),
      fc.array(fc.string(), { maxLength: 2 }),
      fc.integer()
    )
    const raw = fc.record({
      __CURSOR: fc.oneof(nearCursor, fc.integer(), fc.constant(undefined)),
      __REALTIME_TIMESTAMP: fc.oneof(fc.stringMatching(/^\d{0,19}$/), text, fc.integer()),
      MESSAGE: fieldValue,
      _HOSTNAME: fieldValue,
      SYSLOG_IDENTIFIER: fieldValue,
      OTHER: text
    }, { requiredKeys: [] })
    fc.assert(
      fc.property(raw, (r) => {
        const decoded = decodeJournalEntry(r)
        expect(decoded._tag).toBe(viaSchema(r)._tag)
        if (decoded._tag === "Success") {
          expect(decoded.success.cursor).toBe(r.__CURSOR)
          expect(decoded.success.realtime).toBe(Number(r.__REALTIME_TIMESTAMP))
          const strings = (["MESSAGE", "_HOSTNAME", "SYSLOG_IDENTIFIER"] as const).every((k) => !(k in r) || typeof r[k] === "string")
          if (strings) {
            // the fast path's case: the same entry as before
            expect(decoded.success).toStrictEqual({
              cursor: r.__CURSOR,
              realtime: Number(r.__REALTIME_TIMESTAMP),
              hostname: r._HOSTNAME ?? "",
              message: r.MESSAGE ?? "",
              ...(typeof r.SYSLOG_IDENTIFIER === "string" ? { identifier: r.SYSLOG_IDENTIFIER } : {}),
              fields: "OTHER" in r ? { OTHER: r.OTHER === undefined ? [] : [r.OTHER] } : {}
            })
          }
        }
      }),
      { numRuns: 5_000 }
    )
    expect(decodeJournalEntry(null)._tag).toBe("Failure")
    expect(decodeJournalEntry([])._tag).toBe("Failure")
  })

  it("export parser values are the field text (ASCII and UTF-8)", () => {
    const cursor = "s=46d3250e34e546919c4cc68a080935b1;i=1;b=6bc46222b020476594a23443224435a6;m=1;t=2;x=3"
    const parser = new ExportParser()
    const [ascii, utf8] = parser.push(Buffer.from(
      `__CURSOR=${cursor}\n__REALTIME_TIMESTAMP=1\nMESSAGE=${"x".repeat(300)}\n\n__CURSOR=${cursor}\n__REALTIME_TIMESTAMP=2\nMESSAGE=caf\u00e9 ${"y".repeat(300)}\n\n`
    ))
    expect(ascii!.MESSAGE).toBe("x".repeat(300))
    expect(utf8!.MESSAGE).toBe(`caf\u00e9 ${"y".repeat(300)}`)
    const decoded = decodeJournalEntry(utf8)
    expect(decoded._tag === "Success" && decoded.success.message).toBe(`caf\u00e9 ${"y".repeat(300)}`)
  })
})
