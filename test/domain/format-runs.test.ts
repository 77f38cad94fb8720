/**
 * JsonLineWriter copies each top-level segment (`"key":value`) and `fields` entry that is the same
 * as where it was last written, and joins the ones that follow each other there into one copy.
 * These sequences change what the line before had: keys appear and disappear (physin, udp/tcp/icmp,
 * spi, mark, unknown, inner, arp, fields, even the timestamp), scalars and numbers change (NaN,
 * -0), structs are changed in place, fields gain, lose and reorder entries or hold a value that is
 * not a string after entries that were copied. Every line must be what a fresh writer writes for
 * that event alone (no reuse; itself checked against the Schema encoding by format-writer.test.ts),
 * and where the Schema accepts the event, its JSON encoding.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { type DropEvent, encodeDropEventJson } from "../../src/domain/DropEvent.ts"
import { formatJsonLine, JsonLineWriter } from "../../src/domain/Format.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { writeAll } from "../support/json-lines.ts"
import { allLines } from "./lines.ts"

const bases: ReadonlyArray<DropEvent> = allLines.map((text, i) => {
  const r = parseLine(text, defaultPrefixes, { timestamp: 1795790134013717 + i, host: "fw-1" })
  if (r._tag !== "Event") throw new Error(r.reason)
  return r.event
})

type Mutable = { -readonly [K in keyof DropEvent]?: unknown }

/** Change number `k` (mod the count) of `e`, with `s` a string and `n` a number to use. */
const change = (e: DropEvent, k: number, s: string, n: number): DropEvent => {
  const o = { ...e } as Mutable
  switch (k % 24) {
    case 0:
      return e
    case 1:
      o.physin = s
      break
    case 2:
      delete o.physin
      delete o.physout
      break
    case 3:
      o.udp = { length: n }
      delete o.tcp
      break
    case 4:
      o.tcp = { flags: ["SYN", s], window: n }
      delete o.udp
      break
    case 5:
      o.icmp = { type: n % 256, code: 0, gateway: s }
      break
    case 6:
      o.spi = n
      o.mark = n % 3 === 0 ? Number.NaN : n % 3 === 1 ? -0 : n
      break
    case 7:
      delete o.spi
      delete o.mark
      o.uid = n
      o.gid = 0
      o.incomplete = n % 5
      break
    case 8:
      o.unknown = [s, "x"]
      break
    case 9:
      o.inner = { protocol: "UDP", src: { ip: s }, dst: { ip: "10.0.0.1", port: n }, incomplete: 1 }
      break
    case 10:
      o.arp = { htype: 1, ptype: "0x0800", opcode: n % 3, macSrc: s }
      break
    case 11:
      delete o.fields
      break
    case 12:
      o.fields = { ...e.fields, SPT: String(n) }
      break
    case 13:
      o.fields = { X: s, ...e.fields }
      break
    case 14: {
      const { IN: _, ...rest } = e.fields ?? {}
      o.fields = rest
      break
    }
    case 15:
      // a value that is not a string after entries the line before had too
      o.fields = { ...e.fields, BAD: n % 2 === 0 ? (n as unknown as string) : (undefined as unknown as string), AFTER: s }
      break
    case 16:
      o.fields = {}
      break
    case 17:
      o.src = { ...e.src, port: n }
      break
    case 18:
      o.dst = { ...e.dst, kind: "pod", namespace: s, name: "web-1", workload: { kind: "Deployment", name: "web" } }
      break
    case 19:
      o.mac = { ...e.mac, src: s }
      break
    case 20:
      o.action = n % 2 === 0 ? "drop" : "accept"
      o.host = n % 3 === 0 ? s : "fw-1"
      break
    case 21:
      delete o.timestamp
      break
    case 22:
      o.timestamp = 1795790134013717 + n
      o.protocol = s
      break
    default:
      o.in = s
      o.out = n % 2 === 0 ? "" : s
  }
  return o as DropEvent
}

const strings = fc.oneof(
  fc.constantFrom("", "eth0", "vrf09", "TCP", "12:99:fd:3b:ce:f8", "a\"b", "\\", "ü", "\u2028", "\ud800"),
  fc.string({ maxLength: 12 })
)

/** A fresh writer per line: no reuse across lines. */
const alone = (e: DropEvent): string => formatJsonLine(e)

describe("JsonLineWriter runs of copied segments", () => {
  it("writes each line of a sequence as written alone, whatever segments appear, disappear or change", () => {
    const writer = new JsonLineWriter(256) // small: the buffer grows while lines refer back
    fc.assert(
      fc.property(
        fc.nat({ max: bases.length - 1 }),
        fc.array(fc.tuple(fc.nat(), strings, fc.integer({ min: 0, max: 70000 }), fc.boolean()), { minLength: 1, maxLength: 16 }),
        (baseIndex, steps) => {
          const events: Array<DropEvent> = []
          let current = bases[baseIndex]!
          for (const [k, s, n, restart] of steps) {
            // now and then another real line: segments are remembered from lines before the last
            current = restart ? bases[n % bases.length]! : change(current, k, s, n)
            events.push(current)
          }
          const expected = events.map((e) => `${alone(e)}\n`).join("")
          expect(writeAll(writer, events)).toBe(expected)
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("writes what the Schema encodes, where it accepts the event", () => {
    const writer = new JsonLineWriter(256)
    let checked = 0
    fc.assert(
      fc.property(
        fc.nat({ max: bases.length - 1 }),
        fc.array(fc.tuple(fc.nat(), strings, fc.integer({ min: 0, max: 70000 })), { minLength: 1, maxLength: 12 }),
        (baseIndex, steps) => {
          const events: Array<DropEvent> = []
          let current = bases[baseIndex]!
          for (const [k, s, n] of steps) {
            current = change(current, k, s, n)
            events.push(current)
          }
          const lines = writeAll(writer, events).split("\n")
          events.forEach((e, i) => {
            let json: string
            try {
              json = JSON.stringify(encodeDropEventJson(e))
            } catch {
              return // (not a valid event: the other test covers it)
            }
            checked++
            expect(lines[i]).toBe(json)
          })
        }
      ),
      { numRuns: 1500 }
    )
    expect(checked).toBeGreaterThan(1000)
  })

  it("copies a struct changed in place since it was written only as it is now", () => {
    const writer = new JsonLineWriter()
    const e = { ...bases[0]!, mac: { ...bases[0]!.mac }, src: { ...bases[0]!.src }, fields: { ...bases[0]!.fields } } as DropEvent
    const src = e.src as { port?: number }
    const mac = e.mac as { src?: string }
    const fields = e.fields as Record<string, string>
    const lines: Array<string> = []
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 1) src.port = 1000 + i
      if (i % 3 === 1) mac.src = `02:00:00:00:00:0${i}`
      if (i === 4) fields.IN = "changed"
      lines.push(alone(e))
    }
    writer.reset()
    Object.assign(src, { port: bases[0]!.src.port })
    Object.assign(mac, { src: bases[0]!.mac?.src })
    fields.IN = bases[0]!.fields.IN!
    const written: Array<string> = []
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 1) src.port = 1000 + i
      if (i % 3 === 1) mac.src = `02:00:00:00:00:0${i}`
      if (i === 4) fields.IN = "changed"
      const from = writer.pos
      writer.event(e)
      written.push(writer.buf.toString("utf8", from, writer.pos))
    }
    expect(written).toEqual(lines)
  })

  it("the same line many times in a row is one copy of the line before but the timestamp", () => {
    const writer = new JsonLineWriter()
    const e = bases[0]!
    const events = Array.from({ length: 50 }, (_, i) => ({ ...e, timestamp: e.timestamp + i }))
    expect(writeAll(writer, events)).toBe(events.map((x) => `${alone(x)}\n`).join(""))
  })
})
