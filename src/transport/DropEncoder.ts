/**
 * The client's hot path: one `Drop` to protobuf bytes, byte for byte what the generated
 * `Drop.encode` writes (tests compare them), without its per-field writer forks (measured: the
 * generated encoder spent most of its time growing buffers). Strings are written once, assuming a
 * one-byte length prefix and moving the bytes when it needs more.
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

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5)

/** Writes `text` at `at` if it is ASCII; false (bytes undefined) at the first other character. */
const writeAscii = (bytes: Uint8Array, text: string, at: number): boolean => {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) return false
    bytes[at + i] = c
  }
  return true
}

/** Protobuf writing at `pos` into a buffer that grows as needed (its bytes before `pos` are kept). */
class Writer {
  buffer: Utf8WritingBuffer
  /** A plain Uint8Array over the buffer: its `slice` makes a Uint8Array, much cheaper than a Buffer's. */
  bytes: Uint8Array
  pos = 0

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafe(size) as Utf8WritingBuffer
    this.bytes = new Uint8Array(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length)
  }

  ensure(extra: number): void {
    if (this.pos + extra <= this.buffer.length) return
    let size = Math.max(this.buffer.length * 2, 256)
    while (size < this.pos + extra) size *= 2
    const bigger = Buffer.allocUnsafe(size) as Utf8WritingBuffer
    this.buffer.copy(bigger, 0, 0, this.pos)
    this.buffer = bigger
    this.bytes = new Uint8Array(bigger.buffer, bigger.byteOffset, bigger.length)
  }

  varint32(n: number): void {
    const buffer = this.buffer
    while (n >= 0x80) {
      buffer[this.pos++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    buffer[this.pos++] = n
  }

  /** int64 varint of an integral JS number (two's complement for negatives: 10 bytes). */
  varint64(n: number): void {
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
    const buffer = this.buffer
    while (hi > 0 || lo >= 0x80) {
      buffer[this.pos++] = (lo & 0x7f) | 0x80
      lo = ((lo >>> 7) | (hi << 25)) >>> 0
      hi = hi >>> 7
    }
    buffer[this.pos++] = lo
  }

  /** A length-delimited string field: tag, length, UTF-8 bytes. */
  string(tag: number, text: string): void {
    this.ensure(1 + 5 + text.length * 3)
    const buffer = this.buffer
    buffer[this.pos++] = tag
    const lengthAt = this.pos
    const at = lengthAt + 1 // room for a one-byte length
    let written: number
    if (text.length < 128) {
      // ASCII fast path in JS; bail out to the native writer at the first non-ASCII character
      let i = 0
      for (; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (c >= 0x80) break
        buffer[at + i] = c
      }
      written = i === text.length ? i : buffer.utf8Write(text, at)
    } else {
      written = buffer.utf8Write(text, at)
    }
    this.endLength(lengthAt, written)
  }

  /** Starts a nested message: its tag and room for a one-byte length. Returns where the length goes. */
  beginNested(tag: number): number {
    this.ensure(2)
    this.buffer[this.pos++] = tag
    return this.pos++
  }

  /** Ends the nested message begun at `lengthAt`. */
  endNested(lengthAt: number): void {
    this.endLength(lengthAt, this.pos - lengthAt - 1)
  }

  /** Writes the length of the `written` bytes after `lengthAt`'s one-byte room, moving them if it needs more. */
  private endLength(lengthAt: number, written: number): void {
    const extra = varintSize(written) - 1
    if (extra > 0) {
      this.pos = lengthAt + 1 + written
      this.ensure(extra)
      this.buffer.copyWithin(lengthAt + 1 + extra, lengthAt + 1, lengthAt + 1 + written)
    }
    this.pos = lengthAt
    this.varint32(written)
    this.pos += written
  }

  /**
   * The common map entry, short ASCII key and value (`IN=vrf09`): its length is known up front, so
   * it is written in one pass without moving bytes. False (nothing written) for any other entry.
   */
  shortAsciiEntry(key: string, value: string): boolean {
    const keyPart = key.length === 0 ? 0 : 2 + key.length
    const valuePart = value.length === 0 ? 0 : 2 + value.length
    const length = keyPart + valuePart
    if (key.length >= 0x80 || value.length >= 0x80 || length >= 0x80) return false
    this.ensure(2 + length)
    const bytes = this.bytes
    let at = this.pos
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
    this.pos = at
    return true
  }

  /** One Drop's fields, from `pos` on. */
  drop(drop: DropFields): void {
    this.ensure(64)
    const timestamp = this.beginNested(0x0a)
    if (drop.seconds !== 0) {
      this.buffer[this.pos++] = 0x08
      this.varint64(drop.seconds)
    }
    if (drop.nanos !== 0) {
      this.buffer[this.pos++] = 0x10
      this.varint64(drop.nanos)
    }
    this.endNested(timestamp)
    for (const key in drop.fields) {
      const value = drop.fields[key]!
      if (this.shortAsciiEntry(key, value)) continue
      const entry = this.beginNested(0x12)
      if (key !== "") this.string(0x0a, key)
      if (value !== "") this.string(0x12, value)
      this.endNested(entry)
    }
    if (drop.eventId !== "") this.string(0x1a, drop.eventId)
    if (drop.host !== "") this.string(0x22, drop.host)
    if (drop.message !== "") this.string(0x2a, drop.message)
  }
}

const scratch = new Writer(64 * 1024)

/** The protobuf bytes of one Drop (a fresh copy, safe to keep). */
export const encodeDrop = (drop: DropFields): Uint8Array => {
  scratch.pos = 0
  scratch.drop(drop)
  return scratch.bytes.slice(0, scratch.pos)
}

/** A frame's length prefix is written in this many bytes first (a Drop of 128 to 16383 bytes). */
const framedLengthRoom = 2

/**
 * Drops framed as a `DropBatch` (`repeated Drop drops = 1`: each one tag 0x0a, length, bytes),
 * encoded in place one after the other in one buffer: any run of consecutive frames is itself a
 * DropBatch, sent as it is. Measured against encoding into a scratch, copying into a 256 KiB arena
 * (zero-filled, one per delivery) with a view per Drop, then copying every Drop again into the
 * call's buffer: encoding 0.9 instead of 1.5 µs per event; a whole delivery with gRPC stubbed out
 * 0.7 instead of 1.1 µs per event for 333 events, 13 instead of ~240 µs for one.
 */
export class DropBatchWriter {
  private readonly writer: Writer
  /** Where each kept frame ends: frame i is `bytes[ends[i - 1] ?? 0 .. ends[i])`. */
  readonly ends: Array<number> = []
  private end = 0
  private encodedEnd = 0

  /** `capacity`: the bytes to allocate first (it grows as needed). */
  constructor(capacity: number) {
    this.writer = new Writer(capacity)
  }

  /** Encodes `drop` framed after the kept frames (kept by `commit`); returns its size unframed. */
  encode(drop: DropFields): number {
    const writer = this.writer
    writer.pos = this.end
    writer.ensure(1 + framedLengthRoom)
    writer.buffer[writer.pos++] = 0x0a
    const lengthAt = writer.pos
    const dropAt = lengthAt + framedLengthRoom
    writer.pos = dropAt
    writer.drop(drop)
    const size = writer.pos - dropAt
    const lengthSize = varintSize(size)
    if (lengthSize !== framedLengthRoom) {
      writer.ensure(lengthSize - framedLengthRoom)
      writer.buffer.copyWithin(lengthAt + lengthSize, dropAt, dropAt + size)
    }
    writer.pos = lengthAt
    writer.varint32(size)
    this.encodedEnd = lengthAt + lengthSize + size
    return size
  }

  /** Keeps the frame `encode` just wrote. */
  commit(): void {
    this.end = this.encodedEnd
    this.ends.push(this.end)
  }

  /** The kept frames (a view of the buffer, which later frames do not change). */
  get bytes(): Buffer {
    return this.writer.buffer.subarray(0, this.end)
  }
}
