/**
 * The client's hot path: one `Drop` to protobuf bytes, byte for byte what the generated
 * `Drop.encode` writes (tests compare them), without its per-field writer forks (measured: the
 * generated encoder spent most of its time growing buffers). Strings are written once into a
 * scratch buffer, assuming a one-byte length prefix and moving the bytes when it needs more.
 */

export interface DropFields {
  readonly seconds: number
  readonly nanos: number
  readonly fields: Readonly<Record<string, string>>
  readonly eventId: string
  readonly host: string
  readonly message: string
}

interface Utf8WritingBuffer extends Buffer {
  utf8Write(text: string, offset: number, length?: number): number
}

let scratch = Buffer.allocUnsafe(64 * 1024) as Utf8WritingBuffer
/** A plain Uint8Array over the scratch: its `slice` makes a Uint8Array, much cheaper than a Buffer's. */
let scratchBytes = new Uint8Array(scratch.buffer, scratch.byteOffset, scratch.length)
let pos = 0

const ensure = (extra: number): void => {
  if (pos + extra <= scratch.length) return
  let size = scratch.length * 2
  while (size < pos + extra) size *= 2
  const bigger = Buffer.allocUnsafe(size) as Utf8WritingBuffer
  scratch.copy(bigger, 0, 0, pos)
  scratch = bigger
  scratchBytes = new Uint8Array(scratch.buffer, scratch.byteOffset, scratch.length)
}

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5)

const writeVarint32 = (n: number): void => {
  while (n >= 0x80) {
    scratch[pos++] = (n & 0x7f) | 0x80
    n >>>= 7
  }
  scratch[pos++] = n
}

/** int64 varint of an integral JS number (two's complement for negatives: 10 bytes). */
const writeVarint64 = (n: number): void => {
  let lo = n % 0x100000000 >>> 0
  let hi = Math.floor(n / 0x100000000)
  if (n < 0) {
    // two's complement over 64 bits
    hi = ~Math.floor(-n / 0x100000000) >>> 0
    lo = (0x100000000 - (-n % 0x100000000)) >>> 0
    if (lo === 0x100000000 >>> 0 && -n % 0x100000000 === 0) {
      lo = 0
      hi = (hi + 1) >>> 0
    }
  }
  hi = hi >>> 0
  while (hi > 0 || lo >= 0x80) {
    scratch[pos++] = (lo & 0x7f) | 0x80
    lo = ((lo >>> 7) | (hi << 25)) >>> 0
    hi = hi >>> 7
  }
  scratch[pos++] = lo
}

/** A length-delimited string field: tag, length, UTF-8 bytes. */
const writeString = (tag: number, text: string): void => {
  scratch[pos++] = tag
  const maxBytes = text.length * 3
  ensure(maxBytes + 5)
  const lengthAt = pos
  pos++ // room for a one-byte length
  let written: number
  if (text.length < 128) {
    // ASCII fast path in JS; bail out to the native writer at the first non-ASCII character
    let i = 0
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c >= 0x80) break
      scratch[pos + i] = c
    }
    written = i === text.length ? i : scratch.utf8Write(text, pos)
  } else {
    written = scratch.utf8Write(text, pos)
  }
  const extra = varintSize(written) - 1
  if (extra > 0) scratch.copyWithin(pos + extra, pos, pos + written)
  const end = pos + extra + written
  pos = lengthAt
  writeVarint32(written)
  pos = end
}

/** Like writeString for a nested message written by `body`. */
const writeNested = (tag: number, body: () => void): void => {
  scratch[pos++] = tag
  const lengthAt = pos
  pos++
  const start = pos
  body()
  const written = pos - start
  const extra = varintSize(written) - 1
  if (extra > 0) {
    ensure(extra)
    scratch.copyWithin(start + extra, start, start + written)
  }
  const end = pos + extra
  pos = lengthAt
  writeVarint32(written)
  pos = end
}

let current: DropFields
let entryKey = ""
let entryValue = ""
const timestampBody = (): void => {
  ensure(24)
  if (current.seconds !== 0) {
    scratch[pos++] = 0x08
    writeVarint64(current.seconds)
  }
  if (current.nanos !== 0) {
    scratch[pos++] = 0x10
    writeVarint64(current.nanos)
  }
}
const entryBody = (): void => {
  if (entryKey !== "") writeString(0x0a, entryKey)
  if (entryValue !== "") writeString(0x12, entryValue)
}

/** Writes `text` at `at` if it is ASCII; false (bytes undefined) at the first other character. */
const writeAscii = (bytes: Uint8Array, text: string, at: number): boolean => {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) return false
    bytes[at + i] = c
  }
  return true
}

/**
 * The common map entry, short ASCII key and value (`IN=vrf09`): its length is known up front, so
 * it is written in one pass without moving bytes. False (nothing written) for any other entry.
 */
const writeShortAsciiEntry = (key: string, value: string): boolean => {
  const keyPart = key.length === 0 ? 0 : 2 + key.length
  const valuePart = value.length === 0 ? 0 : 2 + value.length
  const length = keyPart + valuePart
  if (key.length >= 0x80 || value.length >= 0x80 || length >= 0x80) return false
  ensure(2 + length)
  const bytes = scratchBytes
  let at = pos
  bytes[at] = 0x12
  bytes[at + 1] = length
  at += 2
  if (keyPart !== 0) {
    bytes[at] = 0x0a
    bytes[at + 1] = key.length
    if (!writeAscii(bytes, key, at + 2)) return false
    at += keyPart
  }
  if (valuePart !== 0) {
    bytes[at] = 0x12
    bytes[at + 1] = value.length
    if (!writeAscii(bytes, value, at + 2)) return false
    at += valuePart
  }
  pos = at
  return true
}

/** Writes one Drop into the scratch, from 0 to `pos`. */
const encodeToScratch = (drop: DropFields): void => {
  pos = 0
  current = drop
  ensure(64)
  writeNested(0x0a, timestampBody)
  for (const key in drop.fields) {
    const value = drop.fields[key]!
    if (!writeShortAsciiEntry(key, value)) {
      entryKey = key
      entryValue = value
      ensure(8)
      writeNested(0x12, entryBody)
    }
  }
  if (drop.eventId !== "") writeString(0x1a, drop.eventId)
  if (drop.host !== "") writeString(0x22, drop.host)
  if (drop.message !== "") writeString(0x2a, drop.message)
}

/** The protobuf bytes of one Drop (a fresh copy, safe to keep). */
export const encodeDrop = (drop: DropFields): Uint8Array => {
  encodeToScratch(drop)
  return scratchBytes.slice(0, pos)
}

/**
 * Where `encodeDropIn` puts its bytes: chunks shared by consecutive Drops. A copy of its own per
 * Drop (`encodeDrop`) is an ArrayBuffer allocation each, measured as the client's largest cost
 * per event; a view into a shared chunk is a small object.
 */
export class DropArena {
  chunk: Uint8Array = new Uint8Array(0)
  used = 0
}

const arenaChunkBytes = 256 * 1024

/** Like `encodeDrop`, the bytes as a view into `arena` (valid for as long as it is kept). */
export const encodeDropIn = (drop: DropFields, arena: DropArena): Uint8Array => {
  encodeToScratch(drop)
  const length = pos
  if (arena.used + length > arena.chunk.length) {
    arena.chunk = new Uint8Array(Math.max(arenaChunkBytes, length))
    arena.used = 0
  }
  const start = arena.used
  arena.chunk.set(scratchBytes.subarray(0, length), start)
  arena.used = start + length
  return arena.chunk.subarray(start, start + length)
}
