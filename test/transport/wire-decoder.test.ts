/**
 * The request decoder's strings against a strict UTF-8 decoder: short and long (the decoder takes
 * a different path past 32 bytes), ASCII, non-ASCII, invalid sequences anywhere, lengths around
 * the limits, and the host and map strings it reuses from the previous Drop when the bytes match.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { hashId } from "../../src/transport/DedupWindow.ts"
import { defaultWireLimits, makeWireDecoder } from "../../src/transport/WireDrop.ts"
import { varint } from "./support.ts"

const field = (tag: number, body: Uint8Array): Buffer => Buffer.concat([Buffer.from([tag, ...varint(body.length)]), body])
const timestamp = field(10, Buffer.from([8, ...varint(1_795_790_134), 16, ...varint(123_000)]))

interface RawDrop {
  readonly fields: ReadonlyArray<readonly [Uint8Array, Uint8Array]>
  readonly eventId: Uint8Array
  readonly host: Uint8Array
  readonly message: Uint8Array
}
const encode = (d: RawDrop): Buffer =>
  Buffer.concat([
    timestamp,
    ...d.fields.map(([k, v]) => field(18, Buffer.concat([field(10, k), field(18, v)]))),
    field(26, d.eventId),
    field(34, d.host),
    field(42, d.message)
  ])

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
/** The string, or why it is refused. */
const strictly = (bytes: Uint8Array, max: number): { ok: true; text: string } | { ok: false; why: RegExp } => {
  let text: string
  try {
    text = strict.decode(bytes)
  } catch {
    return { ok: false, why: /not valid UTF-8/ }
  }
  return text.length > max ? { ok: false, why: /longer than/ } : { ok: true, text }
}

const limits = { ...defaultWireLimits, maxFieldLength: 40, maxMessageLength: 60, maxIdLength: 36 }
const pieces = [
  "a", "SRC=1.2.3.4 ", "é", "😀", "\u2028", "日本", "\u0000", "\u007f", "\uffff", "x".repeat(33)
].map((s) => Buffer.from(s))
const invalid = [[0x80], [0xff], [0xc3], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0xe0, 0x80, 0xaf], [0xf4, 0x90, 0x80, 0x80]].map((b) => Buffer.from(b))
const bytesArb = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.constantFrom(...pieces), { maxLength: 8 }).map((a) => Buffer.concat(a)) },
  { weight: 2, arbitrary: fc.tuple(fc.array(fc.constantFrom(...pieces), { maxLength: 5 }), fc.constantFrom(...invalid), fc.array(fc.constantFrom(...pieces), { maxLength: 5 })).map(([a, b, c]) => Buffer.concat([...a, b, ...c])) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)) },
  { weight: 2, arbitrary: fc.constantFrom(Buffer.from("fw-bench"), Buffer.from("h".repeat(36)), Buffer.from("h".repeat(37)), Buffer.from("IN"), Buffer.from("vrf09")) }
)
const dropArb: fc.Arbitrary<RawDrop> = fc.record({
  fields: fc.array(fc.tuple(fc.oneof(fc.constantFrom(Buffer.from("IN"), Buffer.from("SPT")), bytesArb), bytesArb), { minLength: 1, maxLength: 4 }),
  eventId: bytesArb,
  host: bytesArb,
  message: bytesArb
})

const check = (drop: RawDrop, decoded: ReturnType<ReturnType<typeof makeWireDecoder>["single"]>): void => {
  const strings: Array<readonly [Uint8Array, number]> = [
    ...drop.fields.flatMap(([k, v]) => [[k, limits.maxFieldLength], [v, limits.maxFieldLength]] as const),
    [drop.eventId, limits.maxIdLength],
    [drop.host, limits.maxIdLength],
    [drop.message, limits.maxMessageLength]
  ]
  const results = strings.map(([b, max]) => strictly(b, max))
  const refused = results.find((r) => !r.ok)
  if (refused !== undefined && !refused.ok) {
    expect(decoded._tag).toBe("Failure")
    if (decoded._tag === "Failure") expect(decoded.failure.reason).toMatch(/not valid UTF-8|longer than/)
    return
  }
  expect(decoded._tag).toBe("Success")
  if (decoded._tag !== "Success") return
  const text = (i: number) => (results[i] as { text: string }).text
  const fields: Record<string, string> = {}
  drop.fields.forEach((_, i) => Object.defineProperty(fields, text(2 * i), { value: text(2 * i + 1), enumerable: true, writable: true, configurable: true }))
  const n = drop.fields.length * 2
  // the id's hash, when the decoder took it from the bytes, is the window's hash of the string
  const { idHash, ...rest } = decoded.success
  if (idHash !== undefined) expect(idHash).toBe(hashId(rest.eventId))
  expect(rest).toEqual({
    timestamp: { seconds: 1_795_790_134, nanos: 123_000 },
    fields,
    eventId: text(n),
    host: text(n + 1),
    message: text(n + 2)
  })
}

describe("request decoder strings", () => {
  it("decodes exactly what a strict UTF-8 decoder does and refuses the rest, Drop after Drop", () => {
    const decoder = makeWireDecoder(limits)
    fc.assert(
      fc.property(fc.array(dropArb, { minLength: 1, maxLength: 6 }), (drops) => {
        for (const drop of drops) check(drop, decoder.single(encode(drop)))
      }),
      { numRuns: 3000 }
    )
  })

  it("reuses the host of the previous Drop only for the same bytes", () => {
    const decoder = makeWireDecoder(limits)
    const base = { fields: [[Buffer.from("IN"), Buffer.from("x")]] as const, eventId: Buffer.from("1"), message: Buffer.from("m") }
    for (const host of ["fw-a", "fw-a", "fw-b", "fw-a", "fw-é", "fw-é", "", "fw-a", "h".repeat(36), "h".repeat(37), "h".repeat(36)]) {
      const drop = { ...base, host: Buffer.from(host) }
      check(drop, decoder.single(encode(drop)))
    }
    // the same bytes under a smaller limit: still refused
    const small = makeWireDecoder({ ...limits, maxIdLength: 3 })
    const drop = { ...base, host: Buffer.from("fw-a") }
    expect(small.single(encode(drop))._tag).toBe("Failure")
    // and a map entry seen before (remembered whole) under a smaller limit for keys and values
    const entry = { ...base, host: Buffer.from("h"), fields: [[Buffer.from("IN"), Buffer.from("v".repeat(30))], [Buffer.from("K".repeat(30)), Buffer.from("v")]] as const }
    for (const [fields, refused] of [[entry.fields, false], [entry.fields.slice(1), false], [entry.fields, false]] as const) {
      expect(decoder.single(encode({ ...entry, fields }))._tag).toBe(refused ? "Failure" : "Success")
      const narrow = makeWireDecoder({ ...limits, maxFieldLength: 8 }).single(encode({ ...entry, fields }))
      expect(narrow._tag).toBe("Failure")
      if (narrow._tag === "Failure") expect(narrow.failure.reason).toMatch(/longer than 8 characters/)
    }
  })

  it("builds each map as its entries in order would, whatever the maps before it (repeated keys, __proto__, integer keys)", () => {
    const decoder = makeWireDecoder()
    const keyArb = fc.constantFrom("IN", "OUT", "SPT", "DPT", "__proto__", "1", "0", "10", "ä", "x".repeat(70), "ACTION", "ACTION")
    const valueArb = fc.constantFrom("", "a", "b", "1234", "y".repeat(70), "é", "drop", "accept")
    const mapArb = fc.array(fc.tuple(keyArb, valueArb), { minLength: 1, maxLength: 6 })
    // sequences where the same keys come back with other values, as in a real batch
    const sequenceArb = fc.tuple(mapArb, fc.array(fc.array(valueArb, { minLength: 6, maxLength: 6 }), { maxLength: 5 }), fc.array(mapArb, { maxLength: 3 }))
      .map(([first, revalued, others]) => [first, ...revalued.map((values) => first.map(([k], i) => [k, values[i]!] as const)), ...others, first])
    fc.assert(
      fc.property(sequenceArb, (maps) => {
        for (const entries of maps) {
          const drop = { fields: entries.map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as const), eventId: Buffer.from("i"), host: Buffer.from("h"), message: Buffer.from("m") }
          const decoded = decoder.single(encode(drop))
          if (decoded._tag !== "Success") throw new Error(decoded.failure.reason)
          const expected: Record<string, string> = {}
          for (const [k, v] of entries) {
            if (k === "__proto__") Object.defineProperty(expected, k, { value: v, enumerable: true, writable: true, configurable: true })
            else expected[k] = v
          }
          expect(Object.entries(decoded.success.fields)).toEqual(Object.entries(expected))
          expect(Object.getPrototypeOf(decoded.success.fields)).toBe(Object.prototype)
          expect(JSON.stringify(decoded.success.fields)).toBe(JSON.stringify(expected))
        }
      }),
      { numRuns: 2000 }
    )
  })
})
