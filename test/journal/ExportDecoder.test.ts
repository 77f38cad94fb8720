/**
 * `ExportDecoder` (the client's way from `journalctl -o export` bytes to `JournalEntry`, with a fast
 * path for entries in the common form) against the general path it shortcuts — `ExportParser` then
 * `decodeJournalEntry` — and both parsers against a plain whole-input reading of the format: on
 * tricky input (binary, non-UTF-8, repeated, unknown and near-miss fields, bad cursors and clocks),
 * at every chunk split point, byte by byte, and on generated entries cut at random.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  alwaysPrinted,
  decodeJournalEntry,
  ExportDecoder,
  ExportParser,
  type JournalEntry,
  type RawEntry,
  type RawValue
} from "../../src/journal/JournalEntry.ts"

const cursor = (i: number) =>
  `s=46d3250e34e546919c4cc68a080935b1;i=${i.toString(16)};b=6bc46222b020476594a23443224435a6;m=84c256f;t=66142f9268fd0;x=57aa39329c42239a`

type Field = readonly [name: string, value: string | Uint8Array, form?: "binary"]

/** An export field: `NAME=value\n`, or `NAME\n<u64 le length><bytes>\n` (binary form). */
const field = ([name, value, form]: Field): Buffer => {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value)
  if (form !== "binary" && typeof value === "string") return Buffer.concat([Buffer.from(`${name}=`), bytes, Buffer.from("\n")])
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(bytes.length))
  return Buffer.concat([Buffer.from(`${name}\n`), length, bytes, Buffer.from("\n")])
}
const entry = (fields: ReadonlyArray<Field>): Buffer => Buffer.concat([...fields.map(field), Buffer.from("\n")])

/** What journalctl prints for a common entry (`-o export --output-fields=MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER`). */
const common = (i: number, message = `nftables-metal-dropped: IN=vrf09 OUT= SRC=10.0.0.${i} DST=4.3.2.1 PROTO=TCP SPT=${1024 + i} DPT=445`): Array<Field> => [
  ["__CURSOR", cursor(i)],
  ["__REALTIME_TIMESTAMP", `${1795790136053712 + i}`],
  ["__MONOTONIC_TIMESTAMP", "9989096092"],
  ["_BOOT_ID", "6bc46222b020476594a23443224435a6"],
  ["_HOSTNAME", "fw-1"],
  ["SYSLOG_IDENTIFIER", "kernel"],
  ["MESSAGE", message]
]
const without = (fields: Array<Field>, name: string) => fields.filter(([n]) => n !== name)
const replaced = (fields: Array<Field>, name: string, value: Field[1], form?: "binary"): Array<Field> =>
  fields.map((f): Field => (f[0] === name ? (form === undefined ? [name, value] : [name, value, form]) : f))

/** Entries in every form the decoders must agree on. */
const tricky: Array<Buffer> = [
  entry(common(1)),
  entry(common(2, "")), // empty value
  entry(without(common(3), "SYSLOG_IDENTIFIER")),
  entry(without(without(common(4), "_HOSTNAME"), "MESSAGE")),
  entry(replaced(common(5), "MESSAGE", "caf\u00e9 \u2603 multi-byte UTF-8")),
  entry(replaced(common(6), "_HOSTNAME", "h\u00f4te")),
  entry(replaced(common(7), "SYSLOG_IDENTIFIER", "k\u00e9rnel")),
  // binary form: newlines (and a blank line) inside, bytes that are not UTF-8
  entry(replaced(common(8), "MESSAGE", Uint8Array.from([...Buffer.from("a\n\nb "), 0xff, 0xfe, 0x0a]), "binary")),
  entry(replaced(common(9), "MESSAGE", new Uint8Array(0), "binary")),
  entry([...common(10), ["BINARY", Uint8Array.from([0, 1, 2, 10, 10, 61, 255]), "binary"]]),
  entry(replaced(common(11), "__CURSOR", cursor(11), "binary")), // a cursor in binary form: not a string
  // non-UTF-8 bytes in a text line
  entry(replaced(common(12), "MESSAGE", Uint8Array.from([...Buffer.from("bad "), 0xc3, 0x28, 0xe9]))),
  // repeated fields
  entry([...common(13), ["MESSAGE", "second"]]),
  entry([...common(14), ["_HOSTNAME", "fw-2"]]),
  entry([...common(15), ["SYSLOG_IDENTIFIER", "again"]]),
  entry([...common(16), ["__CURSOR", cursor(99)]]),
  entry([...common(17), ["__REALTIME_TIMESTAMP", "1"]]),
  entry([...common(18), ["TAG", "one"], ["TAG", "two"], ["TAG", Uint8Array.from([0xc3, 0x28]), "binary"]]),
  // unknown fields, and names one letter away from the known ones (same lengths)
  entry([...common(19), ["_TRANSPORT", "kernel"], ["PRIORITY", "4"], ["X", "1"], ["A_LONGER_FIELD_NAME_THAN_ANY", "v=w"]]),
  entry([...common(20), ["MESSAGX", "m"], ["__CURSOX", "c"], ["_HOSTNAMX", "h"], ["SYSLOG_IDENTIFIEX", "i"]]),
  entry([...common(21), ["__REALTIME_TIMESTAMX", "r"], ["__MONOTONIC_TIMESTAMX", "m"], ["_BOOT_IX", "b"]]),
  // bad or missing cursor and clock
  entry(without(common(22), "__CURSOR")),
  entry(without(common(23), "__REALTIME_TIMESTAMP")),
  entry(replaced(common(24), "__CURSOR", "garbage")),
  entry(replaced(common(25), "__CURSOR", `${cursor(25)};y=1`)),
  entry(replaced(common(26), "__CURSOR", cursor(26).replace("x=57aa", "x=57AA"))),
  entry(replaced(common(27), "__CURSOR", cursor(27).slice(0, -1) + "g")),
  entry(replaced(common(28), "__REALTIME_TIMESTAMP", "")),
  entry(replaced(common(29), "__REALTIME_TIMESTAMP", "12345678901234567")), // 17 digits: above 2^53
  entry(replaced(common(30), "__REALTIME_TIMESTAMP", "123456789012345678")), // 18: rejected
  entry(replaced(common(31), "__REALTIME_TIMESTAMP", "00000000000000042")),
  entry(replaced(common(32), "__REALTIME_TIMESTAMP", "-1")),
  entry(replaced(common(33), "__REALTIME_TIMESTAMP", "1e3")),
  entry(replaced(common(34), "__REALTIME_TIMESTAMP", "999999999999999")), // 15 digits
  entry(replaced(common(35), "__REALTIME_TIMESTAMP", "9007199254740993")), // 16 digits, 2^53 + 1
  // only skipped fields, stray blank lines, a value with "=" in it
  entry([["__MONOTONIC_TIMESTAMP", "1"], ["_BOOT_ID", "b"]]),
  Buffer.from("\n\n"),
  entry(replaced(common(36), "MESSAGE", "a=b=c; d==e")),
  entry(common(37))
]
const sample = Buffer.concat(tricky)

/** The format read plainly, the whole input at once (the oracle for both parsers). */
const readAll = (input: Buffer, skip: ReadonlySet<string>): Array<RawEntry> => {
  const out: Array<RawEntry> = []
  let current: Record<string, Array<RawValue>> = {}
  let pos = 0
  const add = (name: string, value: RawValue) => {
    if (!skip.has(name)) (current[name] ??= []).push(value)
  }
  while (pos < input.length) {
    const nl = input.indexOf(10, pos)
    if (nl === pos) {
      if (Object.keys(current).length > 0) {
        out.push(Object.fromEntries(Object.entries(current).map(([k, v]) => [k, v.length === 1 ? v[0]! : v])))
      }
      current = {}
      pos++
      continue
    }
    const line = input.subarray(pos, nl)
    const eq = line.indexOf(61)
    if (eq !== -1) {
      add(line.subarray(0, eq).toString("latin1"), line.subarray(eq + 1).toString("utf8"))
      pos = nl + 1
    } else {
      const size = Number(input.readBigUInt64LE(nl + 1))
      add(line.toString("latin1"), Uint8Array.prototype.slice.call(input, nl + 9, nl + 9 + size))
      pos = nl + 9 + size + 1
    }
  }
  return out
}

const hex = (n: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n })

type Outcome = { readonly entry: JournalEntry } | { readonly failure: unknown }
const decodeAll = (raws: ReadonlyArray<RawEntry>): Array<Outcome> =>
  raws.map((raw) => {
    const decoded = decodeJournalEntry(raw)
    return decoded._tag === "Success" ? { entry: decoded.success } : { failure: decoded.failure }
  })

/** The decoder's outcomes, in journal order, feeding `input` cut at `cuts`. */
const viaDecoder = (input: Buffer, cuts: ReadonlyArray<number>, skip: ReadonlyArray<string>): Array<Outcome> => {
  const decoder = new ExportDecoder(skip)
  const out: Array<Outcome> = []
  let from = 0
  for (const to of [...cuts, input.length]) {
    // copies: nothing may depend on the chunk's memory after push returns
    const chunk = Buffer.from(input.subarray(from, to))
    const entries = decoder.push(chunk)
    chunk.fill(0x41)
    // failures come out with the chunk that completes them; order them by cursor-less position:
    // the general path keeps journal order, so compare failures and entries separately below
    for (const failure of decoder.failures.splice(0)) out.push({ failure })
    for (const e of entries) out.push({ entry: e })
    from = to
  }
  if (decoder.buffered !== 0) expect(decoder.buffered).toBe(0)
  return out
}

const viaParser = (input: Buffer, cuts: ReadonlyArray<number>, skip: ReadonlyArray<string>): Array<RawEntry> => {
  const parser = new ExportParser(skip)
  const out: Array<RawEntry> = []
  let from = 0
  for (const to of [...cuts, input.length]) {
    const chunk = Buffer.from(input.subarray(from, to))
    out.push(...parser.push(chunk))
    chunk.fill(0x41)
    from = to
  }
  if (parser.buffered !== 0) expect(parser.buffered).toBe(0)
  return out
}

const entriesOf = (outcomes: ReadonlyArray<Outcome>) => outcomes.flatMap((o) => ("entry" in o ? [o.entry] : []))
const failuresOf = (outcomes: ReadonlyArray<Outcome>) => outcomes.flatMap((o) => ("failure" in o ? [o.failure] : []))

const skips: ReadonlyArray<ReadonlyArray<string>> = [
  alwaysPrinted, // what JournalSource uses
  [], // extraFields asked for both
  ["_BOOT_ID", "TAG"],
  ["MESSAGE"] // a field the entry is made of: the general path only
]

/** What both parsers must give for `input` (computed once per input and skip list). */
const expectation = (input: Buffer, skip: ReadonlyArray<string>) => {
  const raws = readAll(input, new Set(skip))
  const outcomes = decodeAll(raws)
  const entries = entriesOf(outcomes)
  const failures = failuresOf(outcomes)
  return { input, skip, raws, rawsText: canonical(raws), entries, entriesText: canonical(entries), failures }
}

/** Every own key (in order, `undefined` values included) and value: stricter than toStrictEqual, and fast. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v instanceof Uint8Array
      ? { bytes: [...v], buffer: Buffer.isBuffer(v) }
      : typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.entries(v).map(([k, x]) => [k, x === undefined ? "(undefined)" : x])
      : v)

/** `actual` is `expected` (a readable diff when not). */
const same = (actual: unknown, expected: unknown) => {
  if (canonical(actual) !== canonical(expected)) expect(actual).toStrictEqual(expected)
  expect(canonical(actual)).toBe(canonical(expected))
}

/**
 * Decoder and parser give what is expected for `expected.input` cut at `cuts`. The failures are
 * compared by count (the same raw entry fails the same way); `messages`: by message too (slow).
 */
const agree = (expected: ReturnType<typeof expectation>, cuts: ReadonlyArray<number>, messages = false) => {
  const actual = viaDecoder(expected.input, cuts, expected.skip)
  const entries = entriesOf(actual)
  if (canonical(entries) !== expected.entriesText) same(entries, expected.entries)
  const failures = failuresOf(actual)
  if (failures.length !== expected.failures.length) expect(failures.length).toBe(expected.failures.length)
  if (messages) expect(failures.map(String)).toEqual(expected.failures.map(String))
  const raws = viaParser(expected.input, cuts, expected.skip)
  if (canonical(raws) !== expected.rawsText) same(raws, expected.raws)
}

describe("ExportDecoder", () => {
  it("decodes the tricky sample as the general path does", () => {
    const expected = expectation(sample, alwaysPrinted)
    // the sample exercises both paths and both outcomes
    expect(expected.entries.length).toBeGreaterThan(20)
    expect(expected.failures.length).toBeGreaterThan(8)
    for (const skip of skips) agree(expectation(sample, skip), [], true)
  })

  it("agrees at every split point of a small sample, and byte by byte", () => {
    // one of each kind: common, UTF-8, binary (with a blank line inside), binary cursor, non-UTF-8
    // text, repeated fields, near-miss names, a bad cursor, a 17-digit clock, only skipped fields
    const small = Buffer.concat([0, 4, 7, 10, 11, 12, 17, 19, 23, 28, 35, 36].map((i) => tricky[i]!))
    for (const skip of skips) {
      const expected = expectation(small, skip)
      // every point with JournalSource's skip list, every 5th with the others
      const step = skip === alwaysPrinted ? 1 : 5
      for (let at = 0; at <= small.length; at += step) agree(expected, [at])
      agree(expected, Array.from({ length: small.length }, (_, i) => i), true)
    }
    // the whole sample, byte by byte and at every 97th point
    const expected = expectation(sample, alwaysPrinted)
    agree(expected, Array.from({ length: sample.length }, (_, i) => i), true)
    for (let at = 0; at <= sample.length; at += 97) agree(expected, [at])
  })

  it("agrees at every pair of split points of a small sample (a field cut twice)", () => {
    const small = Buffer.concat([tricky[7]!, tricky[12]!])
    const expected = expectation(small, alwaysPrinted)
    for (let a = 0; a <= small.length; a++) {
      for (let b = a; b <= small.length; b += 13) agree(expected, [a, b])
    }
  })

  it("values are the field text (ASCII, UTF-8, non-UTF-8) and entries keep nothing of the chunk", () => {
    const decoder = new ExportDecoder(alwaysPrinted)
    const chunk = Buffer.concat([tricky[0]!, tricky[4]!, tricky[11]!])
    const [ascii, utf8, invalid] = decoder.push(chunk)
    chunk.fill(0)
    expect(ascii).toStrictEqual({
      cursor: cursor(1),
      realtime: 1795790136053713,
      hostname: "fw-1",
      message: "nftables-metal-dropped: IN=vrf09 OUT= SRC=10.0.0.1 DST=4.3.2.1 PROTO=TCP SPT=1025 DPT=445",
      identifier: "kernel",
      fields: {}
    })
    expect(utf8!.message).toBe("caf\u00e9 \u2603 multi-byte UTF-8")
    expect(invalid!.message).toBe("bad \ufffd(\ufffd")
    expect(decoder.failures).toEqual([])
  })

  it("agrees on generated entries cut at random", () => {
    const anyCursor = fc.oneof(
      fc.tuple(hex(32), hex(3), hex(32)).map(([s, i, b]) => `s=${s};i=${i};b=${b};m=1;t=2;x=3`),
      fc.string({ maxLength: 12 }).filter((s) => !s.includes("\n"))
    )
    const text = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom("", "a=b", "\u00e9\u2603"))
      .filter((s) => !s.includes("\n"))
    const name = fc.constantFrom(
      "__CURSOR",
      "__REALTIME_TIMESTAMP",
      "__MONOTONIC_TIMESTAMP",
      "_BOOT_ID",
      "_HOSTNAME",
      "MESSAGE",
      "SYSLOG_IDENTIFIER",
      "MESSAGX",
      "TAG",
      "_TRANSPORT"
    )
    const anyField: fc.Arbitrary<Field> = fc.oneof(
      fc.tuple(name, text).map(([n, v]): Field => [n, v]),
      fc.tuple(name, fc.uint8Array({ maxLength: 6 })).map(([n, v]): Field => [n, v, "binary"]),
      fc.tuple(name, fc.uint8Array({ maxLength: 6 }).filter((v) => !v.includes(10))).map(([n, v]): Field => [n, v])
    )
    const anEntry = fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.nat(1000), text).map(([i, m]) => common(i, m)) },
      {
        weight: 3,
        arbitrary: fc.tuple(anyCursor, fc.stringMatching(/^\d{0,18}$/), fc.array(anyField, { maxLength: 5 })).map((
          [c, r, rest]
        ): Array<Field> => [["__CURSOR", c], ["__REALTIME_TIMESTAMP", r], ...rest])
      },
      { weight: 1, arbitrary: fc.array(anyField, { maxLength: 6 }) }
    )
    fc.assert(
      fc.property(
        fc.array(anEntry, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.constantFrom(...skips),
        (entries, cutSeeds, skip) => {
          const input = Buffer.concat(entries.map(entry))
          const cuts = [...new Set(cutSeeds.map((c) => c % (input.length + 1)))].toSorted((a, b) => a - b)
          agree(expectation(input, skip), cuts, true)
        }
      ),
      { numRuns: 2_000 }
    )
  })
})
