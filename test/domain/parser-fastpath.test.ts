/**
 * The parser's fast paths (codes from TextEncoder for ASCII lines, a code loop for the others;
 * the token table; the `switch`es on literal ids) against the behaviour they must keep.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { defaultPrefixes, parseBody, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { captured } from "./lines.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const run = (line: string): ParseResult => parseLine(line, defaultPrefixes, context)
const reason = (r: ParseResult): string => (r._tag === "Event" ? "" : `${r._tag}: ${r.reason}`)

describe("the switches on token ids", () => {
  const source = readFileSync(new URL("../../src/domain/Parser.ts", import.meta.url), "utf8")
  const list = /const tokenNames = \[([\s\S]*?)\] as const/.exec(source)![1]!
  const tokenNames = [...list.replace(/\/\/[^\n]*/g, "").matchAll(/"([^"]*)"/g)].map((m) => m[1]!)

  it("label every literal case with the name it stands for", () => {
    expect(tokenNames.length).toBe(58)
    const cases = [...source.matchAll(/case (\d+) \/\* (\w+) \*\/:/g)]
    expect(cases.length).toBeGreaterThan(100)
    for (const [, id, name] of cases) expect(tokenNames[Number(id)], `case ${id} /* ${name} */`).toBe(name)
  })

  it("name the remaining id constants after their token", () => {
    const named = [...source.matchAll(/^const [KW]_(\w+) = (\d+)/gm)]
    expect(named.length).toBeGreaterThan(0)
    for (const [, name, id] of named) expect(tokenNames[Number(id)]).toBe(name)
  })

  it("store each name under its own key in the wire map", () => {
    const stores = [...source.matchAll(/case (\d+) \/\* (\w+) \*\/:\n\s+fields\.(\w+) = value/g)]
    expect(stores.length).toBe(57)
    for (const [, , name, key] of stores) expect(key).toBe(name)
  })
})

describe("lines outside printable ASCII", () => {
  it("take non-ASCII text in values and keys as it is (Latin-1, CJK, surrogate-free)", () => {
    const r = run("nftables-metal-dropped: IN=\u00e9th0 OUT= X\u00ff=\u4e2d\u6587 \u00a0 SRC=1.2.3.4")
    expect(r._tag).toBe("Event")
    if (r._tag !== "Event") return
    expect(r.event.in).toBe("\u00e9th0")
    expect(r.event.src.ip).toBe("1.2.3.4")
    expect(r.event.fields).toEqual({ IN: "\u00e9th0", OUT: "", "X\u00ff": "\u4e2d\u6587", "\u00a0": "", SRC: "1.2.3.4", ACTION: "drop" })
    expect(r.event.unknown).toEqual(["X\u00ff=\u4e2d\u6587", "\u00a0"])
  })

  it("never take a non-ASCII token for a known name", () => {
    // "@\u0145" packs to the same number as "AE" when characters are shifted by 8 bits only
    const r = run("nftables-metal-dropped: IN=a OUT= PROTO=TCP @\u0145 \u0141\u0145=1")
    expect(r._tag).toBe("Event")
    if (r._tag !== "Event") return
    expect(r.event.tcp).toBeUndefined()
    expect(Object.keys(r.event.fields)).toEqual(["IN", "OUT", "PROTO", "@\u0145", "\u0141\u0145", "ACTION"])
  })

  it("split on tabs as on spaces", () => {
    const r = run("nftables-metal-dropped: IN=a\tOUT=b\t\tSRC=1.2.3.4 \tDPT=7")
    expect(r._tag).toBe("Event")
    if (r._tag !== "Event") return
    expect(r.event.fields).toEqual({ IN: "a", OUT: "b", SRC: "1.2.3.4", DPT: "7", ACTION: "drop" })
  })

  it("report the first bad character with its column, in keys, values and bare words", () => {
    const p = "nftables-metal-dropped: "
    expect(reason(run(`${p}IN=a OUT= X\u0001Y=1`))).toBe(
      "Malformed: binary data (control character 0x01 at column 36)"
    )
    expect(reason(run(`${p}IN=a\u007f OUT=`))).toBe("Malformed: binary data (control character 0x7f at column 29)")
    expect(reason(run(`${p}IN=a OUT= SYN\n`))).toBe("Malformed: binary data (control character 0x0a at column 38)")
    expect(reason(run(`${p}IN=\u00e9 OUT=\u0000 \ud800`))).toBe(
      "Malformed: binary data (control character 0x00 at column 34)"
    )
    expect(reason(run(`${p}IN=\u00e9 OUT=\ud800 \u0000`))).toBe(
      "Malformed: invalid UTF-8 (replacement or surrogate character at column 34)"
    )
    expect(reason(run(`${p}IN=a OUT=\ufffd`))).toBe(
      "Malformed: invalid UTF-8 (replacement or surrogate character at column 34)"
    )
    // a valid surrogate pair is still not something the kernel prints
    expect(reason(run(`${p}IN=a OUT=\ud83d\ude00`))).toBe(
      "Malformed: invalid UTF-8 (replacement or surrogate character at column 34)"
    )
  })

  it("parse a body longer than the shared code buffer through parseBody, and its bad characters", () => {
    const long = `IN=a OUT= ${"X=1 ".repeat(20_000)}SRC=1.2.3.4`
    const r = parseBody(long, "accept", context)
    expect(r._tag).toBe("Event")
    if (r._tag === "Event") expect(r.event.src.ip).toBe("1.2.3.4")
    expect(reason(parseBody(`${long} \u0002`, "drop", context))).toBe(
      `Malformed: binary data (control character 0x02 at column ${long.length + 2})`
    )
  })

  it("give the same event for a line whichever path read it", () => {
    const ascii = run(captured.tcpSyn)
    const latin = run(`${captured.tcpSyn}Z=\u00e9`)
    expect(ascii._tag).toBe("Event")
    expect(latin._tag).toBe("Event")
    if (ascii._tag !== "Event" || latin._tag !== "Event") return
    const { fields: f1, unknown: u1, ...e1 } = ascii.event
    const { fields: f2, unknown: u2, ...e2 } = latin.event
    expect(e2).toEqual(e1)
    expect(u1).toBeUndefined()
    expect(u2).toEqual(["Z=\u00e9"])
    expect(f2).toEqual({ ...f1, Z: "\u00e9", ACTION: "drop" })
  })
})
