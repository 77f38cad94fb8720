/**
 * parseLine's prefix test on the line's codes (prefixes compared as words after the line is
 * encoded) against `classify` (startsWith on the string): the same action, and the same result as
 * parsing the body `classify` gives, whatever the prefixes and lines.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { classify, defaultPrefixes, maxLineLength, parseBody, parseLine, type Prefixes } from "../../src/domain/Parser.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const body = "IN=a OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20"

const expectClassified = (message: string, prefixes: Prefixes): void => {
  const expected = classify(message, prefixes)
  const result = parseLine(message, prefixes, context)
  if (message.length === 0) expect(result).toEqual({ _tag: "Skipped", reason: "empty message" })
  else if (expected === undefined) expect(result).toEqual({ _tag: "Skipped", reason: "no drop or accept prefix" })
  else if (message.length > maxLineLength) expect(result._tag).toBe("Malformed")
  else {
    const r = parseBody(expected.body, expected.action, context)
    expect(result._tag).toBe(r._tag)
    if (r._tag === "Event") expect(result).toEqual(r)
  }
}

/** `s` with the character at `at` (modulo its length) replaced by `c`, cut there, or `c` put there. */
const variant = (s: string, at: number, c: string, how: number): string => {
  if (s.length === 0) return c
  const i = at % s.length
  return how === 0 ? s.slice(0, i) + c + s.slice(i + 1) : how === 1 ? s.slice(0, i) : s.slice(0, i) + c + s.slice(i)
}

describe("parseLine's prefix test", () => {
  it("classifies as startsWith does, for prefixes of any length and lines like them", () => {
    // long prefixes from a small alphabet (compared as words), a few characters that are not ASCII
    const unit = fc.constantFrom("n", "f", "-", ":", " ", "d", "\u00e9", "\ud800", "\u0000")
    const prefix = fc.string({ unit, minLength: 0, maxLength: 30 })
    fc.assert(
      fc.property(
        fc.array(prefix, { minLength: 1, maxLength: 3 }),
        fc.array(prefix, { maxLength: 3 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom("d", "-", "\u00e9", "x"),
        fc.integer({ min: 0, max: 3 }),
        (drop, accept, which, at, c, how) => {
          const prefixes = { drop, accept }
          const all = [...drop, ...accept]
          const base = all[which % all.length]!
          // the prefix itself, or one character off it; then with and without a body
          const head = how === 3 ? base : variant(base, at, c, how)
          expectClassified(head + body, prefixes)
          expectClassified(head, prefixes)
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("does not see the codes a longer line left in the buffer", () => {
    const prefixes = { drop: ["abcdefghijklmnopqrst"], accept: ["abcd"] }
    for (let cut = 1; cut < 20; cut++) {
      // the full prefix first, so that the buffer holds it, then a line that stops short of it
      expectClassified(`abcdefghijklmnopqrst${body}`, prefixes)
      expectClassified("abcdefghijklmnopqrst".slice(0, cut), prefixes)
    }
  })

  it("follows a prefix list changed in place", () => {
    const drop = ["nftables-metal-dropped: "]
    const accept = ["nftables-metal-accepted: "]
    const prefixes = { drop, accept }
    const line = `nftables-metal-dropped: ${body}`
    expect(parseLine(line, prefixes, context)).toMatchObject({ _tag: "Event", event: { action: "drop" } })
    drop[0] = "nftables-metal-dropped! "
    expect(parseLine(line, prefixes, context)._tag).toBe("Skipped")
    accept.push("nftables-metal-dropped: ")
    expect(parseLine(line, prefixes, context)).toMatchObject({ _tag: "Event", event: { action: "accept" } })
    drop.length = 0
    accept.length = 0
    expect(parseLine(line, prefixes, context)._tag).toBe("Skipped")
    drop.push("")
    expect(parseLine(`IN=a OUT=`, prefixes, context)).toMatchObject({ _tag: "Event", event: { action: "drop" } })
  })

  it("compares the default prefixes with lines that differ from them anywhere", () => {
    for (const base of [...defaultPrefixes.drop, ...defaultPrefixes.accept]) {
      for (let at = 0; at < base.length; at++) {
        for (const c of ["x", "\u00e9", "\u4e2d", " "]) {
          expectClassified(variant(base, at, c, 0) + body, defaultPrefixes)
          expectClassified(variant(base, at, c, 1), defaultPrefixes)
        }
      }
    }
  })

  it("leaves over-long lines to the string test", () => {
    const long = `nftables-metal-dropped: ${body} ${"x".repeat(maxLineLength)}`
    expect(parseLine(long, defaultPrefixes, context)._tag).toBe("Malformed")
    expect(parseLine(`kernel: ${long}`, defaultPrefixes, context)._tag).toBe("Skipped")
    // (starts like a prefix, is not one)
    expect(parseLine(`nftables-metal-droppe ${long}`, defaultPrefixes, context)._tag).toBe("Skipped")
    expect(parseLine(long, { drop: [], accept: ["nftables-metal-dropped: "] }, context)._tag).toBe("Malformed")
  })
})
