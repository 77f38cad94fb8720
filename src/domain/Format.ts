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
// out absent optional keys. Going through Schema.encode costs ~10 µs an event; this encoder builds
// the same object with one object literal per struct, every key in Schema order, absent ones
// `undefined` (which JSON.stringify leaves out): one hidden class per struct, no loops, no keyed
// access, so V8's JSON.stringify takes its fast path. Tests check it against Schema.encode, with
// every key of every struct set.

const workloadJson = (w: typeof WorkloadRef.Type) => ({ kind: w.kind, name: w.name })

const endpointJson = (e: typeof Endpoint.Type) => ({
  ip: e.ip,
  port: e.port,
  kind: e.kind,
  namespace: e.namespace,
  name: e.name,
  workload: e.workload === undefined ? undefined : workloadJson(e.workload),
  node: e.node
})

const macJson = (m: typeof MacHeader.Type) => ({ dst: m.dst, src: m.src, ethertype: m.ethertype, raw: m.raw })

const ipJson = (ip: typeof IpHeader.Type) => ({
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

const tcpJson = (tcp: typeof TcpHeader.Type) => ({
  seq: tcp.seq,
  ack: tcp.ack,
  window: tcp.window,
  reserved: tcp.reserved,
  flags: tcp.flags,
  urgentPointer: tcp.urgentPointer,
  options: tcp.options
})

const udpJson = (udp: typeof UdpHeader.Type) => ({ length: udp.length })

const icmpJson = (icmp: typeof IcmpHeader.Type) => ({
  type: icmp.type,
  code: icmp.code,
  id: icmp.id,
  seq: icmp.seq,
  parameter: icmp.parameter,
  gateway: icmp.gateway,
  mtu: icmp.mtu
})

const innerJson = (inner: typeof InnerPacket.Type) => ({
  protocol: inner.protocol,
  src: inner.src === undefined ? undefined : endpointJson(inner.src),
  dst: inner.dst === undefined ? undefined : endpointJson(inner.dst),
  ip: inner.ip === undefined ? undefined : ipJson(inner.ip),
  tcp: inner.tcp === undefined ? undefined : tcpJson(inner.tcp),
  udp: inner.udp === undefined ? undefined : udpJson(inner.udp),
  icmp: inner.icmp === undefined ? undefined : icmpJson(inner.icmp),
  incomplete: inner.incomplete
})

const arpJson = (arp: typeof ArpPacket.Type) => ({
  htype: arp.htype,
  ptype: arp.ptype,
  opcode: arp.opcode,
  macSrc: arp.macSrc,
  macDst: arp.macDst
})

/** The Schema's JSON form of an event as a plain object (undefined = key left out). */
const eventJson = (e: DropEvent) => ({
  timestamp: e.timestamp === undefined ? undefined : formatTimestamp(e.timestamp),
  action: e.action,
  host: e.host,
  protocol: e.protocol,
  src: e.src === undefined ? undefined : endpointJson(e.src),
  dst: e.dst === undefined ? undefined : endpointJson(e.dst),
  in: e.in,
  out: e.out,
  physin: e.physin,
  physout: e.physout,
  mac: e.mac === undefined ? undefined : macJson(e.mac),
  ip: e.ip === undefined ? undefined : ipJson(e.ip),
  tcp: e.tcp === undefined ? undefined : tcpJson(e.tcp),
  udp: e.udp === undefined ? undefined : udpJson(e.udp),
  icmp: e.icmp === undefined ? undefined : icmpJson(e.icmp),
  inner: e.inner === undefined ? undefined : innerJson(e.inner),
  arp: e.arp === undefined ? undefined : arpJson(e.arp),
  spi: e.spi,
  mark: e.mark,
  uid: e.uid,
  gid: e.gid,
  incomplete: e.incomplete,
  unknown: e.unknown,
  fields: e.fields
})

/** One JSON object per line, the DESIGN.md "Output" shape (also what `droptailer parse` prints). */
export const formatJsonLine = (event: DropEvent): string => JSON.stringify(eventJson(event))

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
