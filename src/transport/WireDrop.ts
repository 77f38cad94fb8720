/**
 * Decoding and validating what arrives on the wire, before anything is trusted.
 *
 * Requests reach the server as raw bytes (the gRPC handlers use an identity deserializer), so a
 * malformed frame is our INVALID_ARGUMENT with a reason instead of grpc-js's INTERNAL. The decoder
 * checks while it reads: strings strictly UTF-8 (as proto3 requires; the generated code would
 * silently substitute U+FFFD), a Drop needs a timestamp and at least one field (the upstream Go
 * server dereferences both and panics without them), and every count and size is bounded, so a
 * hostile message (100k fields, a huge string) is refused before it is built.
 *
 * Why not the generated `Drop.decode` plus `Schema` validation: measured at ~4.6 µs + ~8 µs per
 * event, more than the server's whole CPU budget per event (10 µs). This reader costs ~1-2 µs.
 * `WireDropSchema` states the same contract as a Schema; the tests check the two agree.
 */
import { Result, Schema } from "effect"
import { hashIdBytes } from "./DedupWindow.ts"

export interface WireLimits {
  /** Events in one PushBatch. */
  readonly maxBatchEvents: number
  /** Entries in one Drop's `fields`. */
  readonly maxFields: number
  /** Characters of one field key or value. */
  readonly maxFieldLength: number
  /** Characters of `message`. */
  readonly maxMessageLength: number
  /** Characters of `event_id` and of `host`. */
  readonly maxIdLength: number
}

export const defaultWireLimits: WireLimits = {
  maxBatchEvents: 10_000,
  maxFields: 256,
  maxFieldLength: 4096,
  maxMessageLength: 16_384,
  maxIdLength: 512
}

/** Why a request was refused; `reason` goes back to the client in the status details. */
export interface Rejection {
  readonly kind: "malformed" | "missing_timestamp" | "missing_fields" | "too_large" | "too_many_fields" | "batch_too_large"
  readonly reason: string
}

/** One checked Drop as the server uses it. */
export interface WireDrop {
  readonly timestamp: { readonly seconds: number; readonly nanos: number }
  readonly fields: Readonly<Record<string, string>>
  readonly eventId: string
  /**
   * `hashId(eventId)` when the decoder computed it from the id's bytes (ASCII ids), for the
   * de-duplication window; else undefined (the window hashes the string).
   */
  readonly idHash?: number | undefined
  readonly host: string
  readonly message: string
}

class Malformed extends Error {}
class Refused extends Error {
  readonly kind: Rejection["kind"]
  constructor(kind: Rejection["kind"], reason: string) {
    super(reason)
    this.kind = kind
  }
}

/** Up to this many bytes, a string is checked for ASCII by a loop (cheaper than the native call). */
const shortString = 32

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Node's Buffer has these (undocumented, stable since Node 0.x) slicers; toString() is slower. */
interface SlicingBuffer extends Buffer {
  latin1Slice(start: number, end: number): string
  utf8Slice(start: number, end: number): string
}

/** What a string is, for a refusal's message (built only then). */
const KEY = 0
const VALUE = 1
const EVENT_ID = 2
const HOST = 3
const MESSAGE = 4
type StringKind = typeof KEY | typeof VALUE | typeof EVENT_ID | typeof HOST | typeof MESSAGE

/**
 * Field keys repeat from event to event in the same order (IN, OUT, MAC, SRC, ...), and so do
 * many values (IN=vrf09, PROTO=TCP, TOS=0x00, ...): remember the last short ASCII key and value
 * seen at each map position and reuse the string when the bytes match. Saves a string
 * allocation and a native call per hit, and the reused keys make the property stores hit V8's
 * hidden-class cache. Slot 2i is the key at position i, 2i+1 its value.
 */
const cachedPositions = 64
const maxCachedBytes = 48
/** The bytes of slot i at `cachedBytes[i * maxCachedBytes]`, `cachedLength[i]` of them (-1: empty). */
/** One more slot, after the map's: the Drop's host (the same for all events of a client). */
const hostSlot = cachedPositions * 2
const cachedBytes = new Uint8Array((hostSlot + 1) * maxCachedBytes)
const cachedLength = new Int32Array(hostSlot + 1).fill(-1)
const cachedText: Array<string> = new Array(hostSlot + 1).fill("")

/**
 * Whole map entries (length, key and value with their tags) by position, as last seen there: most
 * entries of a Drop are byte for byte those of the Drop before (IN=vrf09, PROTO=TCP, ...), and
 * one comparison of the entry's bytes then stands for parsing it. The strings are what parsing
 * those bytes gave (so valid); the limits are checked on every use.
 */
const maxCachedEntryBytes = 112
const cachedEntryBytes = new Uint8Array(cachedPositions * maxCachedEntryBytes)
const cachedEntryLength = new Int32Array(cachedPositions).fill(-1)
const cachedEntryKey: Array<string> = new Array(cachedPositions).fill("")
const cachedEntryValue: Array<string> = new Array(cachedPositions).fill("")

/** Whether `buf[start..end)` is the entry remembered at position `i`. */
const sameEntry = (buf: Buffer, i: number, start: number, end: number): boolean => {
  const n = end - start
  if (cachedEntryLength[i] !== n) return false
  const at = i * maxCachedEntryBytes
  for (let j = 0; j < n; j++) if (buf[start + j] !== cachedEntryBytes[at + j]) return false
  return true
}

const rememberEntry = (buf: Buffer, i: number, start: number, end: number, key: string, value: string): void => {
  const n = end - start
  if (n > maxCachedEntryBytes) return
  const at = i * maxCachedEntryBytes
  for (let j = 0; j < n; j++) cachedEntryBytes[at + j] = buf[start + j]!
  cachedEntryLength[i] = n
  cachedEntryKey[i] = key
  cachedEntryValue[i] = value
}

/**
 * A reader over one request's bytes that enforces the limits while it decodes, so a hostile
 * message (100k fields, a huge string) is refused without building it first.
 */
class Reader {
  readonly buf: SlicingBuffer
  pos: number
  /** The Drop being read, for messages: its index in the batch, -1 for a single Push. */
  drop = -1
  /** The map key just read, for a value's message. */
  key = ""
  constructor(buf: Buffer) {
    this.buf = buf as SlicingBuffer
    this.pos = 0
  }
  varint32(): number {
    const buf = this.buf
    let pos = this.pos
    // one byte: tags and short lengths, the common case
    if (pos < buf.length && buf[pos]! < 0x80) {
      this.pos = pos + 1
      return buf[pos]!
    }
    let result = 0
    let shift = 0
    for (;;) {
      if (pos >= buf.length) throw new Malformed("truncated varint")
      const byte = buf[pos++]!
      if (shift < 28) result |= (byte & 0x7f) << shift
      else if (shift === 28) result += (byte & 0x0f) * 2 ** 28 // keep the low 32 bits
      if ((byte & 0x80) === 0) {
        this.pos = pos
        return result >>> 0
      }
      shift += 7
      if (shift > 63) throw new Malformed("varint too long")
    }
  }
  /** int64 as a JS number (exact within ±2^53, which covers every valid Timestamp). */
  int64(): number {
    const buf = this.buf
    let lo = 0
    let hi = 0
    let shift = 0
    for (;;) {
      if (this.pos >= buf.length) throw new Malformed("truncated varint")
      const byte = buf[this.pos++]!
      if (shift < 28) lo |= (byte & 0x7f) << shift
      else if (shift === 28) {
        lo |= (byte & 0x0f) << 28
        hi |= (byte & 0x7f) >> 4
      } else hi |= (byte & 0x7f) << (shift - 32)
      if ((byte & 0x80) === 0) break
      shift += 7
      if (shift > 63) throw new Malformed("varint too long")
    }
    return (hi | 0) * 4294967296 + (lo >>> 0)
  }
  end(length: number): number {
    const end = this.pos + length
    if (end > this.buf.length) throw new Malformed("length beyond the end of the message")
    return end
  }
  describe(kind: StringKind): string {
    const where = this.drop < 0 ? "drop" : `drops[${this.drop}]`
    switch (kind) {
      case KEY:
        return `${where}.fields key`
      case VALUE:
        return `${where}.fields[${JSON.stringify(this.key)}]`
      case EVENT_ID:
        return `${where}.event_id`
      case HOST:
        return `${where}.host`
      case MESSAGE:
        return `${where}.message`
    }
  }
  tooLong(kind: StringKind, max: number): Refused {
    return new Refused("too_large", `${this.describe(kind)} is longer than ${max} characters`)
  }
  /** A length-delimited string: strictly UTF-8, at most `max` characters. */
  string(max: number, kind: StringKind): string {
    const length = this.varint32()
    const start = this.pos
    const end = this.end(length)
    if (length === 0) return ""
    // UTF-16 length <= UTF-8 byte length: more than 3 bytes per character is too long for sure
    if (length > max * 3) throw this.tooLong(kind, max)
    this.pos = end
    const buf = this.buf
    if (length <= shortString) {
      let i = start
      while (i < end && buf[i]! < 0x80) i++
      if (i === end) {
        // ASCII: valid UTF-8, one character per byte
        if (length > max) throw this.tooLong(kind, max)
        return buf.latin1Slice(start, end)
      }
    }
    // (a long string, e.g. the message: the native decoder checks faster than a loop here; for
    // ASCII the result is one-byte, where the U+FFFD search below costs nothing)
    const text = buf.utf8Slice(start, end)
    if (text.length > max) throw this.tooLong(kind, max)
    // utf8Slice substitutes U+FFFD for bad bytes; only then pay for the strict check.
    if (text.includes("\uFFFD")) {
      try {
        strictDecoder.decode(buf.subarray(start, end))
      } catch {
        throw new Refused("malformed", `${this.describe(kind)} is not valid UTF-8`)
      }
    }
    return text
  }
  /** `hashId` of the id just read by `eventId`, when it was ASCII. */
  idHash: number | undefined = undefined
  /** The event id: as `string`, and for an ASCII id (our clients') also its hash, from the bytes. */
  eventId(max: number): string {
    const buf = this.buf
    const at = this.pos
    const length = this.varint32()
    const start = this.pos
    const end = this.end(length)
    if (length > 0 && length <= max) {
      let i = start
      while (i < end && buf[i]! < 0x80) i++
      if (i === end) {
        this.pos = end
        this.idHash = hashIdBytes(buf, start, end)
        return buf.latin1Slice(start, end)
      }
    }
    this.pos = at
    this.idHash = undefined
    return this.string(max, EVENT_ID)
  }
  /**
   * A map key or value or the host (`slot`: see `cachedBytes`; -1: none), from the cache when the
   * bytes are the same as last time.
   */
  cached(slot: number, max: number, kind: StringKind): string {
    if (slot < 0) return this.string(max, kind)
    const buf = this.buf
    const start = this.pos
    const length = this.varint32()
    const bodyStart = this.pos
    const bodyEnd = bodyStart + length
    const at = slot * maxCachedBytes
    if (cachedLength[slot] === length && bodyEnd <= buf.length && length <= max) {
      let i = 0
      while (i < length && buf[bodyStart + i] === cachedBytes[at + i]) i++
      if (i === length) {
        this.pos = bodyEnd
        return cachedText[slot]!
      }
    }
    this.pos = start
    const text = this.string(max, kind)
    if (length <= maxCachedBytes && length > 0 && text.length === length) {
      // (ASCII only: then the limit check above, length <= max, is the character count)
      for (let i = 0; i < length; i++) cachedBytes[at + i] = buf[bodyStart + i]!
      cachedLength[slot] = length
      cachedText[slot] = text
    }
    return text
  }
  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.int64()
        return
      case 1:
        this.pos = this.end(8)
        return
      case 2:
        this.pos = this.end(this.varint32())
        return
      case 5:
        this.pos = this.end(4)
        return
      default:
        throw new Malformed(`unsupported wire type ${wireType}`)
    }
  }
}

const decodeTimestamp = (r: Reader, end: number): { seconds: number; nanos: number } => {
  let seconds = 0
  let nanos = 0
  while (r.pos < end) {
    const tag = r.varint32()
    if (tag === 8) seconds = r.int64()
    else if (tag === 16) nanos = r.int64()
    else r.skip(tag & 7)
  }
  if (r.pos !== end) throw new Malformed("timestamp overruns its length")
  return { seconds, nanos }
}

const setField = (fields: Record<string, string>, key: string, value: string): void => {
  if (key === "__proto__") Object.defineProperty(fields, key, { value, enumerable: true, writable: true, configurable: true })
  else fields[key] = value
}

/** The map entries of the Drop being decoded (reused from Drop to Drop: the object is built at the end). */
const entryKeys: Array<string> = []
const entryValues: Array<string> = []

/**
 * Building an object of ~20 properties one store at a time costs ~0.5 µs (a hidden-class
 * transition and a growing property array per key); copying one of the same shape costs a
 * tenth of that. So the last map seen with each number of entries is kept as a template (a
 * private copy, never handed out): a Drop with the same keys in the same order gets a copy of it
 * with the values that differ stored over. Only maps without duplicate keys and `__proto__` (so
 * that one store per key gives the same object as the stores in order), and only short strings
 * (templates pin at most 65 × 64 entries of 64 characters).
 */
interface FieldsTemplate {
  readonly keys: ReadonlyArray<string>
  readonly values: ReadonlyArray<string>
  readonly fields: Readonly<Record<string, string>>
}
const maxTemplateEntries = 64
const maxTemplateString = 64
const templates: Array<FieldsTemplate | undefined> = new Array(maxTemplateEntries + 1).fill(undefined)

/**
 * The map of a Drop that carries only `ACTION=drop` or `ACTION=accept` (what our client sends in a
 * PushBatch when the server can rebuild the map from the message): one shared, frozen object each,
 * instead of a copy per Drop. Whoever puts a Drop's map into an event copies these first
 * (`ownFields`).
 */
const dropOnly: Readonly<Record<string, string>> = Object.freeze({ ACTION: "drop" })
const acceptOnly: Readonly<Record<string, string>> = Object.freeze({ ACTION: "accept" })

/** Whether `fields` is one of the decoder's shared ACTION-only maps. */
export const isSharedActionMap = (fields: Readonly<Record<string, string>>): boolean =>
  fields === dropOnly || fields === acceptOnly

/** `fields`, or a copy of it if it is a shared ACTION-only map (to be given to an event). */
export const ownFields = (fields: Readonly<Record<string, string>>): Record<string, string> =>
  isSharedActionMap(fields) ? { ...fields } : fields

/** The map of the `count` entries in `entryKeys`/`entryValues`, as `setField` in their order would build it. */
const fieldsOf = (count: number): Record<string, string> => {
  if (count === 1 && entryKeys[0] === "ACTION") {
    const value = entryValues[0]
    if (value === "drop") return dropOnly
    if (value === "accept") return acceptOnly
  }
  const template = count <= maxTemplateEntries ? templates[count] : undefined
  if (template !== undefined) {
    const keys = template.keys
    let i = 0
    while (i < count && entryKeys[i] === keys[i]) i++
    if (i === count) {
      const fields = { ...template.fields }
      const values = template.values
      for (let j = 0; j < count; j++) {
        const value = entryValues[j]!
        if (value !== values[j]) fields[entryKeys[j]!] = value
      }
      return fields
    }
  }
  const fields: Record<string, string> = {}
  let templatable = count <= maxTemplateEntries
  for (let j = 0; j < count; j++) {
    const key = entryKeys[j]!
    const value = entryValues[j]!
    setField(fields, key, value)
    if (key === "__proto__" || key.length > maxTemplateString || value.length > maxTemplateString) templatable = false
  }
  // (fewer own keys than entries: a key repeated)
  if (templatable && Object.keys(fields).length === count) {
    templates[count] = { keys: entryKeys.slice(0, count), values: entryValues.slice(0, count), fields: { ...fields } }
  }
  return fields
}

const where = (r: Reader): string => (r.drop < 0 ? "drop" : `drops[${r.drop}]`)

const decodeDrop = (r: Reader, end: number, limits: WireLimits): WireDrop => {
  let timestamp: { seconds: number; nanos: number } | undefined
  let count = 0
  let eventId = ""
  let idHash: number | undefined = undefined
  let host = ""
  let message = ""
  while (r.pos < end) {
    const tag = r.varint32()
    switch (tag) {
      case 10: {
        const length = r.varint32()
        timestamp = decodeTimestamp(r, r.end(length))
        break
      }
      case 18: {
        const entryStart = r.pos
        const entryEnd = r.end(r.varint32())
        let key = ""
        let value = ""
        if (
          count < cachedPositions && sameEntry(r.buf, count, entryStart, entryEnd) &&
          cachedEntryKey[count]!.length <= limits.maxFieldLength && cachedEntryValue[count]!.length <= limits.maxFieldLength
        ) {
          key = cachedEntryKey[count]!
          value = cachedEntryValue[count]!
          r.pos = entryEnd
        } else {
          const slot = count < cachedPositions ? count * 2 : -1
          while (r.pos < entryEnd) {
            const entryTag = r.varint32()
            if (entryTag === 10) {
              key = r.cached(slot, limits.maxFieldLength, KEY)
              r.key = key
            } else if (entryTag === 18) {
              value = r.cached(slot < 0 ? -1 : slot + 1, limits.maxFieldLength, VALUE)
            } else r.skip(entryTag & 7)
          }
          if (r.pos !== entryEnd) throw new Malformed("map entry overruns its length")
          if (count < cachedPositions) rememberEntry(r.buf, count, entryStart, entryEnd, key, value)
        }
        if (++count > limits.maxFields) {
          throw new Refused("too_many_fields", `${where(r)}: more than ${limits.maxFields} fields`)
        }
        entryKeys[count - 1] = key
        entryValues[count - 1] = value
        r.key = ""
        break
      }
      case 26:
        eventId = r.eventId(limits.maxIdLength)
        idHash = r.idHash
        break
      case 34:
        host = r.cached(hostSlot, limits.maxIdLength, HOST)
        break
      case 42:
        message = r.string(limits.maxMessageLength, MESSAGE)
        break
      default:
        if (tag >>> 3 >= 1 && tag >>> 3 <= 5) throw new Malformed(`field ${tag >>> 3} has wire type ${tag & 7}`)
        if (tag >>> 3 === 0) throw new Malformed("field number 0")
        r.skip(tag & 7)
    }
  }
  if (r.pos !== end) throw new Malformed("message overruns its length")
  if (timestamp === undefined) throw new Refused("missing_timestamp", `${where(r)}: timestamp is missing`)
  if (
    !Number.isInteger(timestamp.seconds) || timestamp.seconds < minSeconds || timestamp.seconds > maxSeconds ||
    timestamp.nanos < 0 || timestamp.nanos > 999_999_999
  ) {
    throw new Refused("malformed", `${where(r)}: timestamp out of range`)
  }
  if (count === 0) throw new Refused("missing_fields", `${where(r)}: fields is empty`)
  return { timestamp, fields: fieldsOf(count), eventId, idHash, host, message }
}

/** google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
const minSeconds = -62_135_596_800
const maxSeconds = 253_402_300_799

const run = <A>(decode: () => A): Result.Result<A, Rejection> => {
  try {
    return Result.succeed(decode())
  } catch (cause) {
    if (cause instanceof Refused) return Result.fail({ kind: cause.kind, reason: cause.message })
    if (cause instanceof Malformed) return Result.fail({ kind: "malformed", reason: `malformed protobuf: ${cause.message}` })
    throw cause
  }
}

/** A decoder for one limit set: bytes → checked Drops. */
export interface WireDecoder {
  readonly batch: (bytes: Buffer) => Result.Result<ReadonlyArray<WireDrop>, Rejection>
  readonly single: (bytes: Buffer) => Result.Result<WireDrop, Rejection>
}

export const makeWireDecoder = (limits: WireLimits = defaultWireLimits): WireDecoder => ({
  single: (bytes) =>
    run(() => {
      const r = new Reader(bytes)
      return decodeDrop(r, bytes.length, limits)
    }),
  batch: (bytes) =>
    run(() => {
      const r = new Reader(bytes)
      const drops: Array<WireDrop> = []
      while (r.pos < bytes.length) {
        const tag = r.varint32()
        if (tag === 10) {
          if (drops.length >= limits.maxBatchEvents) {
            throw new Refused("batch_too_large", `a batch carries at most ${limits.maxBatchEvents} events`)
          }
          const end = r.end(r.varint32())
          r.drop = drops.length
          drops.push(decodeDrop(r, end, limits))
        } else if (tag >>> 3 === 1) {
          throw new Malformed(`field 1 has wire type ${tag & 7}`)
        } else if (tag >>> 3 === 0) {
          throw new Malformed("field number 0")
        } else {
          r.skip(tag & 7)
        }
      }
      return drops
    })
})

/** Epoch microseconds of a (checked) wire timestamp. */
export const timestampMicros = (timestamp: { readonly seconds: number; readonly nanos: number }): number =>
  timestamp.seconds * 1_000_000 + Math.floor(timestamp.nanos / 1000)

/** The wire timestamp of epoch microseconds. */
export const wireTimestamp = (micros: number): { seconds: number; nanos: number } => {
  const seconds = Math.floor(micros / 1_000_000)
  return { seconds, nanos: (micros - seconds * 1_000_000) * 1000 }
}

/** The contract `makeWireDecoder` enforces, as a Schema (a test oracle; see the module comment). */
export const makeWireDropSchema = (limits: WireLimits = defaultWireLimits) => {
  const bounded = (max: number) => Schema.String.check(Schema.isMaxLength(max))
  return Schema.Struct({
    timestamp: Schema.Struct({
      seconds: Schema.Int.check(Schema.isBetween({ minimum: minSeconds, maximum: maxSeconds })),
      nanos: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 999_999_999 }))
    }),
    fields: Schema.Record(Schema.String, bounded(limits.maxFieldLength)).check(
      Schema.isMinProperties(1),
      Schema.isMaxProperties(limits.maxFields),
      // (a Record's key schema does not run its checks, so the key lengths are checked here)
      Schema.makeFilter((fields: Record<string, string>) =>
        Object.keys(fields).every((key) => key.length <= limits.maxFieldLength) ||
        `a field key is longer than ${limits.maxFieldLength} characters`
      )
    ),
    eventId: bounded(limits.maxIdLength),
    host: bounded(limits.maxIdLength),
    message: bounded(limits.maxMessageLength)
  })
}
