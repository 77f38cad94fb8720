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

/** Length of the run of lowercase hex digits in `s` from `at`. */
const hexRun = (s: string, at: number): number => {
  let i = at
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) break
  }
  return i - at
}

/** The cursor's keys in order, and the exact length of their hex value (0: one or more digits). */
const cursorParts: ReadonlyArray<readonly [string, number]> = [["s=", 32], [";i=", 0], [";b=", 32], [";m=", 0], [";t=", 0], [";x=", 0]]

/**
 * `cursorPattern.test(s)`, checked by hand (hot path: one per entry; the regex was ~2% of the
 * client's CPU). test/journal/JournalEntry.fastpath.test.ts checks both agree.
 */
const validCursor = (s: string): boolean => {
  let at = 0
  for (const [key, exact] of cursorParts) {
    if (!s.startsWith(key, at)) return false
    at += key.length
    const run = hexRun(s, at)
    if (exact === 0 ? run === 0 : run !== exact) return false
    at += run
  }
  return at === s.length
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

/**
 * Incremental parser of `journalctl -o export` output: feed stdout chunks, get whole entries.
 * Splits the byte chunks itself (no readline, no string concatenation of partial lines).
 */
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

export class ExportParser {
  private readonly skip: ReadonlySet<string>
  /** `skip`: field names to leave out of the entries (e.g. `alwaysPrinted`). */
  constructor(skip: Iterable<string> = []) {
    this.skip = new Set(skip)
  }
  private pending: Buffer | undefined = undefined
  private current: Record<string, RawValue | Array<RawValue>> = {}
  private fieldCount = 0

  /**
   * Parses as much of `chunk` (plus what was left over) as forms whole fields and entries.
   * The chunk is read as latin1 once (one char per byte, so string offsets are byte offsets) and
   * split with string search — ~10x faster than decoding field by field; values with bytes >= 0x80
   * are then decoded from the bytes as UTF-8.
   */
  push(chunk: Uint8Array): Array<RawEntry> {
    const out: Array<RawEntry> = []
    let buf: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, buf])
      this.pending = undefined
    }
    const length = buf.length
    const text = buf.toString("latin1")
    const ascii = isAscii(buf)
    let pos = 0
    while (pos < length) {
      const nl = text.indexOf("\n", pos)
      if (nl === -1) break
      if (nl === pos) {
        // blank line: end of entry
        if (this.fieldCount > 0) out.push(this.current)
        this.current = {}
        this.fieldCount = 0
        pos = nl + 1
        continue
      }
      const eq = text.indexOf("=", pos)
      if (eq !== -1 && eq < nl) {
        const name = nameAt(text, pos, eq)
        // a copy from the bytes, not `text.slice`: a slice of 13+ chars is a V8 sliced string that
        // keeps the whole chunk's text alive for as long as the entry lives (batches in flight,
        // retries), and gets it promoted to the old generation with it
        if (!this.skip.has(name)) this.add(name, ascii ? buf.toString("latin1", eq + 1, nl) : buf.toString("utf8", eq + 1, nl))
        pos = nl + 1
        continue
      }
      // binary field: NAME\n <u64 le length> <bytes> \n
      if (nl + 9 > length) break
      const size = Number(buf.readBigUInt64LE(nl + 1))
      const end = nl + 9 + size
      if (end + 1 > length) break
      const name = nameAt(text, pos, nl)
      if (!this.skip.has(name)) this.add(name, Uint8Array.prototype.slice.call(buf, nl + 9, end))
      pos = end + 1 // the newline after the bytes
    }
    if (pos < length) this.pending = Buffer.from(buf.subarray(pos)) // copy: don't pin the whole chunk
    return out
  }

  /** Bytes held back waiting for the rest of a field. */
  get buffered(): number {
    return this.pending?.length ?? 0
  }

  private add(name: string, value: RawValue): void {
    const existing = this.current[name]
    if (existing === undefined) {
      this.current[name] = value
      this.fieldCount++
    } else if (Array.isArray(existing)) {
      ;(existing as Array<RawValue>).push(value)
    } else {
      this.current[name] = [existing as RawValue, value]
    }
  }
}
