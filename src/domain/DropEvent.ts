/**
 * The event droptailer ships, enriches and prints: one firewall log line, typed.
 *
 * The in-memory form keeps the timestamp as epoch microseconds (a number: exact up to year 2255);
 * the JSON form (what `droptailer parse` and the server print) carries it as an RFC 3339 UTC
 * string with six fractional digits. Everything else encodes as itself.
 */
import { Schema, SchemaGetter } from "effect"

// The date-and-second part of the last timestamp formatted: events come in bursts within one
// second, and `Date#toISOString` is the costliest step of a JSON line.
let cachedSecond = Number.NaN
let cachedPrefix = ""

/** Epoch microseconds <-> `2026-11-27T14:02:10.123456Z`. */
export const formatTimestamp = (micros: number): string => {
  const second = Math.floor(micros / 1_000_000)
  if (second !== cachedSecond) {
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20) // 2026-11-27T14:02:10.
    cachedSecond = second
  }
  return `${cachedPrefix}${String(micros - second * 1_000_000).padStart(6, "0")}Z`
}

const timestampPattern = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/

/** Parses an RFC 3339 UTC timestamp into epoch microseconds; `undefined` when it is not one. */
export const parseTimestamp = (text: string): number | undefined => {
  const match = timestampPattern.exec(text)
  if (match === null) return undefined
  const seconds = Date.parse(`${match[1]}Z`)
  if (Number.isNaN(seconds)) return undefined
  const micros = Number((match[2] ?? "").padEnd(6, "0").slice(0, 6))
  return seconds * 1000 + micros
}

export const TimestampMicros = Schema.String.check(
  Schema.makeFilter((s: string) => parseTimestamp(s) !== undefined || "an RFC 3339 UTC timestamp")
).pipe(
  Schema.decodeTo(Schema.Int, {
    decode: SchemaGetter.transform((s: string) => parseTimestamp(s)!),
    encode: SchemaGetter.transform((n: number) => formatTimestamp(n))
  })
)

export const Action = Schema.Literals(["drop", "accept"])
export type Action = typeof Action.Type

/** What the cluster knows about an IP (filled in by the server's enricher). */
export const EndpointKind = Schema.Literals(["pod", "service", "node", "external"])
export type EndpointKind = typeof EndpointKind.Type

export const WorkloadRef = Schema.Struct({ kind: Schema.String, name: Schema.String })
export type WorkloadRef = typeof WorkloadRef.Type

export const Endpoint = Schema.Struct({
  /** Canonical: dotted quad, or RFC 5952 for IPv6. Absent for lines without addresses. */
  ip: Schema.optionalKey(Schema.String),
  port: Schema.optionalKey(Schema.Int),
  kind: Schema.optionalKey(EndpointKind),
  namespace: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String),
  workload: Schema.optionalKey(WorkloadRef),
  node: Schema.optionalKey(Schema.String)
})
export type Endpoint = typeof Endpoint.Type

/** Link layer: `MAC=` split into destination, source and EtherType (`08:00` → `0x0800`). */
export const MacHeader = Schema.Struct({
  dst: Schema.optionalKey(Schema.String),
  src: Schema.optionalKey(Schema.String),
  ethertype: Schema.optionalKey(Schema.String),
  /** The whole `MAC=` value when it is not 14 bytes (other link types). */
  raw: Schema.optionalKey(Schema.String)
})

/** Network layer (IPv4 or IPv6). */
export const IpHeader = Schema.Struct({
  version: Schema.Literals([4, 6]),
  length: Schema.optionalKey(Schema.Int),
  ttl: Schema.optionalKey(Schema.Int), // IPv4 TTL or IPv6 HOPLIMIT
  tos: Schema.optionalKey(Schema.String), // IPv4 TOS, as logged (0x..)
  precedence: Schema.optionalKey(Schema.String), // IPv4 PREC
  id: Schema.optionalKey(Schema.Int), // IPv4 ID, IPv6 fragment identification (ID:hex)
  /**
   * In this order: CE, DF, MF (IPv4; MF also for an IPv6 fragment header with more to come),
   * then FRAG, AH, ESP for IPv6 extension headers the kernel logged.
   */
  flags: Schema.optionalKey(Schema.Array(Schema.String)),
  /** As logged: IPv4 `FRAG:N` in 8-byte units, IPv6 `FRAG:N` in bytes. */
  fragmentOffset: Schema.optionalKey(Schema.Int),
  options: Schema.optionalKey(Schema.String), // OPT (...) hex
  trafficClass: Schema.optionalKey(Schema.String), // IPv6 TC
  flowLabel: Schema.optionalKey(Schema.String) // IPv6 FLOWLBL
})

export const TcpHeader = Schema.Struct({
  seq: Schema.optionalKey(Schema.Number),
  ack: Schema.optionalKey(Schema.Number),
  window: Schema.optionalKey(Schema.Int),
  reserved: Schema.optionalKey(Schema.String),
  /** CWR ECE URG ACK PSH RST SYN FIN, in the kernel's order. */
  flags: Schema.Array(Schema.String),
  urgentPointer: Schema.optionalKey(Schema.Int),
  options: Schema.optionalKey(Schema.String)
})

export const UdpHeader = Schema.Struct({
  /** UDP/UDPLITE's own LEN (the second LEN on the line). */
  length: Schema.optionalKey(Schema.Int)
})

export const IcmpHeader = Schema.Struct({
  type: Schema.optionalKey(Schema.Int),
  code: Schema.optionalKey(Schema.Int),
  id: Schema.optionalKey(Schema.Int),
  seq: Schema.optionalKey(Schema.Int),
  parameter: Schema.optionalKey(Schema.Int),
  gateway: Schema.optionalKey(Schema.String),
  mtu: Schema.optionalKey(Schema.Int)
})

/** The packet quoted inside an ICMP error (`[SRC=... DST=... ]`); never overwrites the outer one. */
export const InnerPacket = Schema.Struct({
  protocol: Schema.optionalKey(Schema.String),
  src: Schema.optionalKey(Endpoint),
  dst: Schema.optionalKey(Endpoint),
  ip: Schema.optionalKey(IpHeader),
  tcp: Schema.optionalKey(TcpHeader),
  udp: Schema.optionalKey(UdpHeader),
  icmp: Schema.optionalKey(IcmpHeader),
  incomplete: Schema.optionalKey(Schema.Int)
})

export const ArpPacket = Schema.Struct({
  htype: Schema.optionalKey(Schema.Int),
  ptype: Schema.optionalKey(Schema.String),
  opcode: Schema.optionalKey(Schema.Int),
  macSrc: Schema.optionalKey(Schema.String),
  macDst: Schema.optionalKey(Schema.String)
})

/** A plain-object schema (no class): the parser builds millions of these a second. */
export const DropEvent = Schema.Struct({
  timestamp: TimestampMicros,
  action: Action,
  /** The firewall host the line came from (journal `_HOSTNAME`, or the client's origin host). */
  host: Schema.String,
  /**
   * TCP, UDP, UDPLITE, ICMP, ICMPv6, ESP, AH, ARP, or the number the kernel logged (SCTP is 132);
   * "" for a line without PROTO (a frame of another family: only MAC).
   */
  protocol: Schema.String,
  src: Endpoint,
  dst: Endpoint,
  in: Schema.String,
  out: Schema.String,
  physin: Schema.optionalKey(Schema.String),
  physout: Schema.optionalKey(Schema.String),
  mac: Schema.optionalKey(MacHeader),
  ip: Schema.optionalKey(IpHeader),
  tcp: Schema.optionalKey(TcpHeader),
  udp: Schema.optionalKey(UdpHeader),
  icmp: Schema.optionalKey(IcmpHeader),
  inner: Schema.optionalKey(InnerPacket),
  arp: Schema.optionalKey(ArpPacket),
  spi: Schema.optionalKey(Schema.Number),
  mark: Schema.optionalKey(Schema.Number),
  uid: Schema.optionalKey(Schema.Int),
  gid: Schema.optionalKey(Schema.Int),
  /** `INCOMPLETE [N bytes]`: the logged packet was truncated. */
  incomplete: Schema.optionalKey(Schema.Int),
  /** Tokens the parser did not recognise, in order, kept verbatim. */
  unknown: Schema.optionalKey(Schema.Array(Schema.String)),
  /** The upstream-compatible wire map: KEY=VALUE pairs (bare flags → ""), plus ACTION. */
  fields: Schema.Record(Schema.String, Schema.String)
}).annotate({ identifier: "DropEvent" })
export type DropEvent = typeof DropEvent.Type
export type DropEventJson = typeof DropEvent.Encoded

export const encodeDropEventJson = Schema.encodeSync(DropEvent)
export const decodeDropEventJson = Schema.decodeUnknownSync(DropEvent)
