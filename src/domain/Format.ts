/**
 * The server's stdout lines (pure: strings in, strings out).
 *
 * `json` is the DESIGN.md "Output" shape: exactly the Schema's JSON encoding of a DropEvent.
 * `upstream` is the Go server's line byte for byte (metal-stack/droptailer `pkg/server/push.go`):
 *
 *     de.Fields["timestamp"] = fmt.Sprintf("%s", time.Unix(de.Timestamp.Seconds, 0))
 *     js, _ := json.Marshal(de.Fields)
 *     fmt.Printf("%s %s\n", de.Fields["timestamp"], js)
 *
 * i.e. Go's `time.Time.String()` of the whole second (in the server's local zone, UTC in its
 * container), then encoding/json of the map: keys sorted bytewise, HTML characters escaped.
 */
import {
  ArpPacket,
  DropEvent,
  Endpoint,
  formatTimestamp,
  IcmpHeader,
  InnerPacket,
  IpHeader,
  MacHeader,
  TcpHeader,
  UdpHeader,
  WorkloadRef
} from "./DropEvent.ts"

// The JSON line is the Schema's encoding, which orders keys as the Schema declares them and leaves
// out absent optional keys. Going through Schema.encode costs ~10 µs an event, and JSON.stringify
// of a plain-object copy ~5 µs; `JsonLineWriter` writes the same bytes straight into a Buffer:
// precomputed key fragments in Schema order, absent (`undefined`) keys left out, strings copied
// byte by byte while checking that they need no escaping (else JSON.stringify of that string),
// integers as digits. No intermediate object or string per event.
//
// Consecutive events of a batch are alike (same MAC, same IP header but the id, same fields but
// the ports, ...), and a byte loop in JS costs ~1-2 ns a byte: so a struct equal to the one of
// the previous line (compared key by key) and runs of `fields` entries equal to the previous
// line's (the wire decoder hands out the same strings) are copied from the previous line's bytes
// with one native copyWithin. Tests check the lines against JSON.stringify(Schema.encode(event))
// with every key of every struct set and odd strings, alone and in sequences of similar events.

/** Node's Buffer has these (undocumented, stable since Node 0.x); toString()/write() are slower. */
interface Utf8Buffer extends Buffer {
  utf8Write(text: string, offset: number): number
  utf8Slice(start: number, end: number): string
  latin1Slice(start: number, end: number): string
}

const allocate = (size: number): Utf8Buffer => Buffer.allocUnsafe(size) as Utf8Buffer

/** An ASCII fragment's bytes. */
const bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))

/** `,"name":` for each key (the comma is skipped for the first key of an object). */
const keyBytes = (name: string): Uint8Array => bytes(`,"${name}":`)

const kAck = keyBytes("ack")
const kAction = keyBytes("action")
const kArp = keyBytes("arp")
const kCode = keyBytes("code")
const kDst = keyBytes("dst")
const kEthertype = keyBytes("ethertype")
const kFields = keyBytes("fields")
const kFlags = keyBytes("flags")
const kFlowLabel = keyBytes("flowLabel")
const kFragmentOffset = keyBytes("fragmentOffset")
const kGateway = keyBytes("gateway")
const kGid = keyBytes("gid")
const kHost = keyBytes("host")
const kHtype = keyBytes("htype")
const kIcmp = keyBytes("icmp")
const kId = keyBytes("id")
const kIn = keyBytes("in")
const kIncomplete = keyBytes("incomplete")
const kInner = keyBytes("inner")
const kIp = keyBytes("ip")
const kKind = keyBytes("kind")
const kLength = keyBytes("length")
const kMac = keyBytes("mac")
const kMacDst = keyBytes("macDst")
const kMacSrc = keyBytes("macSrc")
const kMark = keyBytes("mark")
const kMtu = keyBytes("mtu")
const kName = keyBytes("name")
const kNamespace = keyBytes("namespace")
const kNode = keyBytes("node")
const kOpcode = keyBytes("opcode")
const kOptions = keyBytes("options")
const kOut = keyBytes("out")
const kParameter = keyBytes("parameter")
const kPhysin = keyBytes("physin")
const kPhysout = keyBytes("physout")
const kPort = keyBytes("port")
const kPrecedence = keyBytes("precedence")
const kProtocol = keyBytes("protocol")
const kPtype = keyBytes("ptype")
const kRaw = keyBytes("raw")
const kReserved = keyBytes("reserved")
const kSeq = keyBytes("seq")
const kSpi = keyBytes("spi")
const kSrc = keyBytes("src")
const kTcp = keyBytes("tcp")
const kTimestamp = keyBytes("timestamp")
const kTos = keyBytes("tos")
const kTrafficClass = keyBytes("trafficClass")
const kTtl = keyBytes("ttl")
const kType = keyBytes("type")
const kUdp = keyBytes("udp")
const kUid = keyBytes("uid")
const kUnknown = keyBytes("unknown")
const kUrgentPointer = keyBytes("urgentPointer")
const kVersion = keyBytes("version")
const kWindow = keyBytes("window")
const kWorkload = keyBytes("workload")

/** `fields` entries remembered (by position) from earlier lines. */
const fieldSlots = 64

/**
 * The top-level keys, in Schema order, as segments of a line (`"key":value`, without the comma
 * before): where each was last written and with what, to copy it when the next line has the same.
 */
const S_ACTION = 0
const S_HOST = 1
const S_PROTOCOL = 2
const S_SRC = 3
const S_DST = 4
const S_IN = 5
const S_OUT = 6
const S_PHYSIN = 7
const S_PHYSOUT = 8
const S_MAC = 9
const S_IP = 10
const S_TCP = 11
const S_UDP = 12
const S_ICMP = 13
const S_SPI = 14
const S_MARK = 15
const S_UID = 16
const S_GID = 17
const S_INCOMPLETE = 18
/** `"fields":{` (its entries are segments of their own, see `fieldSlots`). */
const S_FIELDS = 19
const segments = 20

/** Values of one struct segment in `#snapshots` (IpHeader has the most keys: 11, the workload counts 3). */
const snapshotSlots = 12

/**
 * Appends JSON lines (and other text) to a growing Buffer. `pos` is the end of what was written;
 * `reset` starts over in the same memory.
 */
export class JsonLineWriter {
  buf: Utf8Buffer
  pos = 0
  /** Whether everything written since `reset` was ASCII (then `text()` may slice as latin1). */
  ascii = true
  /**
   * Bumped by `reset`: what was remembered of an earlier generation is gone (a grown buffer keeps
   * the bytes at the same offsets, see `room`).
   */
  #generation = 0
  /** Per top-level segment: where its bytes are, in which generation, and the value (scalars) or a snapshot (structs). */
  readonly #segmentFrom = new Int32Array(segments)
  readonly #segmentTo = new Int32Array(segments)
  readonly #segmentGeneration = new Int32Array(segments).fill(-1)
  readonly #segmentValue: Array<unknown> = new Array(segments).fill(undefined)
  readonly #snapshots: Array<unknown> = new Array(segments * snapshotSlots).fill(undefined)
  /** Per position: the `fields` entry last written and where its bytes (`"KEY":"VALUE"`) are. */
  readonly #fieldKeys: Array<string | undefined> = new Array(fieldSlots).fill(undefined)
  readonly #fieldValues: Array<string | undefined> = new Array(fieldSlots).fill(undefined)
  readonly #fieldFrom = new Int32Array(fieldSlots)
  readonly #fieldTo = new Int32Array(fieldSlots)
  /** Slots 0 .. `#fieldsKnown` - 1 were written in generation `#fieldsGeneration`. */
  #fieldsKnown = 0
  #fieldsGeneration = -1
  /**
   * The run of segments being copied (not yet): their bytes in earlier lines (`#runFrom` ..
   * `#runTo`, -1: none), and where they go (`#runAt`, which is `pos` until the copy). Anything
   * written flushes it first.
   */
  #runFrom = -1
  #runTo = 0
  #runAt = 0

  constructor(initialSize = 64 * 1024) {
    this.buf = allocate(Math.max(256, initialSize))
  }

  reset(): void {
    this.pos = 0
    this.ascii = true
    this.#runFrom = -1
    this.#generation++
  }

  /** Copies bytes written earlier (`from`..`to`, before `pos`) to the end. */
  #again(from: number, to: number): void {
    const n = to - from
    const buf = this.pos + n <= this.buf.length ? this.buf : this.room(n)
    buf.copyWithin(this.pos, from, to)
    this.pos += n
  }

  /** Copies the pending run. */
  #flush(): void {
    if (this.#runFrom >= 0) {
      this.#again(this.#runFrom, this.#runTo)
      this.#runFrom = -1
    }
  }

  /** Whether segment `segment` was written in this generation (so its bytes are still there). */
  #known(segment: number): boolean {
    return this.#segmentGeneration[segment] === this.#generation
  }

  /**
   * Segment `segment` of the object that starts at `start` is the same as where it was last
   * written: it joins the run if it followed the run's last segment there, one comma apart.
   */
  #same(start: number, segment: number): void {
    const from = this.#segmentFrom[segment]!
    const to = this.#segmentTo[segment]!
    if (this.#runFrom < 0 || from !== this.#runTo + 1) {
      const first = this.#runFrom < 0 && this.pos === start + 1
      this.#flush()
      if (!first) this.byte(0x2c)
      this.#runFrom = from
      this.#runAt = this.pos
    }
    this.#runTo = to
    this.#segmentFrom[segment] = this.#runAt + (from - this.#runFrom)
    this.#segmentTo[segment] = this.#runAt + (to - this.#runFrom)
  }

  /** Flushes the run and writes `key` (with the comma unless first in the object at `start`); returns where the segment starts. */
  #open(start: number, key: Uint8Array, more: number): number {
    const first = this.#runFrom < 0 && this.pos === start + 1
    this.#flush()
    const k = key.length
    let p = this.pos
    const buf = p + k + more <= this.buf.length ? this.buf : this.room(k + more)
    const from = first ? p : p + 1
    for (let i = first ? 1 : 0; i < k; i++) buf[p++] = key[i]!
    this.pos = p
    return from
  }

  /** Segment `segment` was written from `from` to `pos`, with `value`. */
  #written(segment: number, from: number, value: unknown): void {
    this.#segmentFrom[segment] = from
    this.#segmentTo[segment] = this.pos
    this.#segmentGeneration[segment] = this.#generation
    this.#segmentValue[segment] = value
  }

  #stringSegment(start: number, segment: number, key: Uint8Array, s: string): void {
    if (this.#known(segment) && s === this.#segmentValue[segment]) return this.#same(start, segment)
    const from = this.#open(start, key, s.length + 2)
    this.string(s)
    this.#written(segment, from, s)
  }

  #numberSegment(start: number, segment: number, key: Uint8Array, n: number): void {
    if (this.#known(segment) && n === this.#segmentValue[segment]) return this.#same(start, segment)
    const from = this.#open(start, key, 12)
    this.number(n)
    this.#written(segment, from, n)
  }

  /** Makes room for `n` more bytes (copies what was written into a bigger buffer). */
  room(n: number): Utf8Buffer {
    const need = this.pos + n
    if (need <= this.buf.length) return this.buf
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const bigger = allocate(size)
    this.buf.copy(bigger, 0, 0, this.pos)
    this.buf = bigger
    return bigger
  }

  /** One byte (ASCII). */
  byte(c: number): void {
    const buf = this.pos < this.buf.length ? this.buf : this.room(1)
    buf[this.pos++] = c
  }

  /** Any text, as UTF-8, unescaped (e.g. a whole line formatted elsewhere). */
  utf8(s: string): void {
    const buf = this.room(s.length * 3) // at most 3 bytes per UTF-16 unit
    const start = this.pos
    this.pos = start + buf.utf8Write(s, start)
    if (this.ascii && this.pos - start !== s.length) this.ascii = false
  }

  /** `key` (see `key()`; no comma right after the `{` at `start`), then a JSON string. */
  keyString(start: number, key: Uint8Array, s: string): void {
    this.#key(start, key, s.length + 2)
    this.string(s)
  }

  /** `key`, then the caller writes the value (an object, the timestamp). */
  keyObject(start: number, key: Uint8Array): void {
    this.#key(start, key, 2)
  }

  keyNumber(start: number, key: Uint8Array, n: number): void {
    this.#key(start, key, 12)
    this.number(n)
  }

  keyStrings(start: number, key: Uint8Array, items: ReadonlyArray<string>): void {
    this.#key(start, key, 2)
    this.strings(items)
  }

  /** A JSON array of strings. */
  strings(items: ReadonlyArray<string>): void {
    this.byte(0x5b)
    for (let i = 0; i < items.length; i++) {
      if (i > 0) this.byte(0x2c)
      this.string(items[i]!)
    }
    this.byte(0x5d)
  }

  /** Writes `key` and makes room for `more` bytes after it. */
  #key(start: number, key: Uint8Array, more: number): void {
    const k = key.length
    let p = this.pos
    const buf = p + k + more <= this.buf.length ? this.buf : this.room(k + more)
    for (let i = p === start + 1 ? 1 : 0; i < k; i++) buf[p++] = key[i]!
    this.pos = p
  }

  /** A JSON string, exactly as JSON.stringify writes it. */
  string(s: string): void {
    const n = s.length
    const p = this.pos
    const buf = p + n + 2 <= this.buf.length ? this.buf : this.room(n + 2)
    buf[p] = 34
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      // control characters, `"` and `\` are escaped; non-ASCII goes through utf8Write
      if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7f) return this.#slowString(s)
      buf[p + 1 + i] = c
    }
    buf[p + n + 1] = 34
    this.pos = p + n + 2
  }

  #slowString(s: string): void {
    this.utf8(JSON.stringify(s))
  }

  /** A JSON number, exactly as JSON.stringify writes it (non-finite: null). */
  number(n: number): void {
    if (n >= 0 && n <= 0x7fffffff && (n | 0) === n) {
      let digits = 1
      for (let m = n; m >= 10; m = (m / 10) | 0) digits++
      const buf = this.pos + digits <= this.buf.length ? this.buf : this.room(digits)
      let p = this.pos + digits
      this.pos = p
      let m = n
      do {
        const q = (m / 10) | 0
        buf[--p] = 48 + m - q * 10
        m = q
      } while (m !== 0)
    } else {
      this.utf8(Number.isFinite(n) ? String(n) : "null")
    }
  }

  /** The Schema's JSON timestamp: the cached `2026-11-27T14:02:10.` of the second, then six digits. */
  timestamp(micros: number): void {
    const second = Math.floor(micros / 1_000_000)
    const fraction = micros - second * 1_000_000
    if (!(fraction >= 0 && fraction < 1_000_000 && Number.isInteger(fraction))) {
      this.string(formatTimestamp(micros))
      return
    }
    if (second !== timestampSecond) {
      const text = formatTimestamp(micros) // (throws as before for a date out of range)
      timestampPrefix = bytes(`"${text.slice(0, text.length - 7)}`)
      timestampSecond = second
    }
    const prefix = timestampPrefix
    const k = prefix.length
    let p = this.pos
    const buf = p + k + 8 <= this.buf.length ? this.buf : this.room(k + 8)
    for (let i = 0; i < k; i++) buf[p++] = prefix[i]!
    let m = fraction
    for (let i = 5; i >= 0; i--) {
      const q = (m / 10) | 0
      buf[p + i] = 48 + m - q * 10
      m = q
    }
    buf[p + 6] = 0x5a // Z
    buf[p + 7] = 0x22
    this.pos = p + 8
  }

  /**
   * `fields`: own enumerable keys in their order, as JSON.stringify (which would skip non-string
   * values: then it is JSON.stringify's). Runs of entries that are the same as the ones remembered
   * at the same positions (from earlier lines of this generation) are copied from there.
   */
  fields(fields: Readonly<Record<string, string>>): void {
    this.#flush()
    this.byte(0x7b)
    this.#entries(fields, this.pos)
    this.byte(0x7d)
  }

  /** The entries of `fields`, after its `{` (written or pending in the run), which ends at `open` in this line. */
  #entries(fields: Readonly<Record<string, string>>, open: number): void {
    // slots below `known` hold an entry written in this generation (whose bytes are still there)
    const known = this.#fieldsGeneration === this.#generation ? this.#fieldsKnown : 0
    let n = 0
    if (Object.getPrototypeOf(fields) === Object.prototype && !hasInheritedKeys()) {
      // for-in walks the keys in the order of Object.keys (and of JSON.stringify) from the hidden
      // class's enum cache, without an array; here it sees own keys only
      for (const key in fields) {
        if (!this.#entry(n++, key, fields[key], known)) return this.#fieldsAsJson(fields, open)
      }
    } else {
      const keys = Object.keys(fields)
      for (; n < keys.length; n++) {
        if (!this.#entry(n, keys[n]!, fields[keys[n]!], known)) return this.#fieldsAsJson(fields, open)
      }
    }
    this.#flush()
    const remembered = n < fieldSlots ? n : fieldSlots
    this.#fieldsKnown = remembered > known ? remembered : known
    this.#fieldsGeneration = this.#generation
  }

  /**
   * Entry `i` (after the `{` or entry i-1): copied when remembered the same at slot i, else
   * written. False for a value that is not a string (nothing written then).
   */
  #entry(i: number, key: string, value: unknown, known: number): boolean {
    // (a remembered value is a string: equal, it needs no type check; and a string the same
    // object as the remembered one is not even read)
    if (i < known && key === this.#fieldKeys[i] && value === this.#fieldValues[i]) {
      const f = this.#fieldFrom[i]!
      const t = this.#fieldTo[i]!
      // entry i-1 and i remembered one comma apart, entry 0 right after the `{` of the run: one run
      if (this.#runFrom < 0 || f !== this.#runTo + (i > 0 ? 1 : 0)) {
        this.#flush()
        if (i > 0) this.byte(0x2c)
        this.#runFrom = f
        this.#runAt = this.pos
      }
      this.#runTo = t
      this.#fieldFrom[i] = this.#runAt + (f - this.#runFrom)
      this.#fieldTo[i] = this.#runAt + (t - this.#runFrom)
      return true
    }
    if (typeof value !== "string") return false
    this.#flush()
    if (i > 0) this.byte(0x2c)
    const f = this.pos
    this.string(key)
    this.byte(0x3a)
    this.string(value)
    if (i < fieldSlots) {
      this.#fieldKeys[i] = key
      this.#fieldValues[i] = value
      this.#fieldFrom[i] = f
      this.#fieldTo[i] = this.pos
    }
    return true
  }

  /**
   * Not what the type says (a value that is not a string): JSON.stringify's own rules, from the
   * `{` that ends at `open` on (instead of the entries before), without the final `}`.
   */
  #fieldsAsJson(fields: Readonly<Record<string, string>>, open: number): void {
    this.#flush()
    this.pos = open - 1
    this.utf8(JSON.stringify(fields))
    this.pos--
    // (entries remembered in this call are overwritten: forget them all, a rare case)
    this.#fieldsGeneration = -1
  }

  /** The text written since `reset`. */
  text(): string {
    return this.ascii ? this.buf.latin1Slice(0, this.pos) : this.buf.utf8Slice(0, this.pos)
  }

  /**
   * The bytes written since `reset`, handed over without a copy: the writer goes on in `next` (a
   * buffer it may overwrite) or else in a new one of `nextSize` bytes (and `reset`s).
   */
  take(nextSize: number, next?: Buffer): Buffer {
    const chunk = this.buf.subarray(0, this.pos)
    this.buf = next !== undefined && next.length >= 256 ? next as Utf8Buffer : allocate(Math.max(256, nextSize))
    this.reset()
    return chunk
  }

  /** A copy of the bytes written since `reset`. */
  copy(): Buffer {
    const chunk = Buffer.allocUnsafe(this.pos)
    this.buf.copy(chunk, 0, 0, this.pos)
    return chunk
  }

  /**
   * One event's JSON line (without the newline). A top-level segment the same as where it was last
   * written (a scalar equal to the value then, a struct equal to its snapshot then) is copied from
   * there, together with the segments after it that follow it there too (one copy for a run).
   */
  event(o: DropEvent): void {
    this.#runFrom = -1
    const start = this.pos
    this.byte(0x7b)
    const snapshots = this.#snapshots
    if (o.timestamp !== undefined) {
      this.#open(start, kTimestamp, 2)
      this.timestamp(o.timestamp)
    }
    if (o.action !== undefined) this.#stringSegment(start, S_ACTION, kAction, o.action)
    if (o.host !== undefined) this.#stringSegment(start, S_HOST, kHost, o.host)
    if (o.protocol !== undefined) this.#stringSegment(start, S_PROTOCOL, kProtocol, o.protocol)
    if (o.src !== undefined) {
      if (this.#known(S_SRC) && sameEndpoint(o.src, snapshots, S_SRC * snapshotSlots)) this.#same(start, S_SRC)
      else {
        const from = this.#open(start, kSrc, 2)
        this.endpoint(o.src)
        snapshotEndpoint(o.src, snapshots, S_SRC * snapshotSlots)
        this.#written(S_SRC, from, undefined)
      }
    }
    if (o.dst !== undefined) {
      if (this.#known(S_DST) && sameEndpoint(o.dst, snapshots, S_DST * snapshotSlots)) this.#same(start, S_DST)
      else {
        const from = this.#open(start, kDst, 2)
        this.endpoint(o.dst)
        snapshotEndpoint(o.dst, snapshots, S_DST * snapshotSlots)
        this.#written(S_DST, from, undefined)
      }
    }
    if (o.in !== undefined) this.#stringSegment(start, S_IN, kIn, o.in)
    if (o.out !== undefined) this.#stringSegment(start, S_OUT, kOut, o.out)
    if (o.physin !== undefined) this.#stringSegment(start, S_PHYSIN, kPhysin, o.physin)
    if (o.physout !== undefined) this.#stringSegment(start, S_PHYSOUT, kPhysout, o.physout)
    if (o.mac !== undefined) {
      if (this.#known(S_MAC) && sameMac(o.mac, snapshots, S_MAC * snapshotSlots)) this.#same(start, S_MAC)
      else {
        const from = this.#open(start, kMac, 2)
        this.mac(o.mac)
        snapshotMac(o.mac, snapshots, S_MAC * snapshotSlots)
        this.#written(S_MAC, from, undefined)
      }
    }
    if (o.ip !== undefined) {
      if (this.#known(S_IP) && sameIp(o.ip, snapshots, S_IP * snapshotSlots)) this.#same(start, S_IP)
      else {
        const from = this.#open(start, kIp, 2)
        this.ip(o.ip)
        snapshotIp(o.ip, snapshots, S_IP * snapshotSlots)
        this.#written(S_IP, from, undefined)
      }
    }
    if (o.tcp !== undefined) {
      if (this.#known(S_TCP) && sameTcp(o.tcp, snapshots, S_TCP * snapshotSlots)) this.#same(start, S_TCP)
      else {
        const from = this.#open(start, kTcp, 2)
        this.tcp(o.tcp)
        snapshotTcp(o.tcp, snapshots, S_TCP * snapshotSlots)
        this.#written(S_TCP, from, undefined)
      }
    }
    if (o.udp !== undefined) {
      // (the segment's value: the one key's)
      const length = o.udp.length
      if (this.#known(S_UDP) && length === this.#segmentValue[S_UDP]) this.#same(start, S_UDP)
      else {
        const from = this.#open(start, kUdp, 2)
        this.udp(o.udp)
        this.#written(S_UDP, from, length)
      }
    }
    if (o.icmp !== undefined) {
      if (this.#known(S_ICMP) && sameIcmp(o.icmp, snapshots, S_ICMP * snapshotSlots)) this.#same(start, S_ICMP)
      else {
        const from = this.#open(start, kIcmp, 2)
        this.icmp(o.icmp)
        snapshotIcmp(o.icmp, snapshots, S_ICMP * snapshotSlots)
        this.#written(S_ICMP, from, undefined)
      }
    }
    if (o.inner !== undefined) {
      this.#open(start, kInner, 2)
      this.inner(o.inner)
    }
    if (o.arp !== undefined) {
      this.#open(start, kArp, 2)
      this.arp(o.arp)
    }
    if (o.spi !== undefined) this.#numberSegment(start, S_SPI, kSpi, o.spi)
    if (o.mark !== undefined) this.#numberSegment(start, S_MARK, kMark, o.mark)
    if (o.uid !== undefined) this.#numberSegment(start, S_UID, kUid, o.uid)
    if (o.gid !== undefined) this.#numberSegment(start, S_GID, kGid, o.gid)
    if (o.incomplete !== undefined) this.#numberSegment(start, S_INCOMPLETE, kIncomplete, o.incomplete)
    if (o.unknown !== undefined) {
      this.#open(start, kUnknown, 2)
      this.strings(o.unknown)
    }
    if (o.fields !== undefined) {
      if (this.#known(S_FIELDS)) this.#same(start, S_FIELDS)
      else {
        const from = this.#open(start, kFields, 2)
        this.byte(0x7b)
        this.#written(S_FIELDS, from, undefined)
      }
      // (the segment ends with the `{`, there in this line whether copied or written)
      this.#entries(o.fields, this.#segmentTo[S_FIELDS]!)
      this.byte(0x7d)
    }
    this.#flush()
    this.byte(0x7d)
  }

  endpoint(o: typeof Endpoint.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.ip !== undefined) this.keyString(start, kIp, o.ip)
    if (o.port !== undefined) this.keyNumber(start, kPort, o.port)
    if (o.kind !== undefined) this.keyString(start, kKind, o.kind)
    if (o.namespace !== undefined) this.keyString(start, kNamespace, o.namespace)
    if (o.name !== undefined) this.keyString(start, kName, o.name)
    if (o.workload !== undefined) {
      this.keyObject(start, kWorkload)
      this.workload(o.workload)
    }
    if (o.node !== undefined) this.keyString(start, kNode, o.node)
    this.byte(0x7d)
  }

  workload(o: typeof WorkloadRef.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.kind !== undefined) this.keyString(start, kKind, o.kind)
    if (o.name !== undefined) this.keyString(start, kName, o.name)
    this.byte(0x7d)
  }

  mac(o: typeof MacHeader.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.dst !== undefined) this.keyString(start, kDst, o.dst)
    if (o.src !== undefined) this.keyString(start, kSrc, o.src)
    if (o.ethertype !== undefined) this.keyString(start, kEthertype, o.ethertype)
    if (o.raw !== undefined) this.keyString(start, kRaw, o.raw)
    this.byte(0x7d)
  }

  ip(o: typeof IpHeader.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.version !== undefined) this.keyNumber(start, kVersion, o.version)
    if (o.length !== undefined) this.keyNumber(start, kLength, o.length)
    if (o.ttl !== undefined) this.keyNumber(start, kTtl, o.ttl)
    if (o.tos !== undefined) this.keyString(start, kTos, o.tos)
    if (o.precedence !== undefined) this.keyString(start, kPrecedence, o.precedence)
    if (o.id !== undefined) this.keyNumber(start, kId, o.id)
    if (o.flags !== undefined) this.keyStrings(start, kFlags, o.flags)
    if (o.fragmentOffset !== undefined) this.keyNumber(start, kFragmentOffset, o.fragmentOffset)
    if (o.options !== undefined) this.keyString(start, kOptions, o.options)
    if (o.trafficClass !== undefined) this.keyString(start, kTrafficClass, o.trafficClass)
    if (o.flowLabel !== undefined) this.keyString(start, kFlowLabel, o.flowLabel)
    this.byte(0x7d)
  }

  tcp(o: typeof TcpHeader.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.seq !== undefined) this.keyNumber(start, kSeq, o.seq)
    if (o.ack !== undefined) this.keyNumber(start, kAck, o.ack)
    if (o.window !== undefined) this.keyNumber(start, kWindow, o.window)
    if (o.reserved !== undefined) this.keyString(start, kReserved, o.reserved)
    if (o.flags !== undefined) this.keyStrings(start, kFlags, o.flags)
    if (o.urgentPointer !== undefined) this.keyNumber(start, kUrgentPointer, o.urgentPointer)
    if (o.options !== undefined) this.keyString(start, kOptions, o.options)
    this.byte(0x7d)
  }

  udp(o: typeof UdpHeader.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.length !== undefined) this.keyNumber(start, kLength, o.length)
    this.byte(0x7d)
  }

  icmp(o: typeof IcmpHeader.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.type !== undefined) this.keyNumber(start, kType, o.type)
    if (o.code !== undefined) this.keyNumber(start, kCode, o.code)
    if (o.id !== undefined) this.keyNumber(start, kId, o.id)
    if (o.seq !== undefined) this.keyNumber(start, kSeq, o.seq)
    if (o.parameter !== undefined) this.keyNumber(start, kParameter, o.parameter)
    if (o.gateway !== undefined) this.keyString(start, kGateway, o.gateway)
    if (o.mtu !== undefined) this.keyNumber(start, kMtu, o.mtu)
    this.byte(0x7d)
  }

  inner(o: typeof InnerPacket.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.protocol !== undefined) this.keyString(start, kProtocol, o.protocol)
    if (o.src !== undefined) {
      this.keyObject(start, kSrc)
      this.endpoint(o.src)
    }
    if (o.dst !== undefined) {
      this.keyObject(start, kDst)
      this.endpoint(o.dst)
    }
    if (o.ip !== undefined) {
      this.keyObject(start, kIp)
      this.ip(o.ip)
    }
    if (o.tcp !== undefined) {
      this.keyObject(start, kTcp)
      this.tcp(o.tcp)
    }
    if (o.udp !== undefined) {
      this.keyObject(start, kUdp)
      this.udp(o.udp)
    }
    if (o.icmp !== undefined) {
      this.keyObject(start, kIcmp)
      this.icmp(o.icmp)
    }
    if (o.incomplete !== undefined) this.keyNumber(start, kIncomplete, o.incomplete)
    this.byte(0x7d)
  }

  arp(o: typeof ArpPacket.Type): void {
    const start = this.pos
    this.byte(0x7b)
    if (o.htype !== undefined) this.keyNumber(start, kHtype, o.htype)
    if (o.ptype !== undefined) this.keyString(start, kPtype, o.ptype)
    if (o.opcode !== undefined) this.keyNumber(start, kOpcode, o.opcode)
    if (o.macSrc !== undefined) this.keyString(start, kMacSrc, o.macSrc)
    if (o.macDst !== undefined) this.keyString(start, kMacDst, o.macDst)
    this.byte(0x7d)
  }
}

// Whether a struct writes the same JSON as the one of the previous line: key by key against a
// snapshot of that one's values (never against the object: it may have been changed in place
// since). Numbers compare by value (NaN is never the same; 0 and -0 write the same).

const sameStrings = (a: ReadonlyArray<string> | undefined, b: unknown): boolean => {
  if (a === undefined || b === undefined) return a === b
  const c = b as ReadonlyArray<string>
  if (a.length !== c.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== c[i]) return false
  return true
}

const sameEndpoint = (o: typeof Endpoint.Type, s: ReadonlyArray<unknown>, at: number): boolean =>
  o.ip === s[at + 0] &&
  o.port === s[at + 1] &&
  o.kind === s[at + 2] &&
  o.namespace === s[at + 3] &&
  o.name === s[at + 4] &&
  (o.workload === undefined ? s[at + 5] === false : s[at + 5] === true && o.workload.kind === s[at + 6] && o.workload.name === s[at + 7]) &&
  o.node === s[at + 8]

const snapshotEndpoint = (o: typeof Endpoint.Type, s: Array<unknown>, at: number): void => {
  s[at + 0] = o.ip
  s[at + 1] = o.port
  s[at + 2] = o.kind
  s[at + 3] = o.namespace
  s[at + 4] = o.name
  s[at + 5] = o.workload !== undefined
  s[at + 6] = o.workload?.kind
  s[at + 7] = o.workload?.name
  s[at + 8] = o.node
}

const sameMac = (o: typeof MacHeader.Type, s: ReadonlyArray<unknown>, at: number): boolean =>
  o.dst === s[at + 0] &&
  o.src === s[at + 1] &&
  o.ethertype === s[at + 2] &&
  o.raw === s[at + 3]

const snapshotMac = (o: typeof MacHeader.Type, s: Array<unknown>, at: number): void => {
  s[at + 0] = o.dst
  s[at + 1] = o.src
  s[at + 2] = o.ethertype
  s[at + 3] = o.raw
}

const sameIp = (o: typeof IpHeader.Type, s: ReadonlyArray<unknown>, at: number): boolean =>
  o.version === s[at + 0] &&
  o.length === s[at + 1] &&
  o.ttl === s[at + 2] &&
  o.tos === s[at + 3] &&
  o.precedence === s[at + 4] &&
  o.id === s[at + 5] &&
  sameStrings(o.flags, s[at + 6]) &&
  o.fragmentOffset === s[at + 7] &&
  o.options === s[at + 8] &&
  o.trafficClass === s[at + 9] &&
  o.flowLabel === s[at + 10]

const snapshotIp = (o: typeof IpHeader.Type, s: Array<unknown>, at: number): void => {
  s[at + 0] = o.version
  s[at + 1] = o.length
  s[at + 2] = o.ttl
  s[at + 3] = o.tos
  s[at + 4] = o.precedence
  s[at + 5] = o.id
  s[at + 6] = o.flags === undefined ? undefined : [...o.flags]
  s[at + 7] = o.fragmentOffset
  s[at + 8] = o.options
  s[at + 9] = o.trafficClass
  s[at + 10] = o.flowLabel
}

const sameTcp = (o: typeof TcpHeader.Type, s: ReadonlyArray<unknown>, at: number): boolean =>
  o.seq === s[at + 0] &&
  o.ack === s[at + 1] &&
  o.window === s[at + 2] &&
  o.reserved === s[at + 3] &&
  sameStrings(o.flags, s[at + 4]) &&
  o.urgentPointer === s[at + 5] &&
  o.options === s[at + 6]

const snapshotTcp = (o: typeof TcpHeader.Type, s: Array<unknown>, at: number): void => {
  s[at + 0] = o.seq
  s[at + 1] = o.ack
  s[at + 2] = o.window
  s[at + 3] = o.reserved
  s[at + 4] = o.flags === undefined ? undefined : [...o.flags]
  s[at + 5] = o.urgentPointer
  s[at + 6] = o.options
}

const sameIcmp = (o: typeof IcmpHeader.Type, s: ReadonlyArray<unknown>, at: number): boolean =>
  o.type === s[at + 0] &&
  o.code === s[at + 1] &&
  o.id === s[at + 2] &&
  o.seq === s[at + 3] &&
  o.parameter === s[at + 4] &&
  o.gateway === s[at + 5] &&
  o.mtu === s[at + 6]

const snapshotIcmp = (o: typeof IcmpHeader.Type, s: Array<unknown>, at: number): void => {
  s[at + 0] = o.type
  s[at + 1] = o.code
  s[at + 2] = o.id
  s[at + 3] = o.seq
  s[at + 4] = o.parameter
  s[at + 5] = o.gateway
  s[at + 6] = o.mtu
}

const plainEmpty = {}
/** Whether plain objects inherit enumerable keys (someone added one to Object.prototype): for-in would see them. */
const hasInheritedKeys = (): boolean => {
  for (const _ in plainEmpty) return true
  return false
}

let timestampSecond = Number.NaN
let timestampPrefix: Uint8Array = new Uint8Array(0)

const lineWriter = new JsonLineWriter()

/** One JSON object per line, the DESIGN.md "Output" shape (also what `droptailer parse` prints). */
export const formatJsonLine = (event: DropEvent): string => {
  lineWriter.reset()
  lineWriter.event(event)
  const text = lineWriter.text()
  // don't keep a huge line's buffer
  if (lineWriter.buf.length > 1024 * 1024) lineWriter.buf = allocate(64 * 1024)
  return text
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n))

/** Go's `time.Unix(seconds, 0).UTC().String()`: `2026-11-27 14:02:10 +0000 UTC`. */
export const goTimeString = (epochSeconds: number): string => {
  const d = new Date(epochSeconds * 1000)
  const year = d.getUTCFullYear()
  const y = year >= 0 && year < 10000 ? String(year).padStart(4, "0") : String(year)
  return `${y}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${
    pad2(d.getUTCMinutes())
  }:${pad2(d.getUTCSeconds())} +0000 UTC`
}

const hex = "0123456789abcdef"

/**
 * A string as Go's encoding/json writes it (`Marshal`, so with HTML escaping): `<`, `>`, `&`,
 * U+2028 and U+2029 as `\u....`, control characters as `\n`/`\r`/`\t`/`\b`/`\f` (Go ≥ 1.22) or
 * `\u00XX`, invalid UTF-8 (here: lone surrogates) as `\ufffd`.
 */
export const goJsonString = (s: string): string => {
  let out = "\""
  let from = 0
  const n = s.length
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    let escape: string | undefined
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26) {
      switch (c) {
        case 0x22:
          escape = "\\\""
          break
        case 0x5c:
          escape = "\\\\"
          break
        case 0x0a:
          escape = "\\n"
          break
        case 0x0d:
          escape = "\\r"
          break
        case 0x09:
          escape = "\\t"
          break
        case 0x08:
          escape = "\\b"
          break
        case 0x0c:
          escape = "\\f"
          break
        default:
          escape = `\\u00${hex[c >> 4]}${hex[c & 15]}`
      }
    } else if (c === 0x2028 || c === 0x2029) {
      escape = c === 0x2028 ? "\\u2028" : "\\u2029"
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++ // a valid pair: literal
        continue
      }
      escape = "\\ufffd"
    }
    if (escape !== undefined) {
      out += s.slice(from, i) + escape
      from = i + 1
    }
  }
  return out + s.slice(from) + "\""
}

/** Go sorts map keys by their UTF-8 bytes, which is code point order (not UTF-16 order). */
const compareCodePoints = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(i)!
    if (x !== y) return x - y
    if (x > 0xffff) i++
  }
  return a.length - b.length
}

/** Go's `json.Marshal(map[string]string)`: sorted keys, no spaces. */
export const goJsonMap = (map: Readonly<Record<string, string>>): string => {
  const keys = Object.keys(map).sort(compareCodePoints)
  let out = "{"
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    if (i > 0) out += ","
    out += `${goJsonString(key)}:${goJsonString(map[key] ?? "")}`
  }
  return `${out}}`
}

/** The Go server's line, byte for byte: `<Go time.String() of the second> <sorted JSON of fields + timestamp>`. */
export const formatUpstreamLine = (event: DropEvent): string => {
  const ts = goTimeString(Math.floor(event.timestamp / 1_000_000))
  return `${ts} ${goJsonMap({ ...event.fields, timestamp: ts })}`
}

export const OutputFormat = ["json", "upstream"] as const
export type OutputFormat = (typeof OutputFormat)[number]

/** The line for a format (without the newline). */
export const formatLine = (format: OutputFormat, event: DropEvent): string =>
  format === "json" ? formatJsonLine(event) : formatUpstreamLine(event)
