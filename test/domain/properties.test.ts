import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { decodeDropEventJson, encodeDropEventJson } from "../../src/domain/DropEvent.ts"
import { formatJsonLine, formatUpstreamLine } from "../../src/domain/Format.ts"
import { defaultPrefixes, eventFromFields, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { allLines } from "./lines.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }

/** A real line with some of its characters replaced, removed, duplicated or inserted. */
const mutatedLine = fc
  .tuple(
    fc.constantFrom(...allLines),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.constantFrom("replace", "delete", "insert", "duplicate"),
        fc.oneof(
          fc.constantFrom(" ", "=", "[", "]", "(", ")", ":", "\u0000", "\ufffd", "\ud800", "ACK", "LEN=", "OPT", "INCOMPLETE"),
          fc.string({ unit: "binary", maxLength: 4 })
        )
      ),
      { maxLength: 8 }
    )
  )
  .map(([line, edits]) => {
    let text: string = line
    for (const [at, op, piece] of edits) {
      const i = text.length === 0 ? 0 : at % text.length
      if (op === "replace") text = text.slice(0, i) + piece + text.slice(i + 1)
      else if (op === "delete") text = text.slice(0, i) + text.slice(i + piece.length + 1)
      else if (op === "insert") text = text.slice(0, i) + piece + text.slice(i)
      else text = text.slice(0, i) + text.slice(i, i + 20) + text.slice(i)
    }
    return text
  })

/** Every accepted event: its Schema encoding decodes back to the same event; formats never throw. */
const checkEvent = (result: ParseResult): void => {
  if (result._tag !== "Event") {
    expect(result.reason.length).toBeGreaterThan(0)
    // the catch-all inside parseLine must never be what saved us
    expect(result.reason).not.toMatch(/^parser error/)
    return
  }
  const event = result.event
  const encoded = encodeDropEventJson(event)
  expect(decodeDropEventJson(JSON.parse(JSON.stringify(encoded)))).toEqual(event)
  expect(formatJsonLine(event)).toBe(JSON.stringify(encoded))
  expect(formatUpstreamLine(event)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC \{/)
  // the wire map always carries ACTION, and rebuilds an event without throwing
  expect(event.fields.ACTION).toBe(event.action)
  const rebuilt = eventFromFields(event.fields, context)
  expect(rebuilt?.action).toBe(event.action)
}

describe("parseLine properties", () => {
  it("never throws on arbitrary strings, prefixed or not", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.string({ unit: "binary", maxLength: 300 }), (prefixed, text) => {
        checkEvent(parseLine(prefixed ? `nftables-metal-dropped: ${text}` : text, defaultPrefixes, context))
      }),
      { numRuns: 3000 }
    )
  })

  it("never throws on arbitrary KEY=VALUE soup", () => {
    const token = fc.oneof(
      fc.constantFrom("IN=", "OUT=", "SRC=", "DST=", "LEN=1", "ID=2", "PROTO=TCP", "PROTO=UDP", "PROTO=ICMP", "ACK", "ACK=5", "[SRC=1.2.3.4", "]", "OPT", "(", ")", "(AB)", "INCOMPLETE", "[3", "bytes]", "FRAG:8", "ID:ff", "ARP", "MACSRC=x", "__proto__=1", "=", "=="),
      fc.string({ maxLength: 6 })
    )
    fc.assert(
      fc.property(fc.array(token, { maxLength: 30 }), (tokens) => {
        checkEvent(parseLine(`nftables-metal-accepted: ${tokens.join(" ")}`, defaultPrefixes, context))
      }),
      { numRuns: 3000 }
    )
  })

  it("never throws on mutations of real lines, and accepted events round-trip through the Schema", () => {
    fc.assert(
      fc.property(mutatedLine, (line) => {
        checkEvent(parseLine(line, defaultPrefixes, context))
      }),
      { numRuns: 5000 }
    )
  })

  it("round-trips every real line through the Schema unchanged", () => {
    for (const line of allLines) {
      const result = parseLine(line, defaultPrefixes, context)
      expect(result._tag).toBe("Event")
      checkEvent(result)
    }
  })

  it("never throws in eventFromFields, whatever the map", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.string()), (fields) => {
        const event = eventFromFields(fields, context)
        if (event !== undefined) expect(decodeDropEventJson(encodeDropEventJson(event))).toEqual(event)
      }),
      { numRuns: 2000 }
    )
  })
})
