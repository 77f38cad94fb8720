/**
 * The hand-written JSON line writer (`JsonLineWriter`, behind `formatJsonLine` and the server's
 * stdout) against the definition: JSON.stringify of the Schema encoding. Events with every key of
 * every struct set, odd strings (quotes, backslashes, control characters, lone surrogates,
 * U+2028, non-ASCII keys and values), odd numbers, and sequences of similar events written into
 * one writer (which copies what equals the previous line's bytes).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { Writable } from "node:stream"
import {
  type DropEvent,
  encodeDropEventJson,
  type Endpoint,
  formatTimestamp,
  type WorkloadRef
} from "../../src/domain/DropEvent.ts"
import { formatJsonLine, JsonLineWriter } from "../../src/domain/Format.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { IngestHandler } from "../../src/server/IngestHandler.ts"
import { StdoutIngestHandler } from "../../src/server/StdoutIngestHandler.ts"
import { writeAll } from "../support/json-lines.ts"
import { allLines } from "./lines.ts"

// ---- the previous implementation (object copy + JSON.stringify), the oracle for what the Schema refuses ----
const workloadJson = (w: WorkloadRef) => ({ kind: w.kind, name: w.name })
const endpointJson = (e: Endpoint) => ({
  ip: e.ip,
  port: e.port,
  kind: e.kind,
  namespace: e.namespace,
  name: e.name,
  workload: e.workload === undefined ? undefined : workloadJson(e.workload),
  node: e.node
})
type S = Record<string, unknown>
const ipJson = (ip: S) => ({
  version: ip.version,
  length: ip.length,
  ttl: ip.ttl,
  tos: ip.tos,
  precedence: ip.precedence,
  id: ip.id,
  flags: ip.flags,
  fragmentOffset: ip.fragmentOffset,
  options: ip.options,
  trafficClass: ip.trafficClass,
  flowLabel: ip.flowLabel
})
const tcpJson = (t: S) => ({
  seq: t.seq,
  ack: t.ack,
  window: t.window,
  reserved: t.reserved,
  flags: t.flags,
  urgentPointer: t.urgentPointer,
  options: t.options
})
const icmpJson = (i: S) => ({
  type: i.type,
  code: i.code,
  id: i.id,
  seq: i.seq,
  parameter: i.parameter,
  gateway: i.gateway,
  mtu: i.mtu
})
const opt = <A, B>(a: A | undefined, f: (a: A) => B) => (a === undefined ? undefined : f(a))
const previousJsonLine = (e: DropEvent): string =>
  JSON.stringify({
    timestamp: opt(e.timestamp, formatTimestamp),
    action: e.action,
    host: e.host,
    protocol: e.protocol,
    src: opt(e.src, endpointJson),
    dst: opt(e.dst, endpointJson),
    in: e.in,
    out: e.out,
    physin: e.physin,
    physout: e.physout,
    mac: opt(e.mac, (m) => ({ dst: m.dst, src: m.src, ethertype: m.ethertype, raw: m.raw })),
    ip: opt(e.ip as S | undefined, ipJson),
    tcp: opt(e.tcp as S | undefined, tcpJson),
    udp: opt(e.udp, (u) => ({ length: u.length })),
    icmp: opt(e.icmp as S | undefined, icmpJson),
    inner: opt(e.inner, (i) => ({
      protocol: i.protocol,
      src: opt(i.src, endpointJson),
      dst: opt(i.dst, endpointJson),
      ip: opt(i.ip as S | undefined, ipJson),
      tcp: opt(i.tcp as S | undefined, tcpJson),
      udp: opt(i.udp, (u) => ({ length: u.length })),
      icmp: opt(i.icmp as S | undefined, icmpJson),
      incomplete: i.incomplete
    })),
    arp: opt(e.arp, (a) => ({ htype: a.htype, ptype: a.ptype, opcode: a.opcode, macSrc: a.macSrc, macDst: a.macDst })),
    spi: e.spi,
    mark: e.mark,
    uid: e.uid,
    gid: e.gid,
    incomplete: e.incomplete,
    unknown: e.unknown,
    fields: e.fields
  })

/** The definition: the Schema's JSON encoding. */
const schemaJsonLine = (e: DropEvent): string => JSON.stringify(encodeDropEventJson(e))

// ---- arbitraries ----
const oddPieces = [
  "\"", "\\", "\\\"", "\u0000", "\u0001", "\u001f", "\n", "\r", "\t", "\b", "\f", "\u007f", "\u0080", "\u00e9", "\u00ff",
  "\u0100", "\u2028", "\u2029", "\ud800", "\udfff", "\ud83d\ude00", "\ud83d", "\ude00x", "\ufffd", "\uffff", "<", ">",
  "&", "'", "/", "{", "}", ":", ",", "[", "]", "ü", "日本", "\u0022\u005c"
]
const oddString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("", "TCP", "vrf09", "1.2.3.4", "0x00", "fe80::1", "12:99:fd:3b:ce:f8") },
  { weight: 3, arbitrary: fc.array(fc.oneof(fc.constantFrom(...oddPieces), fc.string({ maxLength: 4 })), { maxLength: 6 }).map((a) => a.join("")) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) }
)
const int = fc.oneof(
  fc.constantFrom(0, 1, 9, 10, 99, 100, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, -1, -(2 ** 31), -0),
  fc.integer(),
  fc.maxSafeInteger()
)
const number = fc.oneof(int, fc.double({ noNaN: true, noDefaultInfinity: true }))
const strings = fc.array(oddString, { maxLength: 4 })
const workload = fc.record({ kind: oddString, name: oddString })
const endpoint = fc.record(
  { ip: oddString, port: int, kind: fc.constantFrom("pod", "service", "node", "external"), namespace: oddString, name: oddString, workload, node: oddString },
  { requiredKeys: [] }
)
const ip = fc.record(
  {
    version: fc.constantFrom(4 as const, 6 as const), length: int, ttl: int, tos: oddString, precedence: oddString, id: int, flags: strings,
    fragmentOffset: int, options: oddString, trafficClass: oddString, flowLabel: oddString
  },
  { requiredKeys: ["version"] }
)
const tcp = fc.record(
  { seq: number, ack: number, window: int, reserved: oddString, flags: strings, urgentPointer: int, options: oddString },
  { requiredKeys: ["flags"] }
)
const udp = fc.record({ length: int }, { requiredKeys: [] })
const icmp = fc.record(
  { type: int, code: int, id: int, seq: int, parameter: int, gateway: oddString, mtu: int },
  { requiredKeys: [] }
)
const anyFields = fc.oneof(
  fc.dictionary(oddString, oddString, { maxKeys: 8 }),
  // integer-like keys (ordered first by JSON.stringify), __proto__, non-ASCII keys
  fc.array(fc.tuple(fc.constantFrom("IN", "OUT", "0", "1", "10", "4294967295", "-1", "01", "__proto__", "ä", "\u2028", "SPT", "\ud800"), oddString), { maxLength: 8 })
    .map((entries) => {
      const o: Record<string, string> = {}
      for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
      return o
    })
)
const anyTimestamp = fc.oneof(
  fc.constantFrom(0, 1, 999_999, 1_000_000, 1795790134000000, 1795790134013717, 1795790134999999, -1, -999_999, -1_000_001, -(2 ** 53) + 1_000_001),
  // (the Schema's Int: safe integers only)
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER - 10_000_000 })
)
const event: fc.Arbitrary<DropEvent> = fc.record(
  {
    timestamp: anyTimestamp, action: fc.constantFrom("drop" as const, "accept" as const), host: oddString, protocol: oddString,
    src: endpoint, dst: endpoint, in: oddString, out: oddString, physin: oddString, physout: oddString,
    mac: fc.record({ dst: oddString, src: oddString, ethertype: oddString, raw: oddString }, { requiredKeys: [] }),
    ip, tcp, udp, icmp,
    inner: fc.record(
      { protocol: oddString, src: endpoint, dst: endpoint, ip, tcp, udp, icmp, incomplete: int },
      { requiredKeys: [] }
    ),
    arp: fc.record({ htype: int, ptype: oddString, opcode: int, macSrc: oddString, macDst: oddString }, { requiredKeys: [] }),
    spi: number, mark: number, uid: int, gid: int, incomplete: int, unknown: strings, fields: anyFields
  },
  { requiredKeys: ["timestamp", "action", "host", "protocol", "src", "dst", "in", "out", "fields"] }
) as fc.Arbitrary<DropEvent>

/** Small changes to an event: what the next line of a batch looks like. */
const changed = (base: DropEvent, change: number, value: string, n: number): DropEvent => {
  switch (change % 12) {
    case 0:
      return base
    case 1:
      return { ...base, src: { ...base.src, port: n } }
    case 2:
      return { ...base, fields: { ...base.fields, SPT: value } }
    case 3:
      return base.mac === undefined ? base : { ...base, mac: { ...base.mac, src: value } }
    case 4:
      return base.ip === undefined ? base : { ...base, ip: { ...base.ip, id: n } }
    case 5:
      return base.tcp === undefined ? base : { ...base, tcp: { ...base.tcp, flags: [...base.tcp.flags, value] } }
    case 6: {
      const { IN: _, ...rest } = base.fields
      return { ...base, fields: rest }
    }
    case 7:
      return { ...base, fields: { X: value, ...base.fields } }
    case 8:
      return { ...base, timestamp: base.timestamp + n }
    case 9:
      return base.inner === undefined ? base : { ...base, inner: { ...base.inner, incomplete: n } }
    case 10:
      return { ...base, dst: { ...base.dst, workload: { kind: value, name: "web" } } }
    default:
      return { ...base, fields: Object.fromEntries(Object.entries(base.fields).map(([k, v], i) => [k, i === n % 3 ? value : v])) }
  }
}

describe("JsonLineWriter", () => {
  it("writes exactly JSON.stringify of the Schema encoding, for any event", () => {
    fc.assert(
      fc.property(event, (e) => {
        const expected = schemaJsonLine(e)
        expect(formatJsonLine(e)).toBe(expected)
        expect(previousJsonLine(e)).toBe(expected)
      }),
      { numRuns: 3000 }
    )
  })

  it("writes each line of a sequence of similar events exactly, whatever it reuses of the line before", () => {
    const writer = new JsonLineWriter(256) // small: the buffer grows while lines refer back
    fc.assert(
      fc.property(
        event,
        fc.array(fc.tuple(fc.nat(), oddString, fc.integer({ min: 0, max: 70000 })), { minLength: 1, maxLength: 12 }),
        (base, changes) => {
          const events: Array<DropEvent> = []
          let current = base
          for (const [change, value, n] of changes) {
            current = changed(current, change, value, n)
            events.push(current)
          }
          expect(writeAll(writer, events)).toBe(events.map((e) => `${schemaJsonLine(e)}\n`).join(""))
        }
      ),
      { numRuns: 1500 }
    )
  })

  it("writes every real line exactly, alone and as one batch", () => {
    const context = { timestamp: 1795790134013717, host: "fw-1" }
    const events = allLines.map((text, i) => {
      const r = parseLine(text, defaultPrefixes, { ...context, timestamp: context.timestamp + i })
      if (r._tag !== "Event") throw new Error(r.reason)
      return r.event
    })
    const expected = events.map((e) => `${schemaJsonLine(e)}\n`)
    for (let i = 0; i < events.length; i++) expect(`${formatJsonLine(events[i]!)}\n`).toBe(expected[i])
    const writer = new JsonLineWriter()
    // the same lines twice in a row (everything reused), and each line after every other one
    const doubled = events.flatMap((e) => [e, e])
    expect(writeAll(writer, doubled)).toBe(expected.flatMap((l) => [l, l]).join(""))
    const pairs = events.flatMap((a) => events.map((b) => [a, b] as const))
    expect(writeAll(writer, pairs.flat())).toBe(pairs.map(([a, b]) => expected[events.indexOf(a)]! + expected[events.indexOf(b)]!).join(""))
  })

  it("does not reuse a struct that was changed in place since the line before", () => {
    const writer = new JsonLineWriter()
    const mac = { dst: "a", src: "b", ethertype: "0x0800" }
    const fields: Record<string, string> = { IN: "x", OUT: "" }
    const e = { timestamp: 1795790134000000, action: "drop", host: "h", protocol: "TCP", src: {}, dst: {}, in: "x", out: "", mac, fields } as DropEvent
    writer.reset()
    writer.event(e)
    const first = writer.pos
    mac.src = "changed"
    fields.OUT = "changed"
    writer.event(e)
    expect(writer.buf.toString("utf8", first, writer.pos)).toBe(schemaJsonLine(e))
  })

  it("writes numbers as JSON.stringify does, non-finite ones as null (what the old line did)", () => {
    for (const n of [0, -0, 1, -1, 7, 10, 2 ** 31 - 1, 2 ** 31, 2 ** 53, 1e21, 1.5, -2.25e-7, Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity]) {
      const e = { timestamp: 1795790134000000, action: "drop", host: "h", protocol: "", src: { port: n }, dst: {}, in: "", out: "", mark: n, fields: {} } as DropEvent
      expect(formatJsonLine(e)).toBe(previousJsonLine(e))
    }
  })

  it("writes odd timestamps as the Schema's formatTimestamp does (and throws where it throws)", () => {
    const base = { action: "drop", host: "h", protocol: "", src: {}, dst: {}, in: "", out: "", fields: {} }
    const writer = new JsonLineWriter()
    for (const timestamp of [0, 1, -1, 1.5, -0.5, 1795790134000000.25, 1e15 + 0.5, -62135596800000000, 253402300799000000, 1795790134999999, 1795790135000000]) {
      const e = { ...base, timestamp } as DropEvent
      expect(formatJsonLine(e)).toBe(previousJsonLine(e))
      writer.reset()
      writer.event(e)
      writer.event(e)
      expect(writer.buf.toString("utf8", 0, writer.pos)).toBe(previousJsonLine(e).repeat(2))
    }
    expect(() => formatJsonLine({ ...base, timestamp: 1e20 } as DropEvent)).toThrow(RangeError)
    // a line without timestamp (not a valid event, but what JSON.stringify did: the key left out)
    const untimed = { ...base } as unknown as DropEvent
    expect(formatJsonLine(untimed)).toBe(previousJsonLine(untimed))
  })

  it("writes fields with non-string values as JSON.stringify does (not what the type allows, but never garbage)", () => {
    const writer = new JsonLineWriter()
    const base = { timestamp: 1795790134000000, action: "drop", host: "h", protocol: "", src: {}, dst: {}, in: "", out: "" }
    const odd = [{ A: "1", B: undefined, C: "3" }, { A: "1", B: 2 }, { A: "1", B: null }, { A: { x: 1 } }, { A: "1", B: "2", C: "3" }]
    writer.reset()
    let expected = ""
    for (const fields of odd) {
      const e = { ...base, fields } as unknown as DropEvent
      expect(formatJsonLine(e)).toBe(previousJsonLine(e))
      writer.event(e)
      expected += previousJsonLine(e)
    }
    expect(writer.buf.toString("utf8", 0, writer.pos)).toBe(expected)
  })

  it("writes own keys only: a null-prototype map, a class instance, an Object.prototype with an enumerable key", () => {
    const base = { timestamp: 1795790134000000, action: "drop", host: "h", protocol: "", src: {}, dst: {}, in: "", out: "" }
    const bare = Object.assign(Object.create(null) as Record<string, string>, { B: "1", A: "2" })
    class Fields {
      X = "1"
    }
    Object.defineProperty(Fields.prototype, "inherited", { value: "no", enumerable: true })
    const writer = new JsonLineWriter()
    const check = (fields: Record<string, string>) => {
      const e = { ...base, fields } as DropEvent
      expect(formatJsonLine(e)).toBe(previousJsonLine(e))
      writer.reset()
      writer.event(e)
      writer.event(e)
      expect(writer.buf.toString("utf8", 0, writer.pos)).toBe(previousJsonLine(e).repeat(2))
    }
    check(bare)
    check(new Fields() as unknown as Record<string, string>)
    check({ A: "1", B: "2" })
    // oxlint-disable-next-line no-extend-native -- the point of the test, undone below
    Object.defineProperty(Object.prototype, "polluted", { value: "x", enumerable: true, configurable: true, writable: true })
    try {
      check({ A: "1", B: "2" })
    } finally {
      delete (Object.prototype as Record<string, unknown>).polluted
    }
    check({ A: "1", B: "2" })
  })

  it.effect("the stdout handler writes a batch of similar events as their exact lines", () =>
    Effect.gen(function*() {
      const chunks: Array<Buffer> = []
      const stream = new Writable({
        write(chunk: Buffer, _encoding, done) {
          chunks.push(chunk)
          done()
        }
      })
      const events = fc.sample(
        event.chain((base) => fc.array(fc.tuple(fc.nat(), oddString, fc.nat(70000)), { minLength: 50, maxLength: 50 }).map((changes) => {
          let current = base
          return changes.map(([c, v, n]) => (current = changed(current, c, v, n)))
        })),
        { numRuns: 20, seed: 42 }
      ).flat()
      const handler = yield* Effect.provide(Effect.service(IngestHandler), StdoutIngestHandler.layerTo(stream, "json"))
      yield* handler.handle(events.slice(0, 500))
      yield* handler.handle(events.slice(500))
      expect(Buffer.concat(chunks).toString("utf8")).toBe(events.map((e) => `${schemaJsonLine(e)}\n`).join(""))
    }))
})
