/**
 * A systemd journal entry as the client needs it, and the decoders from journalctl's output.
 *
 * journalctl prints an entry's fields in one of two machine formats:
 * - `-o export` (what JournalSource uses: measured 2-3x faster than `-o json`, and binary-safe):
 *   `NAME=value\n` per field, or for a value with a newline or bytes that are not UTF-8
 *   `NAME\n<64-bit little-endian length><raw bytes>\n`; a blank line ends the entry.
 * - `-o json`: one object per line; a non-UTF-8 value is an array of byte numbers, a repeated
 *   field is an array of values, a too-large value is null.
 * Both come out as a `RawEntry` (field → value or values, each a string or raw bytes), which the
 * `JournalEntry` schema decodes. Non-UTF-8 values are decoded (invalid bytes become U+FFFD), and
 * every value of a repeated field is kept.
 */
import { isAscii } from "node:buffer"
import { Result, Schema } from "effect"

/** One field value as journalctl printed it: text, raw bytes (export), or byte numbers (json). */
export type RawValue = string | Uint8Array | ReadonlyArray<number>
/** An entry before decoding: field name → value, or all values of a repeated field. */
export type RawEntry = Record<string, RawValue | ReadonlyArray<RawValue> | null>

const utf8 = new TextDecoder("utf-8", { fatal: false })

const textOf = (value: RawValue): string =>
  typeof value === "string"
    ? value
    : value instanceof Uint8Array
    ? utf8.decode(value)
    : utf8.decode(Uint8Array.from(value))

const isByteArray = (value: ReadonlyArray<unknown>): boolean =>
  value.length > 0 && value.every((v) => typeof v === "number")

/** All values of a field, decoded to text. */
export const valuesOf = (raw: RawEntry[string] | undefined): Array<string> => {
  if (raw === undefined || raw === null) return []
  if (typeof raw === "string" || raw instanceof Uint8Array) return [textOf(raw)]
  if (!Array.isArray(raw)) return [String(raw)]
  if (isByteArray(raw)) return [textOf(raw as ReadonlyArray<number>)]
  return (raw as ReadonlyArray<unknown>).map((v) =>
    typeof v === "string" || v instanceof Uint8Array || Array.isArray(v) ? textOf(v as RawValue) : String(v)
  )
}

/** `s=<seqnum id>;i=<seqnum hex>;b=<boot id>;m=<monotonic hex>;t=<realtime hex>;x=<xor hash hex>` */
export const cursorPattern = /^s=[0-9a-f]{32};i=[0-9a-f]+;b=[0-9a-f]{32};m=[0-9a-f]+;t=[0-9a-f]+;x=[0-9a-f]+$/

export const Cursor = Schema.String.check(
  Schema.makeFilter((s: string) => validCursor(s) || "a journal cursor (s=...;i=...;b=...;m=...;t=...;x=...)")
).pipe(Schema.brand("JournalCursor"))
export type Cursor = typeof Cursor.Type

/** 1 for the bytes of lowercase hex digits. */
const hexDigit = new Uint8Array(256)
for (const c of "0123456789abcdef") hexDigit[c.charCodeAt(0)] = 1

/** A cursor's parts in order: the key's byte, and how many hex digits follow `k=` (0: one or more). */
const cursorKeys = Uint8Array.from("sibmtx", (c) => c.charCodeAt(0))
const cursorDigits = [32, 0, 32, 0, 0, 0]

/**
 * `cursorPattern.test` of the bytes `bytes[start..end)`, checked by hand in place: the decoder's hot
 * path, one per entry (with the sticky regex on the chunk's text instead, ExportDecoder took 1.23
 * µs per entry, with this 1.00). test/journal/JournalEntry.fastpath.test.ts checks both agree.
 */
const validCursorBytes = (bytes: Uint8Array, start: number, end: number): boolean => {
  let at = start
  for (let part = 0; part < cursorKeys.length; part++) {
    // ";" between parts, then "k="
    if (part > 0 && (at >= end || bytes[at++] !== 59)) return false
    if (at + 2 > end || bytes[at] !== cursorKeys[part] || bytes[at + 1] !== 61) return false
    const digitsAt = at + 2
    at = digitsAt
    while (at < end && hexDigit[bytes[at]!] === 1) at++
    const digits = at - digitsAt
    if (digits === 0 || (cursorDigits[part] !== 0 && digits !== cursorDigits[part])) return false
  }
  return at === end
}

/** A cursor is ASCII: any other character becomes bytes >= 0x80, never valid in one. */
const validCursor = (s: string): boolean => {
  const bytes = Buffer.from(s, "utf8")
  return validCursorBytes(bytes, 0, bytes.length)
}

export const isCursor = (s: string): s is Cursor => validCursor(s)

/** The position of an entry in its journal: seqnum id and seqnum (hex), from the cursor. */
export const cursorPosition = (cursor: string): { readonly seqnumId: string; readonly seqnum: string } | undefined => {
  // hot path (an id per entry): plain string search, no regex
  const s = cursor.startsWith("s=") ? 2 : cursor.indexOf(";s=") + 3
  if (s < 2) return undefined
  const semicolon = cursor.indexOf(";", s)
  if (semicolon === -1 || !cursor.startsWith("i=", semicolon + 1)) return undefined
  const end = cursor.indexOf(";", semicolon + 3)
  const seqnumId = cursor.slice(s, semicolon)
  const seqnum = cursor.slice(semicolon + 3, end === -1 ? cursor.length : end)
  return seqnumId.length > 0 && seqnum.length > 0 ? { seqnumId, seqnum } : undefined
}

/** Whether two cursors name the same entry (same seqnum id and seqnum). */
export const sameEntry = (a: string, b: string): boolean => {
  const pa = cursorPosition(a)
  const pb = cursorPosition(b)
  return pa !== undefined && pb !== undefined && pa.seqnumId === pb.seqnumId && pa.seqnum === pb.seqnum
}

/** Stable id of a journal entry (for de-duplication by the receiver): `<seqnum id>-<seqnum hex>`. */
export const entryId = (cursor: string): string => {
  // hot path (one per event): journalctl's cursors start "s=<seqnum id>;i=<seqnum>", no object
  if (cursor.charCodeAt(0) === 115 && cursor.charCodeAt(1) === 61) {
    const semicolon = cursor.indexOf(";", 2)
    if (semicolon > 2 && cursor.charCodeAt(semicolon + 1) === 105 && cursor.charCodeAt(semicolon + 2) === 61) {
      const end = cursor.indexOf(";", semicolon + 3)
      const stop = end === -1 ? cursor.length : end
      if (stop > semicolon + 3) return cursor.slice(2, semicolon) + "-" + cursor.slice(semicolon + 3, stop)
    }
  }
  const position = cursorPosition(cursor)
  return position === undefined ? cursor : `${position.seqnumId}-${position.seqnum}`
}

export interface JournalEntry {
  readonly cursor: Cursor
  /** `__REALTIME_TIMESTAMP`: epoch microseconds. */
  readonly realtime: number
  /** `_HOSTNAME` ("" when absent). */
  readonly hostname: string
  /** `MESSAGE` decoded as UTF-8 (values of a repeated MESSAGE joined with "\n"). */
  readonly message: string
  /** `SYSLOG_IDENTIFIER`, when present. */
  readonly identifier?: string
  /** Every other field journalctl printed, all values, decoded. */
  readonly fields: Readonly<Record<string, ReadonlyArray<string>>>
}

const RawValueSchema = Schema.Union([Schema.String, Schema.Uint8Array, Schema.Array(Schema.Number)])
const RawFieldSchema = Schema.NullOr(Schema.Union([RawValueSchema, Schema.Array(RawValueSchema)]))

const single = (raw: RawEntry[string] | undefined): string | undefined => {
  const values = valuesOf(raw)
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values.join("\n")
}

const known = new Set(["__CURSOR", "__REALTIME_TIMESTAMP", "_HOSTNAME", "MESSAGE", "SYSLOG_IDENTIFIER"])

/**
 * What journalctl must print for an entry to be usable: a cursor, the realtime clock, and the
 * fields the pipeline reads. (Other fields pass through `valuesOf` as they are; a Record schema
 * over every field cost ~2 µs per entry, a third of the budget at 100k entries/s.)
 */
export const JournalFields = Schema.Struct({
  __CURSOR: Cursor,
  __REALTIME_TIMESTAMP: Schema.String.check(Schema.isPattern(/^\d{1,17}$/)),
  MESSAGE: Schema.optionalKey(RawFieldSchema),
  _HOSTNAME: Schema.optionalKey(RawFieldSchema),
  SYSLOG_IDENTIFIER: Schema.optionalKey(RawFieldSchema)
})
const decodeJournalFields = Schema.decodeUnknownResult(JournalFields)

const noFields: Record<string, ReadonlyArray<string>> = Object.freeze({}) as Record<string, ReadonlyArray<string>>

const toEntry = (fields: typeof JournalFields.Type, raw: Record<string, unknown>): JournalEntry => {
  let others: Record<string, ReadonlyArray<string>> = noFields
  for (const name in raw) {
    if (known.has(name)) continue
    if (others === noFields) others = {}
    others[name] = valuesOf(raw[name] as RawEntry[string])
  }
  const identifier = single(fields.SYSLOG_IDENTIFIER)
  const cursor = fields.__CURSOR
  const realtime = Number(fields.__REALTIME_TIMESTAMP)
  const hostname = single(fields._HOSTNAME) ?? ""
  const message = single(fields.MESSAGE) ?? ""
  // one object literal per shape (no spread copy)
  return identifier === undefined
    ? { cursor, realtime, hostname, message, fields: others }
    : { cursor, realtime, hostname, message, identifier, fields: others }
}

/** `^\d{1,17}$`, by hand. */
const isRealtime = (s: string): boolean => {
  if (s.length === 0 || s.length > 17) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

/** An optional text field in its common form: absent, or one string. */
const plainText = (raw: Record<string, unknown>, name: string): boolean => {
  const value = raw[name]
  return typeof value === "string" || (value === undefined && !Object.hasOwn(raw, name))
}

/**
 * The common case, checked by hand: a plain object whose cursor and clock are valid and whose
 * MESSAGE, _HOSTNAME and SYSLOG_IDENTIFIER are absent or single strings — what `JournalFields`
 * accepts, without running Schema (~3-8 µs per entry). Anything else takes the Schema path, which
 * decides (and reports) exactly as before.
 */
const fastPath = (raw: unknown): raw is typeof JournalFields.Type & Record<string, unknown> => {
  if (typeof raw !== "object" || raw === null) return false
  if (Object.getPrototypeOf(raw) !== Object.prototype) return false
  const record = raw as Record<string, unknown>
  const cursor = record.__CURSOR
  const realtime = record.__REALTIME_TIMESTAMP
  return typeof cursor === "string" && typeof realtime === "string" && isCursor(cursor) && isRealtime(realtime) &&
    plainText(record, "MESSAGE") && plainText(record, "_HOSTNAME") && plainText(record, "SYSLOG_IDENTIFIER")
}

/** Decodes journalctl's fields (export or json form) into a `JournalEntry`. */
export const decodeJournalEntry = (raw: unknown): Result.Result<JournalEntry, Schema.SchemaError> =>
  fastPath(raw)
    ? Result.succeed(toEntry(raw, raw))
    : Result.map(decodeJournalFields(raw), (fields) => toEntry(fields, raw as Record<string, unknown>))

/** Field names as constants: property stores with internalized keys stay on V8's fast path. */
const commonNames = [
  "__CURSOR",
  "__REALTIME_TIMESTAMP",
  "__MONOTONIC_TIMESTAMP",
  "_BOOT_ID",
  "_HOSTNAME",
  "MESSAGE",
  "SYSLOG_IDENTIFIER",
  "_TRANSPORT",
  "PRIORITY"
]
const namesByLength = new Map<number, Array<string>>()
for (const name of commonNames) namesByLength.set(name.length, [...(namesByLength.get(name.length) ?? []), name])

const nameAt = (text: string, start: number, end: number): string => {
  const candidates = namesByLength.get(end - start)
  if (candidates !== undefined) for (const name of candidates) if (text.startsWith(name, start)) return name
  return text.slice(start, end)
}

/** Fields `-o export` always prints that JournalSource does not use unless asked for. */
export const alwaysPrinted = ["__MONOTONIC_TIMESTAMP", "_BOOT_ID"] as const

type MutableRawEntry = Record<string, RawValue | Array<RawValue>>

const addValue = (raw: MutableRawEntry, name: string, value: RawValue): void => {
  const existing = raw[name]
  if (existing === undefined) raw[name] = value
  else if (Array.isArray(existing)) (existing as Array<RawValue>).push(value)
  else raw[name] = [existing as RawValue, value]
}

const hasFields = (raw: MutableRawEntry): boolean => {
  for (const _ in raw) return true
  return false
}

/**
 * `buf.toString("latin1", start, end)` without toString's argument and encoding checks (which
 * cost more than the copy itself at one call per entry): Buffer's own latin1Slice, present in
 * every Node version but not typed; toString where it is missing. Offsets must be in range.
 */
type Latin1Slicing = { latin1Slice?: (start: number, end: number) => string }
const latin1Slice: (buf: Buffer, start: number, end: number) => string =
  typeof (Buffer.prototype as Latin1Slicing).latin1Slice === "function"
    ? (buf, start, end) => (buf as Latin1Slicing).latin1Slice!(start, end)
    : (buf, start, end) => buf.toString("latin1", start, end)

/** `readEntry`/`fastEntry`: the input ends before the entry does (more bytes are needed). */
const incomplete = -1
/** `fastEntry`: the entry is not in the common form; read it with `readEntry`. */
const notCommon = -2

/**
 * Reads one entry of `-o export` output, in any form, from `pos` into `raw`: every field not in
 * `skip`, text (`NAME=value\n`) or binary (`NAME\n<u64 le length><bytes>\n`), every value of a
 * repeated field. `text` is `buf` as latin1 (one char per byte: string offsets are byte offsets);
 * `ascii`: the bytes are all ASCII. Returns where the next entry starts (after the blank line that
 * ends this one), or `incomplete`.
 */
const readEntry = (
  buf: Buffer,
  text: string,
  ascii: boolean,
  start: number,
  skip: ReadonlySet<string>,
  raw: MutableRawEntry
): number => {
  const length = buf.length
  let pos = start
  while (pos < length) {
    const nl = text.indexOf("\n", pos)
    if (nl === -1) return incomplete
    if (nl === pos) return pos + 1 // blank line: end of entry
    const eq = text.indexOf("=", pos)
    if (eq !== -1 && eq < nl) {
      const name = nameAt(text, pos, eq)
      // a copy from the bytes, not `text.slice`: a slice of 13+ chars is a V8 sliced string that
      // keeps the whole chunk's text alive for as long as the entry lives
      if (!skip.has(name)) addValue(raw, name, ascii ? buf.toString("latin1", eq + 1, nl) : buf.toString("utf8", eq + 1, nl))
      pos = nl + 1
      continue
    }
    // binary field: NAME\n <u64 le length> <bytes> \n
    if (nl + 9 > length) return incomplete
    const size = Number(buf.readBigUInt64LE(nl + 1))
    const end = nl + 9 + size
    if (end + 1 > length) return incomplete
    const name = nameAt(text, pos, nl)
    if (!skip.has(name)) addValue(raw, name, Uint8Array.prototype.slice.call(buf, nl + 9, end))
    pos = end + 1 // the newline after the bytes
  }
  return incomplete
}

/**
 * Joins each stdout chunk to the bytes held back from the previous one (the start of an entry cut
 * by the chunk boundary), in one reused buffer: no allocation per chunk, and nothing keeps a chunk
 * alive once it has been read.
 */
class ChunkJoiner {
  private work: Buffer = Buffer.allocUnsafeSlow(0)
  private held = 0
  private joined = false

  /** The held bytes followed by `chunk`, contiguous. Valid until the next `hold`. */
  join(chunk: Uint8Array): Buffer {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.joined = this.held > 0
    if (!this.joined) return bytes
    const length = this.held + bytes.length
    this.reserve(length, this.held)
    bytes.copy(this.work, this.held)
    return this.work.subarray(0, length)
  }

  /** Holds back `buf[from..]` (what `join` returned) for the next chunk. */
  hold(buf: Buffer, from: number): void {
    const rest = buf.length - from
    if (rest === 0) {
      this.held = 0
      // after a huge entry, don't keep its buffer
      if (this.work.length > 4 << 20) this.work = Buffer.allocUnsafeSlow(0)
      return
    }
    if (this.joined) {
      this.work.copyWithin(0, from, buf.length)
    } else {
      this.reserve(rest, 0)
      buf.copy(this.work, 0, from)
    }
    this.held = rest
  }

  /** Bytes held back waiting for the rest of an entry. */
  get buffered(): number {
    return this.held
  }

  private reserve(length: number, keep: number): void {
    if (length <= this.work.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(length, 2 * this.work.length, 1 << 16))
    this.work.copy(grown, 0, 0, keep)
    this.work = grown
  }
}

/**
 * Incremental parser of `journalctl -o export` output: feed stdout chunks, get whole entries in
 * their general form (`RawEntry`: every field, text or bytes, repeated or not).
 * The chunk is read as latin1 once (one char per byte, so string offsets are byte offsets) and
 * split with string search — ~10x faster than decoding field by field; values with bytes >= 0x80
 * are decoded from the bytes as UTF-8. `ExportDecoder` is the client's faster way to `JournalEntry`.
 */
export class ExportParser {
  private readonly skip: ReadonlySet<string>
  private readonly joiner = new ChunkJoiner()
  /** `skip`: field names to leave out of the entries (e.g. `alwaysPrinted`). */
  constructor(skip: Iterable<string> = []) {
    this.skip = new Set(skip)
  }

  /** Parses as much of `chunk` (plus what was held back) as forms whole entries. */
  push(chunk: Uint8Array): Array<RawEntry> {
    const out: Array<RawEntry> = []
    const buf = this.joiner.join(chunk)
    const text = latin1Slice(buf, 0, buf.length)
    const ascii = isAscii(buf)
    let pos = 0
    while (pos < buf.length) {
      const raw: MutableRawEntry = {}
      const next = readEntry(buf, text, ascii, pos, this.skip, raw)
      if (next === incomplete) break
      if (hasFields(raw)) out.push(raw)
      pos = next
    }
    this.joiner.hold(buf, pos)
    return out
  }

  /** Bytes held back waiting for the rest of an entry. */
  get buffered(): number {
    return this.joiner.buffered
  }
}

/** What `fastEntry` does with a field, by name. */
const Field = { Other: 0, Skip: 1, Cursor: 2, Realtime: 3, Hostname: 4, Message: 5, Identifier: 6 } as const
type Field = (typeof Field)[keyof typeof Field]

/** Whether `buf` holds the ASCII `name` at `at` (typed array loads: faster than charCodeAt or startsWith). */
const nameIs = (buf: Uint8Array, at: number, name: Uint8Array): boolean => {
  for (let i = name.length - 1; i >= 0; i--) if (buf[at + i] !== name[i]) return false
  return true
}
const nameBytes = (name: string): Uint8Array => Uint8Array.from(name, (c) => c.charCodeAt(0))
const MESSAGE = nameBytes("MESSAGE")
const CURSOR = nameBytes("__CURSOR")
const BOOT_ID = nameBytes("_BOOT_ID")
const HOSTNAME = nameBytes("_HOSTNAME")
const SYSLOG_IDENTIFIER = nameBytes("SYSLOG_IDENTIFIER")
const REALTIME_TIMESTAMP = nameBytes("__REALTIME_TIMESTAMP")
const MONOTONIC_TIMESTAMP = nameBytes("__MONOTONIC_TIMESTAMP")

/** `Number(text.slice(start, end))` for 1 to 17 decimal digits (checked; `buf` holds the same bytes), or -1. */
const realtimeAt = (buf: Uint8Array, text: string, start: number, end: number): number => {
  const length = end - start
  if (length < 1 || length > 17) return -1
  let value = 0
  for (let i = start; i < end; i++) {
    const c = buf[i]! - 48
    if (c < 0 || c > 9) return -1
    value = value * 10 + c
  }
  // up to 15 digits the sum is exact; beyond, round as Number() does
  return length <= 15 ? value : Number(text.slice(start, end))
}

const knownNames: ReadonlyArray<string> = ["__CURSOR", "__REALTIME_TIMESTAMP", "_HOSTNAME", "MESSAGE", "SYSLOG_IDENTIFIER"]

/**
 * Decodes `journalctl -o export` output straight into `JournalEntry` values: what `ExportParser`
 * then `decodeJournalEntry` give, without the intermediate `RawEntry` and with fewer strings.
 *
 * An entry in the common form — text fields only, none repeated, a valid cursor and clock — is read
 * in place: field offsets found with string search on the chunk's latin1 text, then one copy of the
 * entry's text (when ASCII) of which cursor, message, host and identifier are slices (they keep
 * that entry's text alive, never the chunk's). Any other entry (binary or repeated fields, a bad
 * cursor...) is read by `readEntry` and decoded by `decodeJournalEntry`, as `ExportParser` does:
 * test/journal/ExportDecoder.test.ts checks both ways agree, at every chunk split.
 */
export class ExportDecoder {
  private readonly skip: ReadonlySet<string>
  private readonly skipMonotonic: boolean
  private readonly skipBootId: boolean
  /** The common-form reading assumes the entry's own fields are not skipped. */
  private readonly fast: boolean
  private readonly joiner = new ChunkJoiner()
  /** Why entries could not be decoded (appended by `push`; the caller empties it). */
  readonly failures: Array<Schema.SchemaError> = []

  /** `skip`: field names to leave out of `fields` (e.g. `alwaysPrinted`). */
  constructor(skip: Iterable<string> = []) {
    this.skip = new Set(skip)
    this.skipMonotonic = this.skip.has("__MONOTONIC_TIMESTAMP")
    this.skipBootId = this.skip.has("_BOOT_ID")
    this.fast = !knownNames.some((name) => this.skip.has(name))
  }

  /** Decodes as much of `chunk` (plus what was held back) as forms whole entries, appended to `out`. */
  push(chunk: Uint8Array, out: Array<JournalEntry> = []): Array<JournalEntry> {
    const buf = this.joiner.join(chunk)
    const length = buf.length
    const text = latin1Slice(buf, 0, buf.length)
    const ascii = isAscii(buf)
    let pos = 0
    while (pos < length) {
      let next = this.fast ? this.fastEntry(buf, text, ascii, pos, out) : notCommon
      if (next === notCommon) next = this.generalEntry(buf, text, ascii, pos, out)
      if (next === incomplete) break
      pos = next
    }
    this.joiner.hold(buf, pos)
    return out
  }

  /** Bytes held back waiting for the rest of an entry. */
  get buffered(): number {
    return this.joiner.buffered
  }

  private generalEntry(buf: Buffer, text: string, ascii: boolean, start: number, out: Array<JournalEntry>): number {
    const raw: MutableRawEntry = {}
    const next = readEntry(buf, text, ascii, start, this.skip, raw)
    if (next !== incomplete && hasFields(raw)) {
      const decoded = decodeJournalEntry(raw)
      if (decoded._tag === "Success") out.push(decoded.success)
      else this.failures.push(decoded.failure)
    }
    return next
  }

  private fieldOf(buf: Uint8Array, start: number, end: number): Field {
    // by length, then the exact name
    switch (end - start) {
      case 7:
        return nameIs(buf, start, MESSAGE) ? Field.Message : Field.Other
      case 8:
        return nameIs(buf, start, CURSOR)
          ? Field.Cursor
          : this.skipBootId && nameIs(buf, start, BOOT_ID)
          ? Field.Skip
          : Field.Other
      case 9:
        return nameIs(buf, start, HOSTNAME) ? Field.Hostname : Field.Other
      case 17:
        return nameIs(buf, start, SYSLOG_IDENTIFIER) ? Field.Identifier : Field.Other
      case 20:
        return nameIs(buf, start, REALTIME_TIMESTAMP) ? Field.Realtime : Field.Other
      case 21:
        return this.skipMonotonic && nameIs(buf, start, MONOTONIC_TIMESTAMP) ? Field.Skip : Field.Other
      default:
        return Field.Other
    }
  }

  /** Reads a common-form entry at `start` into `out`: where the next one starts, `incomplete` or `notCommon`. */
  private fastEntry(buf: Buffer, text: string, ascii: boolean, start: number, out: Array<JournalEntry>): number {
    // value offsets (start, end) of the fields the entry is made of; -1: absent
    let cursorAt = -1
    let cursorEnd = 0
    let realtimeFrom = -1
    let realtimeEnd = 0
    let hostAt = -1
    let hostEnd = 0
    let messageAt = -1
    let messageEnd = 0
    let identifierAt = -1
    let identifierEnd = 0
    let others: Record<string, ReadonlyArray<string>> | undefined
    let count = 0
    let pos = start
    let nl = text.indexOf("\n", pos)
    for (; nl !== pos; nl = text.indexOf("\n", pos)) {
      if (nl === -1) return incomplete
      const eq = text.indexOf("=", pos)
      if (eq === -1 || eq > nl) return notCommon // a binary field
      switch (this.fieldOf(buf, pos, eq)) {
        case Field.Cursor:
          if (cursorAt !== -1) return notCommon
          cursorAt = eq + 1
          cursorEnd = nl
          break
        case Field.Realtime:
          if (realtimeFrom !== -1) return notCommon
          realtimeFrom = eq + 1
          realtimeEnd = nl
          break
        case Field.Hostname:
          if (hostAt !== -1) return notCommon
          hostAt = eq + 1
          hostEnd = nl
          break
        case Field.Message:
          if (messageAt !== -1) return notCommon
          messageAt = eq + 1
          messageEnd = nl
          break
        case Field.Identifier:
          if (identifierAt !== -1) return notCommon
          identifierAt = eq + 1
          identifierEnd = nl
          break
        case Field.Skip:
          count--
          break
        case Field.Other: {
          const name = nameAt(text, pos, eq)
          if (this.skip.has(name)) {
            count--
            break
          }
          others ??= {}
          if (Object.hasOwn(others, name)) return notCommon
          others[name] = [ascii ? buf.toString("latin1", eq + 1, nl) : buf.toString("utf8", eq + 1, nl)]
          break
        }
      }
      count++
      pos = nl + 1
    }
    // the blank line that ends the entry
    const next = nl + 1
    if (count === 0) return next // nothing but skipped fields (or a stray blank line): no entry
    if (cursorAt === -1 || realtimeFrom === -1 || !validCursorBytes(buf, cursorAt, cursorEnd)) return notCommon
    const realtime = realtimeAt(buf, text, realtimeFrom, realtimeEnd)
    if (realtime === -1) return notCommon
    let cursor: string
    let hostname = ""
    let message = ""
    let identifier: string | undefined
    if (ascii) {
      // one copy of the entry's text; the values are slices of it
      const entry = latin1Slice(buf, start, nl)
      cursor = entry.slice(cursorAt - start, cursorEnd - start)
      if (hostAt !== -1) hostname = entry.slice(hostAt - start, hostEnd - start)
      if (messageAt !== -1) message = entry.slice(messageAt - start, messageEnd - start)
      if (identifierAt !== -1) identifier = entry.slice(identifierAt - start, identifierEnd - start)
    } else {
      cursor = latin1Slice(buf, cursorAt, cursorEnd) // valid: ASCII
      if (hostAt !== -1) hostname = buf.toString("utf8", hostAt, hostEnd)
      if (messageAt !== -1) message = buf.toString("utf8", messageAt, messageEnd)
      if (identifierAt !== -1) identifier = buf.toString("utf8", identifierAt, identifierEnd)
    }
    const fields = others ?? noFields
    // the same shapes as toEntry
    out.push(
      identifier === undefined
        ? { cursor: cursor as Cursor, realtime, hostname, message, fields }
        : { cursor: cursor as Cursor, realtime, hostname, message, identifier, fields }
    )
    return next
  }
}
