/**
 * Classification and parsing of netfilter log lines (pure, no I/O).
 *
 * The format is what the kernel's nf_log_syslog.c prints for nftables `log` and iptables `LOG`:
 * space-separated `KEY=VALUE` tokens and bare flags, in a fixed order, with two exceptions to
 * "one token, one fact": `OPT (...)` groups and the `[...]` inner packet of ICMP errors, whose
 * keys repeat the outer packet's. The parser is a hand-written tokenizer (no regex, no Schema)
 * over the line's codes in a typed array (see `codesOf`): it runs for every kernel line the client
 * reads, so it has to do ~1M lines/s. The usual head of a line, and the usual TCP, UDP or ICMP
 * rest after it (ICMP: echo, or an error with its quoted packet), are found by straight-line code
 * first (`readHead`, `readTail`, `readIcmpTail`, `readInner`: templates of keys read by one small
 * loop, `readFields`, 4 codes at a time over zeros after the line), and such a line's event is made
 * straight from where its values are (`fastEvent`, `icmpEvent`: no token loop, no packet); common values
 * are shared constants instead of slices (`decimalText` and friends), and recent MAC headers
 * shared texts (`macSlotOf`). All of it gives exactly what the token loop gives.
 */
import type { Action, DropEvent } from "./DropEvent.ts"
import { canonicalIp, canonicalKernelIpv6At } from "./Ip.ts"

export { canonicalIp } from "./Ip.ts"

export interface Prefixes {
  readonly drop: ReadonlyArray<string>
  readonly accept: ReadonlyArray<string>
}

export const defaultDropPrefixes = ["nftables-metal-dropped: ", "nftables-firewall-dropped: "] as const
export const defaultAcceptPrefixes = ["nftables-metal-accepted: ", "nftables-firewall-accepted: "] as const
export const defaultPrefixes: Prefixes = { drop: defaultDropPrefixes, accept: defaultAcceptPrefixes }

/** The env format of DROPTAILER_PREFIXES_OF_DROPS / _ACCEPTS: comma-separated, as upstream. */
export const parsePrefixList = (value: string): Array<string> => value.split(",").filter((p) => p.length > 0)

export interface Classified {
  readonly action: Action
  /** The message after the prefix: the KEY=VALUE part. */
  readonly body: string
}

/** A drop prefix makes a drop, an accept prefix an accept; anything else is not ours (undefined). */
export const classify = (message: string, prefixes: Prefixes): Classified | undefined => {
  for (const p of prefixes.drop) if (message.startsWith(p)) return { action: "drop", body: message.slice(p.length) }
  for (const p of prefixes.accept) if (message.startsWith(p)) return { action: "accept", body: message.slice(p.length) }
  return undefined
}

/** Where a line came from: the journal entry's realtime clock (epoch µs) and host. */
export interface LineContext {
  readonly timestamp: number
  readonly host: string
}

export type ParseResult =
  | { readonly _tag: "Event"; readonly event: DropEvent }
  /** Not a drop or accept line (no prefix matched): not an error, the pipeline moves past it. */
  | { readonly _tag: "Skipped"; readonly reason: string }
  /** Had a prefix but could not be made into an event (binary garbage, oversized, ...). */
  | { readonly _tag: "Malformed"; readonly reason: string }

/** Longest message the parser looks at; the kernel's own lines stay under 1 KiB. */
export const maxLineLength = 64 * 1024

// ---------------------------------------------------------------------------------------------
// Numbers: the kernel prints decimal (`%u`) and hex (`0x%x`, `%08x`); -1 means "absent/invalid".

const parseDecimal = (s: string): number => {
  const n = s.length
  if (n === 0 || n > 15) return -1
  let v = 0
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

const parseHex = (s: string, from: number): number => {
  const n = s.length
  if (n <= from || n - from > 13) return -1
  let v = 0
  for (let i = from; i < n; i++) {
    const c = s.charCodeAt(i)
    const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1
    if (h < 0) return -1
    v = v * 16 + h
  }
  return v
}

/** `parseDecimal` of `b[from..to)` (the line's codes, see `codesOf`): no substring. */
const decimalAt = (b: Uint8Array, from: number, to: number): number => {
  const n = to - from
  if (n <= 0 || n > 15) return -1
  let v = 0
  for (let i = from; i < to; i++) {
    const c = b[i]! - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/** `parseHex` of `b[from..to)`. */
const hexAt = (b: Uint8Array, from: number, to: number): number => {
  if (to <= from || to - from > 13) return -1
  let v = 0
  for (let i = from; i < to; i++) {
    const c = b[i]!
    const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1
    if (h < 0) return -1
    v = v * 16 + h
  }
  return v
}

/** Whether `b[from..to)` has a `:` (an IPv6 address, not IPv4). */
const hasColon = (b: Uint8Array, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (b[i] === 58) return true
  return false
}

/** `hasColon` for the codes in `v` (see `viewOf`), 4 at a time. */
const colonIn = (v: DataView, from: number, to: number): boolean => {
  for (let i = from; i < to; i += 4) {
    const x = v.getInt32(i, true) ^ 0x3a3a3a3a
    // 0x80 in each byte that was a colon (exactly: no carry between bytes)
    let colons = ~(((x & 0x7f7f7f7f) + 0x7f7f7f7f) | x) & 0x80808080
    if (to - i < 4) colons &= (1 << (8 * (to - i))) - 1 // (the codes after `to` left out)
    if (colons !== 0) return true
  }
  return false
}

/** `canonicalIp(value)` of a value with a colon (`text[from..to)`, codes in `b`): the kernel's form read from the codes. */
const ipv6Of = (value: string, text: string, b: Uint8Array, from: number, to: number): string =>
  (to - from === 39 ? canonicalKernelIpv6At(text, b, from) : undefined) ?? canonicalIp(value)

/** `0x2a` → 42 (MARK, SPI); -1 when not hex. */
const hex0xAt = (b: Uint8Array, from: number, to: number): number =>
  to - from > 2 && b[from] === 48 && b[from + 1] === 120 ? hexAt(b, from + 2, to) : -1

// ---------------------------------------------------------------------------------------------
// One packet's worth of facts. The outer packet and the quoted inner packet of an ICMP error each
// get one (one class with every field, so V8 keeps one hidden class and monomorphic access).

const IP_CE = 1
const IP_DF = 2
const IP_MF = 4
const IP_FRAG = 8
const IP_AH = 16
const IP_ESP = 32
const ipFlagNames = ["CE", "DF", "MF", "FRAG", "AH", "ESP"] as const

/** In the kernel's print order. */
const tcpFlagNames = ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"] as const
const TCP_SYN = 1 << 7 // a connection attempt: most drops

class Packet {
  proto: string | undefined = undefined
  src: string | undefined = undefined
  dst: string | undefined = undefined
  spt = -1
  dpt = -1
  version = 0
  ipLength = -1
  tos: string | undefined = undefined
  prec: string | undefined = undefined
  ttl = -1
  ipId = -1
  ipFlags = 0
  fragOffset = -1
  ipOptions: string | undefined = undefined
  tc: string | undefined = undefined
  flowLabel: string | undefined = undefined
  seq = -1
  ack = -1
  window = -1
  res: string | undefined = undefined
  tcpFlags = 0
  urgp = -1
  tcpOptions: string | undefined = undefined
  udpLength = -1
  icmpType = -1
  icmpCode = -1
  icmpId = -1
  icmpSeq = -1
  parameter = -1
  gateway: string | undefined = undefined
  mtu = -1
  spi = -1
  incomplete = -1
  // outer packet only
  inIface: string | undefined = undefined
  outIface: string | undefined = undefined
  physin: string | undefined = undefined
  physout: string | undefined = undefined
  mac: string | undefined = undefined
  /** `0x%04x` of MAC's EtherType when it is a common one (shared text, see `applyKv`). */
  macEtherType: string | undefined = undefined
  macSrc: string | undefined = undefined
  macDst: string | undefined = undefined
  macProto: string | undefined = undefined
  /** The slot of `macSlotOf` that holds `mac` and its parts, -1: none. */
  macSlot = -1
  arp = false
  htype = -1
  ptype: string | undefined = undefined
  opcode = -1
  arpMacSrc: string | undefined = undefined
  arpMacDst: string | undefined = undefined
  mark = -1
  uid = -1
  gid = -1
  unknown: Array<string> | undefined = undefined
  inner: Packet | undefined = undefined
}

const addUnknown = (outer: Packet, token: string): void => {
  if (outer.unknown === undefined) outer.unknown = [token]
  else outer.unknown.push(token)
}

const isIcmp = (proto: string | undefined): boolean => proto === "ICMP" || proto === "ICMPv6"
const isUdp = (proto: string | undefined): boolean => proto === "UDP" || proto === "UDPLITE"

// ---------------------------------------------------------------------------------------------
// Token ids. Keys and bare words the kernel prints get a small number (see `tokenId`): no
// substring for the key, no string switch, and the wire map is written with the constant
// (internalized) name. The `switch`es on ids use the numbers as literals (`case 9 /* SRC */:`):
// V8 compiles a switch whose labels are all small integer literals into a jump table, one with
// named constants into a chain of comparisons (tests check the literals against `tokenNames`).

// An id is the name's index in `tokenNames`: keys (`KEY=VALUE`) 1-41, bare words 42-57. Named
// here are the ids code uses outside a switch.
const K_ACK = 23 // also the bare ACK flag: one wire key
const K_IPDST = 41 // the last key
const W_AE = 45
const W_PSH = 49
const W_FIN = 52
const W_INCOMPLETE = 54
const W_OPT = 55

const tokenNames = [
  // 0: not a known name; 1-41: keys
  "", "IN", "OUT", "PHYSIN", "PHYSOUT", "MAC", "MACSRC", "MACDST", "MACPROTO", "SRC", "DST", "LEN", "TOS", "PREC",
  "TTL", "ID", "TC", "HOPLIMIT", "FLOWLBL", "PROTO", "SPT", "DPT", "SEQ", "ACK", "WINDOW", "RES", "URGP", "TYPE",
  "CODE", "PARAMETER", "POINTER", "GATEWAY", "MTU", "SPI", "UID", "GID", "MARK", "HTYPE", "PTYPE", "OPCODE",
  "IPSRC", "IPDST",
  // 42-57: bare words
  "CE", "DF", "MF", "AE", "CWR", "ECE", "URG", "PSH", "RST", "SYN", "FIN", "ARP", "INCOMPLETE",
  "OPT", "AH", "ESP"
] as const
const tokenIds: ReadonlyMap<string, number> = new Map(tokenNames.map((name, id) => [name, id]))

// Token lookup: an open-addressing table keyed by a token's length and its first (up to) four
// codes packed into one integer, built from `tokenNames` at load (so it cannot drift from them);
// names longer than four characters compare their tail. One multiply, one or two probes: no
// substring, no string switch, no chain of comparisons.

const slotBits = 8
const slotMask = (1 << slotBits) - 1
const slotKey = new Int32Array(1 << slotBits)
const slotLength = new Uint8Array(1 << slotBits) // 0: empty
const slotId = new Uint8Array(1 << slotBits)
/** Every name's codes, back to back; name `id` starts at `nameStart[id]`. */
const nameCodes = new Uint8Array(tokenNames.reduce((n, name) => n + name.length, 0))
const nameStart = new Uint16Array(tokenNames.length)

const slotOf = (packed: number, length: number): number => Math.imul(packed ^ (length << 26), 0x9e3779b1) >>> (32 - slotBits)

{
  let at = 0
  for (let id = 1; id < tokenNames.length; id++) {
    const name = tokenNames[id]!
    nameStart[id] = at
    let packed = 0
    for (let i = 0; i < name.length; i++) {
      nameCodes[at++] = name.charCodeAt(i)
      if (i < 4) packed = (packed << 8) | name.charCodeAt(i)
    }
    let h = slotOf(packed, name.length)
    while (slotLength[h] !== 0) h = (h + 1) & slotMask
    slotKey[h] = packed
    slotLength[h] = name.length
    slotId[h] = id
  }
}

/**
 * The id of `b[from..from+len)` (the line's codes) when it is a key/word the kernel prints, else
 * 0.
 */
const tokenId = (b: Uint8Array, from: number, len: number): number => {
  if (len < 2 || len > 10) return 0
  let packed = (b[from]! << 8) | b[from + 1]!
  if (len > 2) {
    packed = (packed << 8) | b[from + 2]!
    if (len > 3) packed = (packed << 8) | b[from + 3]!
  }
  for (let h = slotOf(packed, len);; h = (h + 1) & slotMask) {
    const length = slotLength[h]!
    if (length === 0) return 0
    if (length === len && slotKey[h] === packed) {
      const id = slotId[h]!
      for (let i = 4, at = nameStart[id]! + 4; i < len; i++, at++) if (b[from + i] !== nameCodes[at]) return 0
      return id
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Value texts. Every value lands in the wire map as a string, and a slice costs an allocation; the
// commonest values (small decimals, `0x%02X` bytes, protocol names) are shared constants instead.
// The constant is returned only when it is exactly the logged text, so nothing changes but the
// allocation.

/** `String(n)` for small n: lengths, TTLs, well-known ports, ICMP types and codes, URGP=0. */
const smallDecimals: ReadonlyArray<string> = Array.from({ length: 1024 }, (_, n) => String(n))
/** `0x%02X`: TOS, PREC (and RES, which is 0x00 in practice). */
const hexBytes: ReadonlyArray<string> = Array.from({ length: 256 }, (_, n) => `0x${n.toString(16).toUpperCase().padStart(2, "0")}`)

/** `text[from..to)`, without the builtin call for the empty value (`OUT=` and friends). */
const textOf = (text: string, from: number, to: number): string => (from === to ? "" : text.slice(from, to))

/** The text of a decimal value `v` parsed from `b[from..to)` (-1: not a decimal). */
const decimalText = (text: string, b: Uint8Array, from: number, to: number, v: number): string =>
  // no leading zero (or just "0"): the text is exactly String(v)
  v >= 0 && v < 1024 && (b[from] !== 48 || to - from === 1) ? smallDecimals[v]! : textOf(text, from, to)

/** Per code: 0-15 for `0-9A-F` (the kernel's %02X), else -1. */
const upperHexDigits = Int8Array.from({ length: 256 }, (_, c) => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : -1))

const hexByteText = (text: string, b: Uint8Array, from: number, to: number): string => {
  if (to - from === 4 && b[from] === 48 && b[from + 1] === 120) {
    const high = upperHexDigits[b[from + 2]!]!
    const low = upperHexDigits[b[from + 3]!]!
    if ((high | low) >= 0) return hexBytes[(high << 4) | low]!
  }
  return textOf(text, from, to)
}

/** PROTO's value: the names the kernel prints as constants (also makes `proto === "TCP"` a pointer compare). */
const protoText = (text: string, b: Uint8Array, from: number, to: number): string => {
  const c0 = b[from]
  switch (to - from) {
    case 3:
      if (c0 === 84 && b[from + 1] === 67 && b[from + 2] === 80) return "TCP"
      if (c0 === 85 && b[from + 1] === 68 && b[from + 2] === 80) return "UDP"
      break
    case 4:
      if (c0 === 73 && b[from + 1] === 67 && b[from + 2] === 77 && b[from + 3] === 80) return "ICMP"
      break
    case 6:
      if (c0 === 73 && b[from + 4] === 118 && b[from + 5] === 54 && text.startsWith("ICMPv6", from)) return "ICMPv6"
      break
  }
  return textOf(text, from, to)
}

/** Ethertypes of the MAC header as `0x%04x`, for the common ones; undefined for others. */
const etherTypeText = (b: Uint8Array, at: number): string | undefined => {
  const c0 = b[at]
  const c1 = b[at + 1]
  const c3 = b[at + 3]
  const c4 = b[at + 4]
  if (c0 === 48 && c1 === 56 && c3 === 48) {
    if (c4 === 48) return "0x0800" // IPv4
    if (c4 === 54) return "0x0806" // ARP
  } else if (c0 === 56 && c1 === 54 && c3 === 100 && c4 === 100) return "0x86dd" // IPv6
  return undefined
}

/**
 * A `KEY=VALUE` token with a known key into packet `p` (`outer` for outer-only keys); the value is
 * `text[from..to)`, also in `b[from..to)` (codes, see `codesOf`), where numbers are read. Returns
 * the value's text, or undefined when the key is not one the kernel prints at that place.
 */
const applyKv = (
  outer: Packet,
  p: Packet,
  id: number,
  text: string,
  b: Uint8Array,
  from: number,
  to: number
): string | undefined => {
  switch (id) {
    case 9 /* SRC */: {
      const value = textOf(text, from, to)
      const v6 = hasColon(b, from, to)
      p.src = v6 ? ipv6Of(value, text, b, from, to) : value
      if (p.version === 0) p.version = v6 ? 6 : 4
      return value
    }
    case 10 /* DST */: {
      const value = textOf(text, from, to)
      p.dst = hasColon(b, from, to) ? ipv6Of(value, text, b, from, to) : value
      return value
    }
    case 11 /* LEN */: {
      // first LEN is the IP header's; after PROTO=UDP/UDPLITE it is the UDP header's
      const v = decimalAt(b, from, to)
      if (p.proto === undefined) p.ipLength = v
      else if (isUdp(p.proto)) p.udpLength = v
      else return undefined
      return decimalText(text, b, from, to, v)
    }
    case 12 /* TOS */:
      return (p.tos = hexByteText(text, b, from, to))
    case 13 /* PREC */:
      return (p.prec = hexByteText(text, b, from, to))
    case 14 /* TTL */:
      return decimalText(text, b, from, to, (p.ttl = decimalAt(b, from, to)))
    case 17 /* HOPLIMIT */:
      p.version = 6
      return decimalText(text, b, from, to, (p.ttl = decimalAt(b, from, to)))
    case 15 /* ID */: {
      // first ID is the IPv4 header's; after PROTO=ICMP it is the echo identifier
      const v = decimalAt(b, from, to)
      if (p.proto === undefined) p.ipId = v
      else if (isIcmp(p.proto)) p.icmpId = v
      else return undefined
      return decimalText(text, b, from, to, v)
    }
    case 16 /* TC */: {
      p.version = 6
      return (p.tc = decimalText(text, b, from, to, decimalAt(b, from, to)))
    }
    case 18 /* FLOWLBL */:
      p.version = 6
      return (p.flowLabel = textOf(text, from, to))
    case 19 /* PROTO */:
      return (p.proto = protoText(text, b, from, to))
    case 20 /* SPT */:
      return decimalText(text, b, from, to, (p.spt = decimalAt(b, from, to)))
    case 21 /* DPT */:
      return decimalText(text, b, from, to, (p.dpt = decimalAt(b, from, to)))
    case 22 /* SEQ */: {
      const v = decimalAt(b, from, to)
      if (isIcmp(p.proto)) p.icmpSeq = v
      else p.seq = v
      return decimalText(text, b, from, to, v)
    }
    case 23 /* ACK */:
      return decimalText(text, b, from, to, (p.ack = decimalAt(b, from, to)))
    case 24 /* WINDOW */:
      return decimalText(text, b, from, to, (p.window = decimalAt(b, from, to)))
    case 25 /* RES */:
      return (p.res = hexByteText(text, b, from, to))
    case 26 /* URGP */:
      return decimalText(text, b, from, to, (p.urgp = decimalAt(b, from, to)))
    case 27 /* TYPE */:
      return decimalText(text, b, from, to, (p.icmpType = decimalAt(b, from, to)))
    case 28 /* CODE */:
      return decimalText(text, b, from, to, (p.icmpCode = decimalAt(b, from, to)))
    case 29 /* PARAMETER */:
      return decimalText(text, b, from, to, (p.parameter = decimalAt(b, from, to)))
    case 30 /* POINTER */: // ICMPv6 parameter problem, %08x
      p.parameter = hexAt(b, from, to)
      return textOf(text, from, to)
    case 31 /* GATEWAY */:
      return (p.gateway = textOf(text, from, to))
    case 32 /* MTU */:
      return decimalText(text, b, from, to, (p.mtu = decimalAt(b, from, to)))
    case 33 /* SPI */:
      p.spi = hex0xAt(b, from, to)
      return textOf(text, from, to)
  }
  if (p !== outer) return undefined
  switch (id) {
    case 1 /* IN */:
      return (p.inIface = textOf(text, from, to))
    case 2 /* OUT */:
      return (p.outIface = textOf(text, from, to))
    case 3 /* PHYSIN */:
      return (p.physin = textOf(text, from, to))
    case 4 /* PHYSOUT */:
      return (p.physout = textOf(text, from, to))
    case 5 /* MAC */:
      // 14 bytes (`dd:dd:dd:dd:dd:dd:ss:ss:ss:ss:ss:ss:tt:tt`): the EtherType's text, shared when common
      p.macEtherType = to - from === 41 ? etherTypeText(b, from + 36) : undefined
      p.macSlot = -1 // (not the head's MAC, if there was one)
      return (p.mac = textOf(text, from, to))
    case 6 /* MACSRC */: { // link layer (`log flags ether`) before ARP, ARP payload after it
      const value = textOf(text, from, to)
      if (p.arp) p.arpMacSrc = value
      else p.macSrc = value
      return value
    }
    case 7 /* MACDST */: {
      const value = textOf(text, from, to)
      if (p.arp) p.arpMacDst = value
      else p.macDst = value
      return value
    }
    case 8 /* MACPROTO */:
      return (p.macProto = textOf(text, from, to))
    case 37 /* HTYPE */:
      return decimalText(text, b, from, to, (p.htype = decimalAt(b, from, to)))
    case 38 /* PTYPE */:
      return (p.ptype = textOf(text, from, to))
    case 39 /* OPCODE */:
      return decimalText(text, b, from, to, (p.opcode = decimalAt(b, from, to)))
    case 40 /* IPSRC */: {
      const value = textOf(text, from, to)
      p.src = canonicalIp(value)
      return value
    }
    case 41 /* IPDST */: {
      const value = textOf(text, from, to)
      p.dst = canonicalIp(value)
      return value
    }
    case 36 /* MARK */:
      p.mark = hex0xAt(b, from, to)
      return textOf(text, from, to)
    case 34 /* UID */:
      return decimalText(text, b, from, to, (p.uid = decimalAt(b, from, to)))
    case 35 /* GID */:
      return decimalText(text, b, from, to, (p.gid = decimalAt(b, from, to)))
  }
  return undefined
}

/** The bit of TCP flag word `id` in `Packet#tcpFlags` (`tcpFlagNames` order), or -1 when it is not one. */
const tcpFlagBit = (id: number): number =>
  id === K_ACK ? 4 : id >= W_AE && id < W_PSH ? id - W_AE : id >= W_PSH && id <= W_FIN ? id - W_AE + 1 : -1

/** A bare word with a known id: IP and TCP flags, `ARP`, IPv6 extension header names. */
const applyWord = (outer: Packet, p: Packet, id: number): boolean => {
  switch (id) {
    case 42 /* CE */:
      p.ipFlags |= IP_CE
      return true
    case 43 /* DF */:
      p.ipFlags |= IP_DF
      return true
    case 44 /* MF */:
    case 54 /* INCOMPLETE */: // IPv6 fragment header with the M bit (the `[N bytes]` form is handled before)
      p.ipFlags |= IP_MF
      return true
    case 56 /* AH */:
      p.ipFlags |= IP_AH
      return true
    case 57 /* ESP */:
      p.ipFlags |= IP_ESP
      return true
    case 53 /* ARP */:
      if (p !== outer) return false
      p.arp = true
      p.proto = "ARP"
      return true
    case 45 /* AE */:
    case 46 /* CWR */:
    case 47 /* ECE */:
    case 48 /* URG */:
    case 23 /* ACK */:
    case 49 /* PSH */:
    case 50 /* RST */:
    case 51 /* SYN */:
    case 52 /* FIN */:
      if (p.proto !== "TCP") return false
      p.tcpFlags |= 1 << tcpFlagBit(id)
      return true
  }
  return false
}

/** Bare words without an id: `FRAG:N` (fragment offset) and `ID:hex` (IPv6 fragment id). */
const applyOtherWord = (p: Packet, token: string): boolean => {
  if (token.startsWith("FRAG:")) {
    p.fragOffset = parseDecimal(token.slice(5))
    if (p.version === 6) p.ipFlags |= IP_FRAG
    return true
  }
  if (token.startsWith("ID:")) {
    p.ipId = parseHex(token, 3)
    return true
  }
  return false
}

/** Go's `map[string]string` assignment for names outside the id table: first value kept, `__proto__`-safe. */
const setOtherField = (fields: Record<string, string>, key: string, value: string): void => {
  if (typeof fields[key] === "string") return
  if (key === "__proto__") Object.defineProperty(fields, key, { value, enumerable: true, writable: true, configurable: true })
  else fields[key] = value
}

// ---------------------------------------------------------------------------------------------
// The scan: one pass over the characters; each token is handled as soon as its end is found.

const S_NONE = 0
const S_OPT = 1 // after `OPT`: `(HEX)` or `(` follows
const S_INCOMPLETE = 2 // after `INCOMPLETE`: `[N` follows, or it was the IPv6 M-bit word
const S_BYTES = 3 // after `INCOMPLETE [N`: `bytes]` follows

class Scan {
  readonly text: string
  readonly outer = new Packet()
  current: Packet
  fields: Record<string, string> = {}
  /** Known names already on the wire map (ids 0-31 and 32-63). */
  seenLow = 0
  seenHigh = 0
  state = S_NONE
  pendingBytes = -1
  error: string | undefined = undefined
  constructor(text: string) {
    this.text = text
    this.current = this.outer
  }
}

/** The wire map for a known name: first value wins, without a lookup. */
const setKnownField = (scan: Scan, id: number, value: string): void => {
  if (id < 32) {
    const bit = 1 << id
    if (scan.seenLow & bit) return
    scan.seenLow |= bit
  } else {
    const bit = 1 << (id - 32)
    if (scan.seenHigh & bit) return
    scan.seenHigh |= bit
  }
  storeKnown(scan.fields, id, value)
}

/**
 * One store site per name: the kernel prints keys in a fixed order, so each site sees one hidden
 * class transition (fast), where a single `fields[name] = value` site would be megamorphic.
 */
const storeKnown = (fields: Record<string, string>, id: number, value: string): void => {
  switch (id) {
    case 1 /* IN */:
      fields.IN = value
      return
    case 2 /* OUT */:
      fields.OUT = value
      return
    case 3 /* PHYSIN */:
      fields.PHYSIN = value
      return
    case 4 /* PHYSOUT */:
      fields.PHYSOUT = value
      return
    case 5 /* MAC */:
      fields.MAC = value
      return
    case 6 /* MACSRC */:
      fields.MACSRC = value
      return
    case 7 /* MACDST */:
      fields.MACDST = value
      return
    case 8 /* MACPROTO */:
      fields.MACPROTO = value
      return
    case 9 /* SRC */:
      fields.SRC = value
      return
    case 10 /* DST */:
      fields.DST = value
      return
    case 11 /* LEN */:
      fields.LEN = value
      return
    case 12 /* TOS */:
      fields.TOS = value
      return
    case 13 /* PREC */:
      fields.PREC = value
      return
    case 14 /* TTL */:
      fields.TTL = value
      return
    case 15 /* ID */:
      fields.ID = value
      return
    case 16 /* TC */:
      fields.TC = value
      return
    case 17 /* HOPLIMIT */:
      fields.HOPLIMIT = value
      return
    case 18 /* FLOWLBL */:
      fields.FLOWLBL = value
      return
    case 19 /* PROTO */:
      fields.PROTO = value
      return
    case 20 /* SPT */:
      fields.SPT = value
      return
    case 21 /* DPT */:
      fields.DPT = value
      return
    case 22 /* SEQ */:
      fields.SEQ = value
      return
    case 23 /* ACK */:
      fields.ACK = value
      return
    case 24 /* WINDOW */:
      fields.WINDOW = value
      return
    case 25 /* RES */:
      fields.RES = value
      return
    case 26 /* URGP */:
      fields.URGP = value
      return
    case 27 /* TYPE */:
      fields.TYPE = value
      return
    case 28 /* CODE */:
      fields.CODE = value
      return
    case 29 /* PARAMETER */:
      fields.PARAMETER = value
      return
    case 30 /* POINTER */:
      fields.POINTER = value
      return
    case 31 /* GATEWAY */:
      fields.GATEWAY = value
      return
    case 32 /* MTU */:
      fields.MTU = value
      return
    case 33 /* SPI */:
      fields.SPI = value
      return
    case 34 /* UID */:
      fields.UID = value
      return
    case 35 /* GID */:
      fields.GID = value
      return
    case 36 /* MARK */:
      fields.MARK = value
      return
    case 37 /* HTYPE */:
      fields.HTYPE = value
      return
    case 38 /* PTYPE */:
      fields.PTYPE = value
      return
    case 39 /* OPCODE */:
      fields.OPCODE = value
      return
    case 40 /* IPSRC */:
      fields.IPSRC = value
      return
    case 41 /* IPDST */:
      fields.IPDST = value
      return
    case 42 /* CE */:
      fields.CE = value
      return
    case 43 /* DF */:
      fields.DF = value
      return
    case 44 /* MF */:
      fields.MF = value
      return
    case 45 /* AE */:
      fields.AE = value
      return
    case 46 /* CWR */:
      fields.CWR = value
      return
    case 47 /* ECE */:
      fields.ECE = value
      return
    case 48 /* URG */:
      fields.URG = value
      return
    case 49 /* PSH */:
      fields.PSH = value
      return
    case 50 /* RST */:
      fields.RST = value
      return
    case 51 /* SYN */:
      fields.SYN = value
      return
    case 52 /* FIN */:
      fields.FIN = value
      return
    case 53 /* ARP */:
      fields.ARP = value
      return
    case 54 /* INCOMPLETE */:
      fields.INCOMPLETE = value
      return
    case 55 /* OPT */:
      fields.OPT = value
      return
    case 56 /* AH */:
      fields.AH = value
      return
    case 57 /* ESP */:
      fields.ESP = value
      return
  }
}

/**
 * A `KEY=VALUE` token into the current packet and (outer packet) the wire map. The scan calls it
 * directly for all but the rare tokens `handleToken` has to look at first.
 */
const keyValue = (scan: Scan, b: Uint8Array, s: number, e: number, eq: number): void => {
  const outer = scan.outer
  const p = scan.current
  const id = tokenId(b, s, eq - s)
  if (id !== 0 && id <= K_IPDST) {
    const known = applyKv(outer, p, id, scan.text, b, eq + 1, e)
    if (known !== undefined) {
      if (p === outer) setKnownField(scan, id, known)
      return
    }
  }
  const value = textOf(scan.text, eq + 1, e)
  if (p === outer) {
    if (id !== 0) setKnownField(scan, id, value)
    else setOtherField(scan.fields, scan.text.slice(s, eq), value)
  }
  addUnknown(outer, scan.text.slice(s, e))
}

/** Any token `b[s..e)` (`eq`: index of its first `=`, or -1): pending state, brackets, words. */
const handleToken = (scan: Scan, b: Uint8Array, s: number, e: number, eq: number): void => {
  const text = scan.text
  const outer = scan.outer
  let p = scan.current
  const first = b[s]!

  // pending context from the previous token
  if (scan.state !== S_NONE) {
    const state = scan.state
    scan.state = S_NONE
    if (state === S_OPT && first === 40 /* ( */) {
      if (e - s === 1) {
        // `OPT ( ... )`: IPv6 extension headers; their words follow one by one
        if (p === outer) setOtherField(scan.fields, "(", "")
        return
      }
      if (b[e - 1] === 41 /* ) */) {
        const options = text.slice(s + 1, e - 1)
        if (p.proto === "TCP") p.tcpOptions = options
        else p.ipOptions = options
        if (p === outer) setOtherField(scan.fields, text.slice(s, e), "")
        return
      }
    } else if (state === S_INCOMPLETE) {
      if (first === 91 /* [ */) {
        scan.pendingBytes = decimalAt(b, s + 1, e)
        scan.state = S_BYTES
        if (p === outer) setOtherField(scan.fields, text.slice(s, e), "")
        return
      }
      p.ipFlags |= IP_MF // it was the IPv6 fragment header's M bit
    } else if (state === S_BYTES) {
      p.incomplete = scan.pendingBytes
      if (text.startsWith("bytes]", s)) {
        if (p === outer) setOtherField(scan.fields, text.slice(s, e), "")
        return
      }
    }
  }

  // `[SRC=...` opens the quoted packet of an ICMP error, `]` closes it; neither reaches the wire map
  if (first === 91 /* [ */ && p === outer && outer.inner === undefined) {
    p = new Packet()
    outer.inner = p
    scan.current = p
    if (e - s > 1) handleToken(scan, b, s + 1, e, eq)
    return
  }
  if (first === 93 /* ] */ && e - s === 1 && p !== outer) {
    scan.current = outer
    return
  }
  if ((first === 41 /* ) */ || first === 40 /* ( */) && e - s === 1) {
    if (p === outer) setOtherField(scan.fields, first === 41 ? ")" : "(", "")
    return
  }

  if (eq > s) {
    keyValue(scan, b, s, e, eq)
    return
  }

  const id = tokenId(b, s, e - s)
  if (id === W_INCOMPLETE) {
    if (p === outer) setKnownField(scan, id, "")
    scan.state = S_INCOMPLETE
    return
  }
  if (id === W_OPT) {
    if (p === outer) setKnownField(scan, id, "")
    scan.state = S_OPT
    return
  }
  if (id !== 0) {
    if (id === K_ACK && p.ack >= 0) {
      // ACK=<n> (with `log flags tcp sequence`) already holds the wire key; the flag stays typed
      applyWord(outer, p, id)
      return
    }
    if (p === outer) setKnownField(scan, id, "")
    if (!applyWord(outer, p, id)) addUnknown(outer, tokenNames[id]!)
    return
  }
  const token = text.slice(s, e)
  if (p === outer) setOtherField(scan.fields, token, "")
  if (!applyOtherWord(p, token)) addUnknown(outer, token)
}

// ---------------------------------------------------------------------------------------------
// Codes: the scan reads the line from a byte array, one byte per UTF-16 code unit (same indices as
// the string), not with `charCodeAt`: V8's `charCodeAt` re-dispatches on the string's
// representation at every call (~5x the cost of a typed-array load). ASCII lines, all the kernel
// prints, are copied in natively by `TextEncoder#encodeInto`; other lines are mapped in a loop.

/** A code unit >= 0x80 that may stand in a token (Latin-1, CJK, ...: accepted, never a known name). */
const C_OTHER = 0x80
/** A lone or paired surrogate, or U+FFFD: the line was not valid UTF-8. */
const C_INVALID = 0xff

const encoder = new TextEncoder()

/**
 * Zeros after a line's codes (a code no key or value has): the straight-line readers read 4 codes
 * at a time and compare keys as words without looking where the line ends.
 */
const sentinelLength = 16

/** Reused for every line up to `maxLineLength`; the parser is synchronous, nothing else touches it. */
const codeBuffer = new Uint8Array(maxLineLength + sentinelLength)
const codeBufferView = new DataView(codeBuffer.buffer)

/** The codes `b` as a DataView (the same memory). */
const viewOf = (b: Uint8Array): DataView => (b === codeBuffer ? codeBufferView : new DataView(b.buffer, b.byteOffset, b.length))

/** `text` as codes, then `sentinelLength` zeros (in a shared buffer, valid until the next call). */
const codesOf = (text: string): Uint8Array => {
  const n = text.length
  if (n > maxLineLength) {
    const codes = new Uint8Array(n + sentinelLength)
    mapCodes(text, codes, n)
    return codes
  }
  const done = encoder.encodeInto(text, codeBuffer)
  const v = codeBufferView
  v.setInt32(n, 0)
  v.setInt32(n + 4, 0)
  v.setInt32(n + 8, 0)
  v.setInt32(n + 12, 0)
  if (done.read !== n || done.written !== n) mapCodes(text, codeBuffer, n) // else one byte per character: all ASCII
  return codeBuffer
}

/** The codes of a line that is not all ASCII. */
const mapCodes = (text: string, codes: Uint8Array, n: number): void => {
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    codes[i] = c < 0x80 ? c : c >= 0xd800 && (c <= 0xdfff || c === 0xfffd) ? C_INVALID : C_OTHER
  }
}

/** Sets `scan.error` when code `c` at `i` (outside printable ASCII, not a separator) is not acceptable. */
const badCharacter = (scan: Scan, c: number, i: number): boolean => {
  if (c === C_OTHER) return false
  if (c === C_INVALID) {
    scan.error = `invalid UTF-8 (replacement or surrogate character at column ${i + 1})`
    return true
  }
  // c < 32 or 127
  scan.error = `binary data (control character 0x${c.toString(16).padStart(2, "0")} at column ${i + 1})`
  return true
}

// ---------------------------------------------------------------------------------------------
// The head of a kernel line, `IN= OUT= [MAC=] SRC= DST=` then the IPv4 (`LEN= TOS= PREC= TTL= ID=`)
// or IPv6 (`LEN= TC= HOPLIMIT= FLOWLBL=`) header, comes in this order with single spaces on nearly
// every line, and so does the usual TCP or UDP rest after it. Straight-line code finds them
// (`readHead`, `readTail`: where each value is, nothing else) without a token lookup per key. When
// both are there and every number in them is one, `fastEvent` (TCP, UDP) or `icmpEvent` (ICMP
// echo and errors) makes the event straight from those places: no scan state, no packet, every
// object as one literal. When only the head is there (options, UID=, ICMP redirects, ...),
// `applyHead` puts it into the scan and the token loop reads the rest.
// On anything else (another order, tabs, a character outside printable ASCII) the token loop
// reads the line from the start; whichever way, the same event comes out.

/**
 * A key the head or tail looks for (4 to 12 characters: a space, the name, `=`) as little-endian
 * 32-bit words of its codes: the first 4, the last 4 (overlapping the first for keys under 8) and
 * the 4 after the first 4 (for keys over 8). `keyAt` compares 2 or 3 words instead of every code.
 */
class Key {
  readonly length: number
  readonly first: number
  readonly last: number
  readonly middle: number
  constructor(text: string) {
    const word = (at: number): number =>
      text.charCodeAt(at) | (text.charCodeAt(at + 1) << 8) | (text.charCodeAt(at + 2) << 16) | (text.charCodeAt(at + 3) << 24)
    this.length = text.length
    this.first = word(0)
    this.last = word(text.length - 4)
    this.middle = text.length > 8 ? word(4) : 0
  }
}
const keyId = new Key(" ID=")
const keyUrgp = new Key(" URGP=")
const keySeq = new Key(" SEQ=")
/** ` PROTO=TCP` and ` PROTO=UDP` with the space after them (where the next key starts). */
const keyProtoTcp = new Key(" PROTO=TCP ")
const keyProtoUdp = new Key(" PROTO=UDP ")

/** Whether `b[i..n)` (also in `v`, see `viewOf`) starts with `key`; then the value starts at `i + key.length`. */
const keyAt = (v: DataView, i: number, n: number, key: Key): boolean => {
  const length = key.length
  return i + length <= n && v.getInt32(i, true) === key.first && v.getInt32(i + length - 4, true) === key.last &&
    (length <= 8 || v.getInt32(i + 4, true) === key.middle)
}

/** End of the value at `b[i..)`: the next space or `n`; -1 at a character outside printable ASCII. */
const valueEnd = (b: Uint8Array, i: number, n: number): number => {
  for (; i < n; i++) {
    const c = b[i]!
    if (c === 32) return i
    if (c < 33 || c > 126) return -1
  }
  return n
}

// The straight-line readers go through a line as a sequence of `KEY=VALUE` fields in a known
// order (a template), one loop for all of them: each key is compared as 2 or 3 words (`Key`), each
// value's end found 4 codes at a time (the sentinel zeros after the line's codes end the last
// one), numbers read as decimals on the way. What they find goes into `places` (the value of field
// slot `f` at `places[2f]..places[2f+1]` of the codes; the decimal it reads as, `decimalAt`'s
// answer when it has at most 9 digits (an int32) and no leading zero (so it is `String(value)`),
// else -1, in `numbers[f]` for the fields read as numbers) and `shape` (the rest), valid until the next line. One small loop instead of a call per
// key: V8 inlines it whole.

// Field slots: the outer packet's head and tail, then the quoted packet's (`readInner`).
const F_IN = 0
const F_OUT = 1
const F_MAC = 2
const F_SRC = 3
const F_DST = 4
const F_LEN = 5
/** TOS / TC, PREC / HOPLIMIT, TTL / FLOWLBL, ID (IPv4 only). */
const F_A = 6
const F_B = 7
const F_C = 8
const F_D = 9
const F_SPT = 10
const F_DPT = 11
/** WINDOW (TCP) or LEN (UDP). */
const F_T = 12
const F_RES = 13
const F_URGP = 14
const F_TYPE = 15
const F_CODE = 16
const F_ECHO_ID = 17
const F_ECHO_SEQ = 18
const F_MTU = 19
const F_INNER_SRC = 20
const F_INNER_DST = 21
const F_INNER_LEN = 22
/** The quoted packet's F_A to F_D. */
const F_INNER_A = 23
const F_INNER_B = 24
const F_INNER_C = 25
const F_INNER_D = 26
const F_INNER_SPT = 27
const F_INNER_DPT = 28
const F_INNER_T = 29
const F_INNER_RES = 30
const F_INNER_URGP = 31
const F_INNER_SEQ = 32
const F_INNER_ACK = 33
const F_INNER_TYPE = 34
const F_INNER_CODE = 35
const F_INNER_ECHO_ID = 36
const F_INNER_ECHO_SEQ = 37
const F_PROTO = 38
const F_INNER_PROTO = 39
const fieldSlots = 40

const places = new Int32Array(2 * fieldSlots)
const numbers = new Int32Array(fieldSlots)

/** What else the readers found (valid until the next line). */
class Shape {
  /** The IPv4 header (TOS PREC TTL ID), else the IPv6 one (TC HOPLIMIT FLOWLBL). */
  v4 = true
  df = false
  /** TCP, else UDP (`readTail`). */
  tcp = true
  /** The TCP flag words, as bits of `Packet#tcpFlags` (`tcpFlagNames` order). */
  tcpFlags = 0
  // an ICMP tail (`readIcmpTail`)
  icmpV6 = false
  /** `ID= SEQ=` after TYPE and CODE. */
  echo = false
  /** A quoted packet follows (`readInner`), and ` MTU=` after it. */
  inner = false
  mtu = false
  // the quoted packet
  innerV4 = true
  innerDf = false
  innerProto = 0
  /** TCP: whether `SEQ= ACK=` are there. */
  innerSequence = false
  innerTcpFlags = 0
  innerEcho = false
}
const shape = new Shape()

// Template entries: a key's length, its three words (see `Key`) and what the value is.
const V_TEXT = 0
/** Read as a decimal too (`numbers`). */
const V_DECIMAL = 1
/** The key may be missing: then the slot's places are -1. */
const V_OPTIONAL = 2

const template = (fields: ReadonlyArray<readonly [key: string, kind: number]>): Int32Array => {
  const entries = new Int32Array(fields.length * 5)
  fields.forEach(([text, kind], k) => {
    const key = new Key(text)
    entries.set([key.length, key.first, key.last, key.middle, kind], k * 5)
  })
  return entries
}

const headFields = template([
  [" OUT=", V_TEXT], [" MAC=", V_TEXT | V_OPTIONAL], [" SRC=", V_TEXT], [" DST=", V_TEXT], [" LEN=", V_DECIMAL]
])
const v4Fields = template([[" TOS=", V_TEXT], [" PREC=", V_TEXT], [" TTL=", V_DECIMAL], [" ID=", V_DECIMAL]])
const v6Fields = template([[" TC=", V_TEXT], [" HOPLIMIT=", V_DECIMAL], [" FLOWLBL=", V_TEXT]])
const protoFields = template([[" PROTO=", V_TEXT]])
const tcpFields = template([[" SPT=", V_DECIMAL], [" DPT=", V_DECIMAL], [" WINDOW=", V_DECIMAL]])
const resFields = template([[" RES=", V_TEXT]])
const udpFields = template([[" SPT=", V_DECIMAL], [" DPT=", V_DECIMAL], [" LEN=", V_DECIMAL]])
const portFields = template([[" SPT=", V_DECIMAL], [" DPT=", V_DECIMAL]])
const sequenceFields = template([[" SEQ=", V_DECIMAL], [" ACK=", V_DECIMAL]])
const windowFields = template([[" WINDOW=", V_DECIMAL], [" RES=", V_TEXT]])
const lengthFields = template([[" LEN=", V_DECIMAL]])
const urgpFields = template([[" URGP=", V_DECIMAL]])
const icmpFields = template([[" TYPE=", V_DECIMAL], [" CODE=", V_DECIMAL]])
const echoFields = template([[" ID=", V_DECIMAL], [" SEQ=", V_DECIMAL]])
const mtuFields = template([[" MTU=", V_DECIMAL]])
const innerHeadFields = template([[" [SRC=", V_TEXT], [" DST=", V_TEXT], [" LEN=", V_DECIMAL]])

/**
 * The value at `b[from..)` into slot `slot` (see `places`): returns where it ends (a space or
 * `n`), or -1 at a character outside printable ASCII. The codes end in zeros (see `codesOf`).
 */
const readValue = (b: Uint8Array, v: DataView, from: number, n: number, slot: number, decimal: boolean): number => {
  // 4 codes at a time up to the first that is not printable ASCII other than space: 0x80 in each
  // byte below 0x21, at or above 0x80, or 0x7f (borrows may flag bytes above a flagged one, never
  // below it: the lowest flag is exact)
  let i = from
  let m = 0
  let x = 0
  for (;;) {
    x = v.getInt32(i, true)
    const y = x ^ 0x7f7f7f7f
    m = ((((x - 0x21212121) | 0) & ~x) | x | (((y - 0x01010101) | 0) & ~y)) & 0x80808080
    if (m !== 0) break
    i += 4
  }
  const flag = 31 - Math.clz32(m & -m) // (bit 7 of the code that ends the value)
  i += flag >> 3
  // that code from the word in hand: a space, or the end of the line (where the codes are zeros)
  if (((x >>> (flag - 7)) & 0xff) !== 32 && i !== n) return -1
  places[2 * slot] = from
  places[2 * slot + 1] = i
  if (decimal) {
    // (10 to 15 digits or a leading zero, which the kernel's %u never prints, go the general way: -1)
    let value = -1
    if (i > from && i - from <= 9 && (b[from] !== 48 || i - from === 1)) {
      value = 0
      for (let k = from; k < i; k++) {
        const digit = b[k]! - 48
        if (digit < 0 || digit > 9) {
          value = -1
          break
        }
        value = value * 10 + digit
      }
    }
    numbers[slot] = value
  }
  return i
}

/**
 * The fields of `fields` (a template) from `b[i..n)` on, into slots `slot`, `slot + 1`, ...:
 * returns where the last value ended, or -1 when a key is not there or a value has a character
 * outside printable ASCII.
 */
const readFields = (b: Uint8Array, v: DataView, i: number, n: number, fields: Int32Array, slot: number): number => {
  for (let k = 0; k < fields.length; k += 5, slot++) {
    const length = fields[k]!
    const kind = fields[k + 4]!
    // (past the line's end the codes are zeros, which no key has)
    if (
      v.getInt32(i, true) !== fields[k + 1] || v.getInt32(i + length - 4, true) !== fields[k + 2] ||
      (length > 8 && v.getInt32(i + 4, true) !== fields[k + 3])
    ) {
      if ((kind & V_OPTIONAL) === 0) return -1
      places[2 * slot] = -1
      places[2 * slot + 1] = -1
      continue
    }
    i = readValue(b, v, i + length, n, slot, (kind & V_DECIMAL) !== 0)
    if (i < 0) return -1
  }
  return i
}

/** Which header `readIpHeader` read last: IPv4, else IPv6. */
let ipV4 = true

/** The IPv4 header's fields (then `ipV4`) or the IPv6 one's from `b[i..n)` into slots `slot`...; see `readFields`. */
const readIpHeader = (b: Uint8Array, v: DataView, i: number, n: number, slot: number): number => {
  const end = readFields(b, v, i, n, v4Fields, slot)
  if (end >= 0) {
    ipV4 = true
    return end
  }
  ipV4 = false
  return readFields(b, v, i, n, v6Fields, slot)
}

/** ` DF`, then a space or the end, at `b[i..n)`. */
const dfAt = (b: Uint8Array, i: number, n: number): boolean =>
  b[i] === 32 && b[i + 1] === 68 && b[i + 2] === 70 && (i + 3 === n || b[i + 3] === 32)

/**
 * Finds the head of `b[from..n)` (into `places` and `shape`) and returns where it ended (a space
 * or `n`), or -1 when the line does not start that way.
 */
const readHead = (b: Uint8Array, v: DataView, from: number, n: number): number => {
  if (from + 3 > n || b[from] !== 73 || b[from + 1] !== 78 || b[from + 2] !== 61) return -1 // IN=
  let i = readValue(b, v, from + 3, n, F_IN, false)
  if (i < 0) return -1
  i = readFields(b, v, i, n, headFields, F_OUT)
  if (i < 0) return -1
  i = readIpHeader(b, v, i, n, F_A)
  shape.v4 = ipV4
  return i
}

/** Wire-map ids the head stores (all below 32: `seenLow` bits). */
const headV4Seen = (1 << 1) | (1 << 2) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15)
const headV6Seen = (1 << 1) | (1 << 2) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 16) | (1 << 17) | (1 << 18)
const macSeen = 1 << 5

// MAC headers repeat from line to line (one per interface and neighbour): the texts of the last
// few 14-byte ones are kept with their parts, by their codes, and a line with the same codes gets
// the same strings. That costs a comparison of 11 words instead of three new strings, and lets
// the JSON writer see by identity that a MAC is the previous line's (two different strings of the
// same text compare character by character, and a slice of 17 or more characters slowly).

const macSlots = 8
/** Per slot: the codes of its 41-character text as 11 little-endian words (see `macSlotOf`). */
const macWords = new Int32Array(macSlots * 11)
/** Per slot: the text ("": empty), destination, source, EtherType. */
const macTexts: Array<string> = new Array<string>(macSlots).fill("")
const macDsts: Array<string> = new Array<string>(macSlots).fill("")
const macSrcs: Array<string> = new Array<string>(macSlots).fill("")
const macEtherTypes: Array<string> = new Array<string>(macSlots).fill("")

/**
 * The slot of the 41-character `MAC=` value `text[from..from+41)` (codes in `b`, also in `v`):
 * the one that holds it, else one it is put into.
 */
const macSlotOf = (text: string, b: Uint8Array, v: DataView, from: number): number => {
  // the slot by a few words of both addresses and the EtherType; then every word compared
  const last = v.getInt32(from + 37, true) // (codes 37-40, overlapping the tenth word)
  const h = Math.imul(Math.imul(v.getInt32(from + 4, true) ^ v.getInt32(from + 12, true), 0x9e3779b1) ^ v.getInt32(from + 24, true), 0x9e3779b1)
  const slot = Math.imul(h ^ v.getInt32(from + 32, true) ^ last, 0x9e3779b1) >>> 29
  const base = slot * 11
  let k = 0
  while (k < 10 && macWords[base + k] === v.getInt32(from + 4 * k, true)) k++
  if (k === 10 && macWords[base + 10] === last && macTexts[slot] !== "") return slot
  const mac = text.slice(from, from + 41)
  for (k = 0; k < 10; k++) macWords[base + k] = v.getInt32(from + 4 * k, true)
  macWords[base + 10] = last
  macTexts[slot] = mac
  macDsts[slot] = mac.slice(0, 17)
  macSrcs[slot] = mac.slice(18, 35)
  macEtherTypes[slot] = etherTypeText(b, from + 36) ?? `0x${mac.slice(36, 38)}${mac.slice(39, 41)}`
  return slot
}

/** `text[from..to)` of slot `slot` (see `places`). */
const placeText = (text: string, slot: number): string => textOf(text, places[2 * slot]!, places[2 * slot + 1]!)

/** `decimalText` of slot `slot`, a decimal field (small: V8 inlines it at most call sites). */
const placeDecimal = (text: string, slot: number): string => {
  const v = numbers[slot]!
  // (`numbers` holds no value with a leading zero: the text is exactly String(v))
  return v >= 0 && v < 1024 ? smallDecimals[v]! : placeText(text, slot)
}

/** `decimalAt` of slot `slot`, a decimal field (`numbers` holds only those of up to 9 digits). */
const placeNumber = (b: Uint8Array, slot: number): number =>
  numbers[slot]! >= 0 ? numbers[slot]! : decimalAt(b, places[2 * slot]!, places[2 * slot + 1]!)

/** `hexByteText` of slot `slot`. */
const placeHexByte = (text: string, b: Uint8Array, slot: number): string =>
  hexByteText(text, b, places[2 * slot]!, places[2 * slot + 1]!)

/** The address of slot `slot` as the event has it (IPv6 canonical), its text being `value`. */
const placeIp = (value: string, text: string, b: Uint8Array, v: DataView, slot: number): string => {
  const from = places[2 * slot]!
  const to = places[2 * slot + 1]!
  return colonIn(v, from, to) ? ipv6Of(value, text, b, from, to) : value
}

/**
 * Puts what `readHead` found into the scan (packet, wire map, seen names), as the token loop's
 * `applyKv` would for these keys, in order.
 */
const applyHead = (scan: Scan, b: Uint8Array, v: DataView): void => {
  const text = scan.text
  const p = scan.outer
  const inIface = placeText(text, F_IN)
  const outIface = placeText(text, F_OUT)
  p.inIface = inIface
  p.outIface = outIface
  let mac: string | undefined = undefined
  const macFrom = places[2 * F_MAC]!
  if (macFrom >= 0) {
    if (places[2 * F_MAC + 1]! - macFrom === 41) {
      p.macSlot = macSlotOf(text, b, v, macFrom)
      mac = macTexts[p.macSlot]!
    } else mac = placeText(text, F_MAC)
    p.mac = mac
  }
  const src = placeText(text, F_SRC)
  const srcV6 = colonIn(v, places[2 * F_SRC]!, places[2 * F_SRC + 1]!)
  p.src = placeIp(src, text, b, v, F_SRC)
  p.version = srcV6 ? 6 : 4
  const dst = placeText(text, F_DST)
  p.dst = placeIp(dst, text, b, v, F_DST)
  p.ipLength = placeNumber(b, F_LEN)
  const len = placeDecimal(text, F_LEN)
  if (shape.v4) {
    const tos = placeHexByte(text, b, F_A)
    const prec = placeHexByte(text, b, F_B)
    p.tos = tos
    p.prec = prec
    p.ttl = placeNumber(b, F_C)
    const ttl = placeDecimal(text, F_C)
    p.ipId = placeNumber(b, F_D)
    const id = placeDecimal(text, F_D)
    scan.seenLow |= headV4Seen
    if (mac === undefined) {
      scan.fields = { IN: inIface, OUT: outIface, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttl, ID: id }
    } else {
      scan.seenLow |= macSeen
      scan.fields = {
        IN: inIface, OUT: outIface, MAC: mac, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttl, ID: id
      }
    }
  } else {
    const tcFrom = places[2 * F_A]!
    const tcTo = places[2 * F_A + 1]!
    const tc = decimalText(text, b, tcFrom, tcTo, decimalAt(b, tcFrom, tcTo))
    p.tc = tc
    p.ttl = placeNumber(b, F_B)
    const hoplimit = placeDecimal(text, F_B)
    const flowLabel = placeText(text, F_C)
    p.flowLabel = flowLabel
    p.version = 6
    scan.seenLow |= headV6Seen
    if (mac === undefined) {
      scan.fields = { IN: inIface, OUT: outIface, SRC: src, DST: dst, LEN: len, TC: tc, HOPLIMIT: hoplimit, FLOWLBL: flowLabel }
    } else {
      scan.seenLow |= macSeen
      scan.fields = {
        IN: inIface, OUT: outIface, MAC: mac, SRC: src, DST: dst, LEN: len, TC: tc, HOPLIMIT: hoplimit,
        FLOWLBL: flowLabel
      }
    }
  }
}

// The usual rest of a line after the head: `[DF] PROTO=TCP SPT= DPT= WINDOW= RES= <flags> URGP=`
// or `[DF] PROTO=UDP SPT= DPT= LEN=`, to the end of the line. Anything else (TCP sequence numbers
// or options, UID=, another protocol, a tab, ...) is left to the token loop. ` PROTO=TCP ` and
// ` PROTO=UDP `, and most drops' ` RES=0x00 SYN URGP=0`, are compared whole, values included (no
// value to scan).

/** `b[i..n)` is nothing or a single space: the end of the line. */
const atLineEnd = (b: Uint8Array, i: number, n: number): boolean => i === n || (i + 1 === n && b[i] === 32)

/** What `readTail` found after the head. */
const TAIL_NONE = 0
const TAIL_TCP_UDP = 1 // `fastEvent`
const TAIL_ICMP = 2 // `icmpEvent`

// Protocols of the quoted packet (`Shape#innerProto`; 0: another).
const P_UDP = 1
const P_TCP = 2
const P_ICMP = 3
const P_ICMPV6 = 4

/** The protocol of the `PROTO=` value in slot `slot` (a `P_` constant, 0: another). */
const protoOf = (b: Uint8Array, slot: number): number => {
  const from = places[2 * slot]!
  const c0 = b[from]
  switch (places[2 * slot + 1]! - from) {
    case 3:
      if (c0 === 84 && b[from + 1] === 67 && b[from + 2] === 80) return P_TCP
      if (c0 === 85 && b[from + 1] === 68 && b[from + 2] === 80) return P_UDP
      break
    case 4:
    case 6:
      if (c0 === 73 && b[from + 1] === 67 && b[from + 2] === 77 && b[from + 3] === 80) {
        if (places[2 * slot + 1]! - from === 4) return P_ICMP
        if (b[from + 4] === 118 && b[from + 5] === 54) return P_ICMPV6
      }
      break
  }
  return 0
}

/** ` SYN` as a little-endian word. */
const wordSyn = 0x20 | (83 << 8) | (89 << 16) | (78 << 24)

/** ` RES=0x00 SYN URGP=0` as 5 little-endian words. */
const synEnd = Int32Array.from({ length: 5 }, (_, k) => new Key(" RES=0x00 SYN URGP=0".slice(4 * k, 4 * k + 4)).first)

/** Whether `b[i..n)` (also in `v`) starts with ` RES=0x00 SYN URGP=0` (the caller checks what follows). */
const synEndAt = (v: DataView, i: number, n: number): boolean =>
  i + 20 <= n && v.getInt32(i, true) === synEnd[0] && v.getInt32(i + 4, true) === synEnd[1] &&
  v.getInt32(i + 8, true) === synEnd[2] && v.getInt32(i + 12, true) === synEnd[3] && v.getInt32(i + 16, true) === synEnd[4]

/** The flags `readTcpFlags` read last. */
let tcpFlagsRead = 0

/**
 * The TCP flag words at `b[i..n)` up to ` URGP=` (in the kernel's order, each once): their bits
 * into `tcpFlagsRead`; returns where ` URGP=` starts, or -1.
 */
const readTcpFlags = (b: Uint8Array, v: DataView, i: number, n: number): number => {
  let lastBit = -1
  let flags = 0
  while (!keyAt(v, i, n, keyUrgp)) {
    if (v.getInt32(i, true) === wordSyn && b[i + 4] === 32 && lastBit < 7) {
      // ` SYN `, most drops' only flag, without a token lookup
      lastBit = 7
      flags |= TCP_SYN
      i += 4
      continue
    }
    if (b[i] !== 32 || i + 1 >= n) return -1
    const wordTo = valueEnd(b, i + 1, n)
    const id = wordTo < 0 ? 0 : tokenId(b, i + 1, wordTo - i - 1)
    const bit = tcpFlagBit(id)
    if (bit <= lastBit) return -1 // not a flag, or out of the kernel's order (or repeated)
    lastBit = bit
    flags |= 1 << bit
    i = wordTo
  }
  tcpFlagsRead = flags
  return i
}

/**
 * Finds the usual tail in `b[from..n)` (`from`: where `readHead` stopped; into `places` and
 * `shape`): a TCP or UDP one, an ICMP one (`readIcmpTail`), or none (`TAIL_NONE`: the rest of the
 * line is anything else).
 */
const readTail = (b: Uint8Array, v: DataView, from: number, n: number): number => {
  let i = from
  const df = dfAt(b, i, n)
  if (df) i += 3
  let proto = P_TCP
  // the usual protocols as one key with their value: no value to scan, no `protoOf`
  if (keyAt(v, i, n, keyProtoTcp)) i += keyProtoTcp.length - 1
  else if (keyAt(v, i, n, keyProtoUdp)) {
    proto = P_UDP
    i += keyProtoUdp.length - 1
  } else {
    i = readFields(b, v, i, n, protoFields, F_PROTO)
    if (i < 0) return TAIL_NONE
    proto = protoOf(b, F_PROTO)
  }
  if (proto === P_TCP) {
    i = readFields(b, v, i, n, tcpFields, F_SPT)
    if (i < 0) return TAIL_NONE
    if (synEndAt(v, i, n)) {
      // most drops' flags, ` RES=0x00 SYN URGP=0`, compared as 5 words (`readTcpFlags` not needed)
      places[2 * F_RES] = i + 5
      places[2 * F_RES + 1] = i + 9
      places[2 * F_URGP] = i + 19
      places[2 * F_URGP + 1] = i + 20
      numbers[F_URGP] = 0
      shape.tcpFlags = TCP_SYN
      i += 20
    } else {
      i = readFields(b, v, i, n, resFields, F_RES)
      if (i < 0) return TAIL_NONE
      i = readTcpFlags(b, v, i, n)
      if (i < 0) return TAIL_NONE
      i = readFields(b, v, i, n, urgpFields, F_URGP)
      shape.tcpFlags = tcpFlagsRead
    }
  } else if (proto === P_UDP) i = readFields(b, v, i, n, udpFields, F_SPT)
  else if (proto === P_ICMP || proto === P_ICMPV6) return readIcmpTail(b, v, df, proto === P_ICMPV6, i, n)
  else return TAIL_NONE
  if (i < 0 || !atLineEnd(b, i, n)) return TAIL_NONE
  shape.df = df
  shape.tcp = proto === P_TCP
  return TAIL_TCP_UDP
}

// The ICMP tail: `[DF] PROTO=ICMP TYPE= CODE=` (or `PROTO=ICMPv6`), then `ID= SEQ=` (echo request
// and reply), a quoted packet (errors, see `readInner`) with or without ` MTU=` after it, or
// nothing, to the end of the line. Other ICMP shapes (GATEWAY=, PARAMETER=, INCOMPLETE, ...) are
// left to the token loop.

/** `readTail` after `PROTO=ICMP` or `PROTO=ICMPv6` (ending at `b[i]`). */
const readIcmpTail = (b: Uint8Array, v: DataView, df: boolean, v6: boolean, i: number, n: number): number => {
  i = readFields(b, v, i, n, icmpFields, F_TYPE)
  if (i < 0) return TAIL_NONE
  let echo = false
  let inner = false
  let mtu = false
  if (atLineEnd(b, i, n)) {
    // TYPE= CODE= alone
  } else if (!keyAt(v, i, n, keyId)) {
    i = readInner(b, v, i, n)
    if (i < 0) return TAIL_NONE
    inner = true
    if (!atLineEnd(b, i, n)) {
      i = readFields(b, v, i, n, mtuFields, F_MTU)
      if (i < 0 || !atLineEnd(b, i, n)) return TAIL_NONE
      mtu = true
    }
  } else {
    i = readFields(b, v, i, n, echoFields, F_ECHO_ID)
    if (i < 0 || !atLineEnd(b, i, n)) return TAIL_NONE
    echo = true
  }
  const s = shape
  s.df = df
  s.icmpV6 = v6
  s.echo = echo
  s.inner = inner
  s.mtu = mtu
  return TAIL_ICMP
}

// An ICMP error quotes the packet it is about: ` [SRC= DST= LEN= <IPv4 or IPv6 header> [DF]
// PROTO=... ]`, then ` MTU=` (fragmentation needed, packet too big) or nothing. The quoted packet
// goes to the event's `inner` only (the token loop keeps it out of the wire map), so only the
// places of the texts the typed event needs are kept, and the numbers.

/**
 * Reads the quoted packet from ` [SRC=` at `b[i]` to its ` ]` (into the `F_INNER_` slots and
 * `shape`), and returns where the ` ]` ended, or -1 when it is not the usual shape.
 */
const readInner = (b: Uint8Array, v: DataView, i: number, n: number): number => {
  const s = shape
  i = readFields(b, v, i, n, innerHeadFields, F_INNER_SRC)
  if (i < 0) return -1
  i = readIpHeader(b, v, i, n, F_INNER_A)
  if (i < 0) return -1
  s.innerV4 = ipV4
  const df = dfAt(b, i, n)
  if (df) i += 3
  s.innerDf = df
  i = readFields(b, v, i, n, protoFields, F_INNER_PROTO)
  if (i < 0) return -1
  const proto = protoOf(b, F_INNER_PROTO)
  s.innerProto = proto
  if (proto === P_TCP || proto === P_UDP) {
    i = readFields(b, v, i, n, portFields, F_INNER_SPT)
    if (i < 0) return -1
    if (proto === P_UDP) i = readFields(b, v, i, n, lengthFields, F_INNER_T)
    else {
      s.innerSequence = keyAt(v, i, n, keySeq)
      if (s.innerSequence) {
        i = readFields(b, v, i, n, sequenceFields, F_INNER_SEQ)
        if (i < 0) return -1
      }
      i = readFields(b, v, i, n, windowFields, F_INNER_T)
      if (i < 0) return -1
      i = readTcpFlags(b, v, i, n)
      if (i < 0) return -1
      s.innerTcpFlags = tcpFlagsRead
      i = readFields(b, v, i, n, urgpFields, F_INNER_URGP)
    }
    if (i < 0) return -1
  } else if (proto !== 0) {
    i = readFields(b, v, i, n, icmpFields, F_INNER_TYPE)
    if (i < 0) return -1
    s.innerEcho = keyAt(v, i, n, keyId)
    if (s.innerEcho) {
      i = readFields(b, v, i, n, echoFields, F_INNER_ECHO_ID)
      if (i < 0) return -1
    }
  } else return -1
  // ` ]`, then a space or the end
  if (i + 2 > n || b[i] !== 32 || b[i + 1] !== 93 || (i + 2 < n && b[i + 2] !== 32)) return -1
  return i + 2
}

/** The quoted packet `readInner` found as the event's `inner` (`innerPacket`'s object); undefined when one of its numbers is not a decimal. */
const innerOf = (text: string, b: Uint8Array, v: DataView): Inner | undefined => {
  const s = shape
  const x = numbers
  const proto = s.innerProto
  const ports = proto === P_TCP || proto === P_UDP
  const v4 = s.innerV4
  const length = x[F_INNER_LEN]!
  const ttl = v4 ? x[F_INNER_C]! : x[F_INNER_B]!
  const id = v4 ? x[F_INNER_D]! : 0
  if (length < 0 || ttl < 0 || id < 0) return undefined
  if (ports && (x[F_INNER_SPT]! < 0 || x[F_INNER_DPT]! < 0 || x[F_INNER_T]! < 0)) return undefined
  if (proto === P_TCP && (x[F_INNER_URGP]! < 0 || (s.innerSequence && (x[F_INNER_SEQ]! < 0 || x[F_INNER_ACK]! < 0)))) {
    return undefined
  }
  if (
    !ports &&
    (x[F_INNER_TYPE]! < 0 || x[F_INNER_CODE]! < 0 || (s.innerEcho && (x[F_INNER_ECHO_ID]! < 0 || x[F_INNER_ECHO_SEQ]! < 0)))
  ) return undefined
  const srcText = placeText(text, F_INNER_SRC)
  const srcV6 = colonIn(v, places[2 * F_INNER_SRC]!, places[2 * F_INNER_SRC + 1]!)
  const srcIp = placeIp(srcText, text, b, v, F_INNER_SRC)
  const dstIp = placeIp(placeText(text, F_INNER_DST), text, b, v, F_INNER_DST)
  let ip: IpHeader
  if (v4) {
    const tos = placeHexByte(text, b, F_INNER_A)
    const precedence = placeHexByte(text, b, F_INNER_B)
    const version = srcV6 ? 6 : 4
    ip = s.innerDf
      ? { version, length, ttl, tos, precedence, id, flags: ["DF"] }
      : { version, length, ttl, tos, precedence, id }
  } else {
    const tcFrom = places[2 * F_INNER_A]!
    const tcTo = places[2 * F_INNER_A + 1]!
    const trafficClass = decimalText(text, b, tcFrom, tcTo, decimalAt(b, tcFrom, tcTo))
    const flowLabel = placeText(text, F_INNER_C)
    ip = s.innerDf
      ? { version: 6, length, ttl, flags: ["DF"], trafficClass, flowLabel }
      : { version: 6, length, ttl, trafficClass, flowLabel }
  }
  switch (proto) {
    case P_UDP:
      return {
        protocol: "UDP", src: { ip: srcIp, port: x[F_INNER_SPT]! }, dst: { ip: dstIp, port: x[F_INNER_DPT]! }, ip,
        udp: { length: x[F_INNER_T]! }
      }
    case P_TCP: {
      const bits = s.innerTcpFlags
      const flags = bits === TCP_SYN ? ["SYN"] : flagList(bits, tcpFlagNames)
      const reserved = placeHexByte(text, b, F_INNER_RES)
      const window = x[F_INNER_T]!
      const urgentPointer = x[F_INNER_URGP]!
      const tcp: TcpHeader = s.innerSequence
        ? { seq: x[F_INNER_SEQ]!, ack: x[F_INNER_ACK]!, window, reserved, flags, urgentPointer }
        : { window, reserved, flags, urgentPointer }
      return { protocol: "TCP", src: { ip: srcIp, port: x[F_INNER_SPT]! }, dst: { ip: dstIp, port: x[F_INNER_DPT]! }, ip, tcp }
    }
  }
  const type = x[F_INNER_TYPE]!
  const code = x[F_INNER_CODE]!
  const icmp: IcmpHeader = s.innerEcho
    ? { type, code, id: x[F_INNER_ECHO_ID]!, seq: x[F_INNER_ECHO_SEQ]! }
    : { type, code }
  return { protocol: proto === P_ICMP ? "ICMP" : "ICMPv6", src: { ip: srcIp }, dst: { ip: dstIp }, ip, icmp }
}

/** The token id of each TCP flag bit (`tcpFlagNames` order). */
const tcpFlagIds: ReadonlyArray<number> = tcpFlagNames.map((name) => tokenIds.get(name)!)

/** The wire map's entries for TCP flag bits, in the kernel's order. */
const storeTcpFlags = (fields: Record<string, string>, bits: number): void => {
  // the set bits, lowest first
  for (let rest = bits; rest !== 0; rest &= rest - 1) storeKnown(fields, tcpFlagIds[31 - Math.clz32(rest & -rest)]!, "")
}

/**
 * The event of a line whose head and tail `readHead` and `readTail` found (`places`), exactly as
 * the token loop and `assemble` make it; undefined when one of its numbers is not a decimal (the
 * typed event then leaves that key out: the general path's business).
 */
const fastEvent = (text: string, b: Uint8Array, v: DataView, action: Action, context: LineContext): DropEvent | undefined => {
  const s = shape
  const x = numbers
  const v4 = s.v4
  const tcp = s.tcp
  const df = s.df
  const length = x[F_LEN]!
  const ttl = v4 ? x[F_C]! : x[F_B]!
  const ipId = v4 ? x[F_D]! : 0
  const spt = x[F_SPT]!
  const dpt = x[F_DPT]!
  const t = x[F_T]! // WINDOW or the UDP LEN
  const urgp = tcp ? x[F_URGP]! : 0
  if (length < 0 || ttl < 0 || ipId < 0 || spt < 0 || dpt < 0 || t < 0 || urgp < 0) return undefined

  const inIface = placeText(text, F_IN)
  const outIface = placeText(text, F_OUT)
  let raw: string | undefined = undefined // MAC=
  let mac: DropEvent["mac"] = undefined
  const macFrom = places[2 * F_MAC]!
  if (macFrom >= 0) {
    if (places[2 * F_MAC + 1]! - macFrom === 41) {
      const slot = macSlotOf(text, b, v, macFrom)
      raw = macTexts[slot]!
      mac = { dst: macDsts[slot]!, src: macSrcs[slot]!, ethertype: macEtherTypes[slot]! }
    } else {
      raw = placeText(text, F_MAC)
      if (raw.length > 0) mac = { raw }
    }
  }
  const src = placeText(text, F_SRC)
  // one pass over `SRC=... DST=...` for both (on most lines neither has a colon)
  const v6 = colonIn(v, places[2 * F_SRC]!, places[2 * F_DST + 1]!)
  const srcV6 = v6 && colonIn(v, places[2 * F_SRC]!, places[2 * F_SRC + 1]!)
  const srcIp = srcV6 ? ipv6Of(src, text, b, places[2 * F_SRC]!, places[2 * F_SRC + 1]!) : src
  const dst = placeText(text, F_DST)
  const dstIp = v6 ? placeIp(dst, text, b, v, F_DST) : dst
  const len = placeDecimal(text, F_LEN)
  const sptText = placeDecimal(text, F_SPT)
  const dptText = placeDecimal(text, F_DPT)
  const protocol = tcp ? "TCP" : "UDP"
  const bits = s.tcpFlags
  const res = tcp ? placeHexByte(text, b, F_RES) : ""
  const windowText = tcp ? placeDecimal(text, F_T) : ""
  const urgpText = tcp ? placeDecimal(text, F_URGP) : ""

  // The wire map. The commonest lines (IPv4 with a MAC header: UDP, or TCP with SYN alone) get it
  // whole as one literal (one allocation, no property added); the others the head's keys as one,
  // then the tail's, each at its own store site.
  let fields: Record<string, string>
  let whole = false
  let ip: IpHeader
  if (v4) {
    const tos = placeHexByte(text, b, F_A)
    const prec = placeHexByte(text, b, F_B)
    const ttlText = placeDecimal(text, F_C)
    const idText = placeDecimal(text, F_D)
    const version = srcV6 ? 6 : 4
    ip = df
      ? { version, length, ttl, tos, precedence: prec, id: ipId, flags: ["DF"] }
      : { version, length, ttl, tos, precedence: prec, id: ipId }
    whole = raw !== undefined && (!tcp || bits === TCP_SYN)
    if (raw === undefined) {
      fields = { IN: inIface, OUT: outIface, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText, ID: idText }
    } else if (!whole) {
      fields = {
        IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText, ID: idText
      }
    } else if (!tcp) {
      fields = df
        ? {
          IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText,
          ID: idText, DF: "", PROTO: protocol, SPT: sptText, DPT: dptText, ACTION: action
        }
        : {
          IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText,
          ID: idText, PROTO: protocol, SPT: sptText, DPT: dptText, ACTION: action
        }
    } else {
      fields = df
        ? {
          IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText,
          ID: idText, DF: "", PROTO: protocol, SPT: sptText, DPT: dptText, WINDOW: windowText, RES: res, SYN: "",
          URGP: urgpText, ACTION: action
        }
        : {
          IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText,
          ID: idText, PROTO: protocol, SPT: sptText, DPT: dptText, WINDOW: windowText, RES: res, SYN: "", URGP: urgpText,
          ACTION: action
        }
    }
  } else {
    const tc = decimalText(text, b, places[2 * F_A]!, places[2 * F_A + 1]!, decimalAt(b, places[2 * F_A]!, places[2 * F_A + 1]!))
    const hoplimit = placeDecimal(text, F_B)
    const flowLabel = placeText(text, F_C)
    ip = df
      ? { version: 6, length, ttl, flags: ["DF"], trafficClass: tc, flowLabel }
      : { version: 6, length, ttl, trafficClass: tc, flowLabel }
    fields = raw === undefined
      ? { IN: inIface, OUT: outIface, SRC: src, DST: dst, LEN: len, TC: tc, HOPLIMIT: hoplimit, FLOWLBL: flowLabel }
      : {
        IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TC: tc, HOPLIMIT: hoplimit,
        FLOWLBL: flowLabel
      }
  }
  if (!whole) {
    if (df) fields.DF = ""
    fields.PROTO = protocol
    fields.SPT = sptText
    fields.DPT = dptText
    if (tcp) {
      fields.WINDOW = windowText
      fields.RES = res
      storeTcpFlags(fields, bits)
      fields.URGP = urgpText
    }
    fields.ACTION = action
  }

  // the event (keys in Schema order; `mac` only when there is one)
  const srcEndpoint = { ip: srcIp, port: spt }
  const dstEndpoint = { ip: dstIp, port: dpt }
  if (tcp) {
    const tcpHeader = {
      window: t, reserved: res, flags: bits === TCP_SYN ? ["SYN"] : flagList(bits, tcpFlagNames), urgentPointer: urgp
    }
    return mac === undefined
      ? {
        timestamp: context.timestamp, action, host: context.host, protocol, src: srcEndpoint, dst: dstEndpoint,
        in: inIface, out: outIface, ip, tcp: tcpHeader, fields
      }
      : {
        timestamp: context.timestamp, action, host: context.host, protocol, src: srcEndpoint, dst: dstEndpoint,
        in: inIface, out: outIface, mac, ip, tcp: tcpHeader, fields
      }
  }
  return mac === undefined
    ? {
      timestamp: context.timestamp, action, host: context.host, protocol, src: srcEndpoint, dst: dstEndpoint,
      in: inIface, out: outIface, ip, udp: { length: t }, fields
    }
    : {
      timestamp: context.timestamp, action, host: context.host, protocol, src: srcEndpoint, dst: dstEndpoint,
      in: inIface, out: outIface, mac, ip, udp: { length: t }, fields
    }
}

/**
 * The event of a line whose head and ICMP tail `readHead` and `readIcmpTail` found (`places`),
 * exactly as the token loop and `assemble` make it (`assemble`'s key-by-key event: no ports, an
 * `icmp` header); undefined when one of its numbers is not a decimal.
 */
const icmpEvent = (text: string, b: Uint8Array, v: DataView, action: Action, context: LineContext): DropEvent | undefined => {
  const s = shape
  const x = numbers
  const v4 = s.v4
  const df = s.df
  const length = x[F_LEN]!
  const ttl = v4 ? x[F_C]! : x[F_B]!
  const ipId = v4 ? x[F_D]! : 0
  const type = x[F_TYPE]!
  const code = x[F_CODE]!
  const echo = s.echo
  const echoId = echo ? x[F_ECHO_ID]! : 0
  const seq = echo ? x[F_ECHO_SEQ]! : 0
  const hasMtu = s.mtu
  const mtu = hasMtu ? x[F_MTU]! : 0
  if (length < 0 || ttl < 0 || ipId < 0 || type < 0 || code < 0 || echoId < 0 || seq < 0 || mtu < 0) return undefined
  let inner: Inner | undefined = undefined
  if (s.inner) {
    inner = innerOf(text, b, v)
    if (inner === undefined) return undefined
  }

  const inIface = placeText(text, F_IN)
  const outIface = placeText(text, F_OUT)
  let raw: string | undefined = undefined // MAC=
  let mac: DropEvent["mac"] = undefined
  const macFrom = places[2 * F_MAC]!
  if (macFrom >= 0) {
    if (places[2 * F_MAC + 1]! - macFrom === 41) {
      const slot = macSlotOf(text, b, v, macFrom)
      raw = macTexts[slot]!
      mac = { dst: macDsts[slot]!, src: macSrcs[slot]!, ethertype: macEtherTypes[slot]! }
    } else {
      raw = placeText(text, F_MAC)
      if (raw.length > 0) mac = { raw }
    }
  }
  const src = placeText(text, F_SRC)
  const srcV6 = colonIn(v, places[2 * F_SRC]!, places[2 * F_SRC + 1]!)
  const srcIp = srcV6 ? ipv6Of(src, text, b, places[2 * F_SRC]!, places[2 * F_SRC + 1]!) : src
  const dst = placeText(text, F_DST)
  const dstIp = placeIp(dst, text, b, v, F_DST)
  const len = placeDecimal(text, F_LEN)
  const protocol = s.icmpV6 ? "ICMPv6" : "ICMP"
  const typeText = placeDecimal(text, F_TYPE)
  const codeText = placeDecimal(text, F_CODE)

  // the wire map: the head's keys as one literal, then the tail's, each at its own store site (an
  // echo's ID= is the wire map's second ID after an IPv4 header: the first, the header's, stays)
  let fields: Record<string, string>
  let ip: IpHeader
  if (v4) {
    const tos = placeHexByte(text, b, F_A)
    const prec = placeHexByte(text, b, F_B)
    const ttlText = placeDecimal(text, F_C)
    const idText = placeDecimal(text, F_D)
    const version = srcV6 ? 6 : 4
    ip = df
      ? { version, length, ttl, tos, precedence: prec, id: ipId, flags: ["DF"] }
      : { version, length, ttl, tos, precedence: prec, id: ipId }
    fields = raw === undefined
      ? { IN: inIface, OUT: outIface, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText, ID: idText }
      : { IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TOS: tos, PREC: prec, TTL: ttlText, ID: idText }
  } else {
    const tc = decimalText(text, b, places[2 * F_A]!, places[2 * F_A + 1]!, decimalAt(b, places[2 * F_A]!, places[2 * F_A + 1]!))
    const hoplimit = placeDecimal(text, F_B)
    const flowLabel = placeText(text, F_C)
    ip = df
      ? { version: 6, length, ttl, flags: ["DF"], trafficClass: tc, flowLabel }
      : { version: 6, length, ttl, trafficClass: tc, flowLabel }
    fields = raw === undefined
      ? { IN: inIface, OUT: outIface, SRC: src, DST: dst, LEN: len, TC: tc, HOPLIMIT: hoplimit, FLOWLBL: flowLabel }
      : {
        IN: inIface, OUT: outIface, MAC: raw, SRC: src, DST: dst, LEN: len, TC: tc, HOPLIMIT: hoplimit,
        FLOWLBL: flowLabel
      }
  }
  if (df) fields.DF = ""
  fields.PROTO = protocol
  fields.TYPE = typeText
  fields.CODE = codeText
  let icmp: IcmpHeader
  if (echo) {
    if (!v4) fields.ID = placeDecimal(text, F_ECHO_ID)
    fields.SEQ = placeDecimal(text, F_ECHO_SEQ)
    icmp = { type, code, id: echoId, seq }
  } else if (hasMtu) {
    fields.MTU = placeDecimal(text, F_MTU)
    icmp = { type, code, mtu }
  } else icmp = { type, code }
  fields.ACTION = action

  // the event (keys in Schema order; `mac` and `inner` only when there is one)
  if (inner !== undefined) {
    return mac === undefined
      ? {
        timestamp: context.timestamp, action, host: context.host, protocol, src: { ip: srcIp }, dst: { ip: dstIp },
        in: inIface, out: outIface, ip, icmp, inner, fields
      }
      : {
        timestamp: context.timestamp, action, host: context.host, protocol, src: { ip: srcIp }, dst: { ip: dstIp },
        in: inIface, out: outIface, mac, ip, icmp, inner, fields
      }
  }
  return mac === undefined
    ? {
      timestamp: context.timestamp, action, host: context.host, protocol, src: { ip: srcIp }, dst: { ip: dstIp },
      in: inIface, out: outIface, ip, icmp, fields
    }
    : {
      timestamp: context.timestamp, action, host: context.host, protocol, src: { ip: srcIp }, dst: { ip: dstIp },
      in: inIface, out: outIface, mac, ip, icmp, fields
    }
}

/**
 * Tokens of `b[from..n)` (the codes of `scan.text`) into the scan; stops at a control character,
 * U+FFFD or a surrogate (binary data or invalid UTF-8), leaving the reason in `scan.error`. Two
 * tight loops per token: the key (up to `=`) and the value (which only looks for the next
 * separator).
 */
const scanTokens = (scan: Scan, b: Uint8Array, from: number, n: number): number => {
  let i = from
  let count = 0
  while (i < n) {
    let c = b[i]!
    if (c === 32 || c === 9) {
      i++
      continue
    }
    const start = i
    let eq = -1
    for (; i < n; i++) {
      c = b[i]!
      if (c > 32 && c < 127) {
        if (c === 61) {
          eq = i++
          break
        }
        continue
      }
      if (c === 32 || c === 9) break
      if (badCharacter(scan, c, i)) return -1
    }
    if (eq >= 0) {
      for (; i < n; i++) {
        c = b[i]!
        if (c > 32 && c < 127) continue
        if (c === 32 || c === 9) break
        if (badCharacter(scan, c, i)) return -1
      }
    }
    // the common case, `KEY=VALUE` with nothing pending and no `[`, skips `handleToken`
    if (eq > start && scan.state === S_NONE && b[start] !== 91 /* [ */) keyValue(scan, b, start, i, eq)
    else handleToken(scan, b, start, i, eq)
    count++
  }
  // a token that promised more at the end of the line
  if (scan.state === S_INCOMPLETE) scan.current.ipFlags |= IP_MF
  else if (scan.state === S_BYTES) scan.current.incomplete = scan.pendingBytes
  return count
}

// ---------------------------------------------------------------------------------------------
// Assembly into the Schema's plain object (keys in Schema order, optional keys only when known).

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
type IpHeader = NonNullable<DropEvent["ip"]>
type TcpHeader = NonNullable<DropEvent["tcp"]>
type IcmpHeader = NonNullable<DropEvent["icmp"]>
type Endpoint = DropEvent["src"]
type Inner = NonNullable<DropEvent["inner"]>

const endpoint = (ip: string | undefined, port: number): Endpoint => {
  if (ip === undefined) return port >= 0 ? { port } : {}
  return port >= 0 ? { ip, port } : { ip }
}

/** The names of the bits set in `bits`, in bit order. */
const flagList = (bits: number, names: ReadonlyArray<string>): Array<string> => {
  const flags: Array<string> = []
  for (let i = 0; i < names.length; i++) if (bits & (1 << i)) flags.push(names[i]!)
  return flags
}

const ipHeader = (p: Packet): IpHeader | undefined => {
  if (p.version !== 4 && p.version !== 6) return undefined
  let ip: Mutable<IpHeader>
  // the usual IPv4 and IPv6 headers as one literal each (one hidden class, no transitions)
  if (p.ipLength >= 0 && p.ttl >= 0 && p.tos !== undefined && p.prec !== undefined && p.ipId >= 0) {
    ip = { version: p.version, length: p.ipLength, ttl: p.ttl, tos: p.tos, precedence: p.prec, id: p.ipId }
  } else if (p.ipLength >= 0 && p.ttl >= 0 && p.tos === undefined && p.prec === undefined && p.ipId < 0) {
    ip = { version: p.version, length: p.ipLength, ttl: p.ttl }
  } else {
    ip = { version: p.version }
    if (p.ipLength >= 0) ip.length = p.ipLength
    if (p.ttl >= 0) ip.ttl = p.ttl
    if (p.tos !== undefined) ip.tos = p.tos
    if (p.prec !== undefined) ip.precedence = p.prec
    if (p.ipId >= 0) ip.id = p.ipId
  }
  if (p.ipFlags !== 0) ip.flags = p.ipFlags === IP_DF ? ["DF"] : flagList(p.ipFlags, ipFlagNames)
  if (p.fragOffset >= 0) ip.fragmentOffset = p.fragOffset
  if (p.ipOptions !== undefined) ip.options = p.ipOptions
  if (p.tc !== undefined) ip.trafficClass = p.tc
  if (p.flowLabel !== undefined) ip.flowLabel = p.flowLabel
  return ip
}

const tcpHeader = (p: Packet): TcpHeader | undefined => {
  if (p.proto !== "TCP") return undefined
  if (p.window < 0 && p.tcpFlags === 0 && p.seq < 0 && p.res === undefined && p.urgp < 0) return undefined
  const flags = p.tcpFlags === TCP_SYN ? ["SYN"] : flagList(p.tcpFlags, tcpFlagNames)
  if (p.seq < 0 && p.ack < 0 && p.window >= 0 && p.res !== undefined && p.urgp >= 0 && p.tcpOptions === undefined) {
    // the usual header (no `log flags tcp sequence/options`) as one literal
    return { window: p.window, reserved: p.res, flags, urgentPointer: p.urgp }
  }
  // built key by key so the keys come in Schema order (the JSON line follows it)
  const tcp: Record<string, unknown> = {}
  if (p.seq >= 0) tcp.seq = p.seq
  if (p.ack >= 0) tcp.ack = p.ack
  if (p.window >= 0) tcp.window = p.window
  if (p.res !== undefined) tcp.reserved = p.res
  tcp.flags = flags
  if (p.urgp >= 0) tcp.urgentPointer = p.urgp
  if (p.tcpOptions !== undefined) tcp.options = p.tcpOptions
  return tcp as TcpHeader
}

const icmpHeader = (p: Packet): IcmpHeader | undefined => {
  if (!isIcmp(p.proto) || p.icmpType < 0) return undefined
  const icmp: Mutable<IcmpHeader> = { type: p.icmpType }
  if (p.icmpCode >= 0) icmp.code = p.icmpCode
  if (p.icmpId >= 0) icmp.id = p.icmpId
  if (p.icmpSeq >= 0) icmp.seq = p.icmpSeq
  if (p.parameter >= 0) icmp.parameter = p.parameter
  if (p.gateway !== undefined) icmp.gateway = p.gateway
  if (p.mtu >= 0) icmp.mtu = p.mtu
  return icmp
}

const innerPacket = (p: Packet): Inner => {
  const inner: Mutable<Inner> = {}
  if (p.proto !== undefined) inner.protocol = p.proto
  if (p.src !== undefined || p.spt >= 0) inner.src = endpoint(p.src, p.spt)
  if (p.dst !== undefined || p.dpt >= 0) inner.dst = endpoint(p.dst, p.dpt)
  const ip = ipHeader(p)
  if (ip !== undefined) inner.ip = ip
  const tcp = tcpHeader(p)
  if (tcp !== undefined) inner.tcp = tcp
  if (isUdp(p.proto) && p.udpLength >= 0) inner.udp = { length: p.udpLength }
  const icmp = icmpHeader(p)
  if (icmp !== undefined) inner.icmp = icmp
  if (p.incomplete >= 0) inner.incomplete = p.incomplete
  return inner
}

const macHeader = (line: Packet): DropEvent["mac"] => {
  const raw = line.mac
  if (raw !== undefined && raw.length === 41) {
    // 14 bytes: destination, source, EtherType (the texts kept for the last MAC read, when it is this one)
    const slot = line.macSlot
    if (slot >= 0) return { dst: macDsts[slot]!, src: macSrcs[slot]!, ethertype: macEtherTypes[slot]! }
    return {
      dst: raw.slice(0, 17),
      src: raw.slice(18, 35),
      ethertype: line.macEtherType ?? `0x${raw.slice(36, 38)}${raw.slice(39, 41)}`
    }
  }
  if (line.macSrc !== undefined || line.macDst !== undefined) {
    const mac: Mutable<NonNullable<DropEvent["mac"]>> = {}
    if (line.macDst !== undefined) mac.dst = line.macDst
    if (line.macSrc !== undefined) mac.src = line.macSrc
    if (line.macProto !== undefined) mac.ethertype = `0x${line.macProto}`
    return mac
  }
  if (raw !== undefined && raw.length > 0) return { raw }
  return undefined
}

const assemble = (line: Packet, action: Action, context: LineContext, fields: Record<string, string>): DropEvent => {
  const mac = macHeader(line)
  const ip = ipHeader(line)
  const tcp = tcpHeader(line)
  const udp = isUdp(line.proto) && line.udpLength >= 0
  if (
    mac !== undefined && ip !== undefined && line.physin === undefined && line.physout === undefined &&
    line.inner === undefined && !line.arp && line.icmpType < 0 && line.spi < 0 && line.mark < 0 && line.uid < 0 &&
    line.gid < 0 && line.incomplete < 0 && line.unknown === undefined && (tcp === undefined) === udp
  ) {
    // the usual TCP and UDP events as one literal each (one hidden class, no transitions)
    const src = endpoint(line.src, line.spt)
    const dst = endpoint(line.dst, line.dpt)
    const proto = line.proto ?? ""
    const inIface = line.inIface ?? ""
    const outIface = line.outIface ?? ""
    if (tcp !== undefined) {
      return {
        timestamp: context.timestamp, action, host: context.host, protocol: proto, src, dst, in: inIface, out: outIface,
        mac, ip, tcp, fields
      }
    }
    return {
      timestamp: context.timestamp, action, host: context.host, protocol: proto, src, dst, in: inIface, out: outIface,
      mac, ip, udp: { length: line.udpLength }, fields
    }
  }
  // otherwise built key by key so the keys come in Schema order (the JSON line follows it)
  const event: Record<string, unknown> = {
    timestamp: context.timestamp,
    action,
    host: context.host,
    protocol: line.proto ?? "",
    src: endpoint(line.src, line.spt),
    dst: endpoint(line.dst, line.dpt),
    in: line.inIface ?? "",
    out: line.outIface ?? ""
  }
  if (line.physin !== undefined) event.physin = line.physin
  if (line.physout !== undefined) event.physout = line.physout
  if (mac !== undefined) event.mac = mac
  if (ip !== undefined) event.ip = ip
  if (tcp !== undefined) event.tcp = tcp
  if (udp) event.udp = { length: line.udpLength }
  const icmp = icmpHeader(line)
  if (icmp !== undefined) event.icmp = icmp
  if (line.inner !== undefined) event.inner = innerPacket(line.inner)
  if (line.arp) {
    const arp: Mutable<NonNullable<DropEvent["arp"]>> = {}
    if (line.htype >= 0) arp.htype = line.htype
    if (line.ptype !== undefined) arp.ptype = line.ptype
    if (line.opcode >= 0) arp.opcode = line.opcode
    if (line.arpMacSrc !== undefined) arp.macSrc = line.arpMacSrc
    if (line.arpMacDst !== undefined) arp.macDst = line.arpMacDst
    event.arp = arp
  }
  if (line.spi >= 0) event.spi = line.spi
  if (line.mark >= 0) event.mark = line.mark
  if (line.uid >= 0) event.uid = line.uid
  if (line.gid >= 0) event.gid = line.gid
  if (line.incomplete >= 0) event.incomplete = line.incomplete
  if (line.unknown !== undefined) event.unknown = line.unknown
  event.fields = fields
  return event as DropEvent
}

// ---------------------------------------------------------------------------------------------

/** Parses `text[from..]`, the KEY=VALUE part after the prefix; `b` is `codesOf(text)`. */
const parseFrom = (text: string, b: Uint8Array, from: number, action: Action, context: LineContext): ParseResult => {
  const n = text.length
  const v = viewOf(b)
  const headEnd = readHead(b, v, from, n)
  if (headEnd >= 0) {
    const tail = readTail(b, v, headEnd, n)
    if (tail !== TAIL_NONE) {
      const event = tail === TAIL_TCP_UDP ? fastEvent(text, b, v, action, context) : icmpEvent(text, b, v, action, context)
      if (event !== undefined) return { _tag: "Event", event }
    }
  }
  const scan = new Scan(text)
  let count = 0
  if (headEnd >= 0) {
    applyHead(scan, b, v)
    count = scanTokens(scan, b, headEnd, n)
    if (count >= 0) count++ // (the head's tokens)
  } else count = scanTokens(scan, b, from, n)
  if (count < 0) return { _tag: "Malformed", reason: scan.error ?? "unreadable" }
  if (count === 0) return { _tag: "Malformed", reason: "nothing after the prefix" }
  const outer = scan.outer
  if (outer.inIface === undefined && outer.outIface === undefined) {
    return { _tag: "Malformed", reason: "not a netfilter log line (no IN= or OUT=)" }
  }
  scan.fields.ACTION = action
  return { _tag: "Event", event: assemble(outer, action, context, scan.fields) }
}

/** The KEY=VALUE part (after the prefix) of a line already classified. Never throws. */
export const parseBody = (body: string, action: Action, context: LineContext): ParseResult => {
  try {
    return parseFrom(body, codesOf(body), 0, action, context)
  } catch (cause) {
    return { _tag: "Malformed", reason: `parser error: ${String(cause)}` }
  }
}

/** Whether a prefix of `prefixes` is empty or starts with the code `first`. */
const firstOfAny = (first: number, prefixes: ReadonlyArray<string>): boolean => {
  for (let i = 0; i < prefixes.length; i++) {
    const prefix = prefixes[i]!
    if (prefix.length === 0 || prefix.charCodeAt(0) === first) return true
  }
  return false
}

// A line that may have a prefix is encoded first (the parse needs its codes anyway), and the
// prefixes are compared with its codes as words, like keys (`Key`), instead of a `lastIndexOf`
// per prefix on the string (a builtin call that costs more than the words).

/**
 * A prefix list as codes: per prefix its length and how many words follow (-1: compared as a
 * string: under 4 characters or not ASCII), then its codes as little-endian words, every 4 and the
 * last 4; made again when the list's strings are not `texts`.
 */
class PrefixWords {
  texts: ReadonlyArray<string> = []
  words: Int32Array = new Int32Array(0)
}
const dropWords = new PrefixWords()
const acceptWords = new PrefixWords()

const makeWords = (cache: PrefixWords, prefixes: ReadonlyArray<string>): void => {
  const words: Array<number> = []
  for (const prefix of prefixes) {
    const length = prefix.length
    // (a code over 0x7f would stand for many characters in the codes, see `codesOf`)
    if (length < 4 || Array.from(prefix).some((c) => c.charCodeAt(0) > 0x7f)) {
      words.push(length, -1)
      continue
    }
    const count = Math.ceil(length / 4)
    words.push(length, count)
    for (let k = 0; k < count; k++) words.push(new Key(prefix.slice(Math.min(4 * k, length - 4))).first)
  }
  cache.texts = [...prefixes]
  cache.words = Int32Array.from(words)
}

/** Where `message`'s prefix among `prefixes` ends, or -1 (as `classify`), from its codes (then zeros) in `v` (see `codesOf`). */
const prefixIn = (cache: PrefixWords, prefixes: ReadonlyArray<string>, message: string, v: DataView): number => {
  const n = message.length
  for (let p = 0, k = 0; p < prefixes.length; p++) {
    // (a list longer than `texts` meets an undefined here)
    if (prefixes[p] !== cache.texts[p]) {
      makeWords(cache, prefixes)
      return prefixIn(cache, prefixes, message, v)
    }
    const words = cache.words
    const length = words[k]!
    const count = words[k + 1]!
    k += 2
    if (count < 0) {
      if (message.startsWith(prefixes[p]!)) return length
      continue
    }
    let j = 0
    if (length <= n) while (j < count && v.getInt32(Math.min(4 * j, length - 4), true) === words[k + j]) j++
    if (j === count) return length
    k += count
  }
  return -1
}

/** classify + parse one journal MESSAGE. Never throws. */
export const parseLine = (message: string, prefixes: Prefixes, context: LineContext): ParseResult => {
  const n = message.length
  if (n === 0) return { _tag: "Skipped", reason: "empty message" }
  // a line no prefix starts like is not ours (most other kernel lines: no encoding, no comparison)
  const first = message.charCodeAt(0)
  if (!firstOfAny(first, prefixes.drop) && !firstOfAny(first, prefixes.accept)) {
    return { _tag: "Skipped", reason: "no drop or accept prefix" }
  }
  if (n > maxLineLength) return longLine(message, prefixes)
  try {
    return parseEncoded(message, codesOf(message), prefixes, context)
  } catch (cause) {
    // not expected; the contract is "never throws", so a parser bug becomes a reported line
    return { _tag: "Malformed", reason: `parser error: ${String(cause)}` }
  }
}

/** `parseLine` of a line whose codes are in `b` (the shared buffer). */
const parseEncoded = (message: string, b: Uint8Array, prefixes: Prefixes, context: LineContext): ParseResult => {
  // classify without slicing: the body is parsed in place after the prefix
  let action: Action = "drop"
  let from = prefixIn(dropWords, prefixes.drop, message, codeBufferView)
  if (from < 0) {
    action = "accept"
    from = prefixIn(acceptWords, prefixes.accept, message, codeBufferView)
    if (from < 0) return { _tag: "Skipped", reason: "no drop or accept prefix" }
  }
  return parseFrom(message, b, from, action, context)
}

/** `parseLine` of a line over `maxLineLength` (not encoded: the prefixes compared as strings). */
const longLine = (message: string, prefixes: Prefixes): ParseResult => {
  if (classify(message, prefixes) === undefined) {
    return { _tag: "Skipped", reason: "no drop or accept prefix" }
  }
  return { _tag: "Malformed", reason: `line too long (${message.length} characters, limit ${maxLineLength})` }
}

// ---------------------------------------------------------------------------------------------

/** Keys replayed first, in the kernel's order, so LEN/ID before PROTO mean the IP header's. */
const replayOrder = [
  "IN", "OUT", "PHYSIN", "PHYSOUT", "MAC", "MACSRC", "MACDST", "MACPROTO", "ARP", "HTYPE", "PTYPE", "OPCODE",
  "SRC", "DST", "LEN", "TOS", "PREC", "TTL", "ID", "TC", "HOPLIMIT", "FLOWLBL", "CE", "DF", "MF", "PROTO"
] as const
const replayed: ReadonlySet<string> = new Set([...replayOrder, "ACTION"])

const replay = (outer: Packet, key: string, value: string): void => {
  const id = tokenIds.get(key) ?? 0
  let known: boolean
  if (value === "" && id > K_IPDST) known = applyWord(outer, outer, id) // a bare flag arrives as KEY → ""
  else if (value === "" && id === K_ACK) known = applyWord(outer, outer, id) // ACK the flag, not ACK=<n>
  else if (value === "" && id === 0) known = applyOtherWord(outer, key) // FRAG:N, ID:hex
  else known = id !== 0 && id <= K_IPDST && applyKv(outer, outer, id, value, codesOf(value), 0, value.length) !== undefined
  if (!known) addUnknown(outer, value === "" ? key : `${key}=${value}`)
}

/**
 * An event from an upstream-style wire map (KEY → VALUE, plus ACTION), for clients that send only
 * `fields` (the Go client). Never throws; missing keys leave fields absent. ACTION is matched
 * case-insensitively (one upstream version sent `Drop`/`Accept`); a map without ACTION is a drop
 * (upstream clients before accept support shipped only drops); any other ACTION → undefined.
 */
export const eventFromFields = (
  fields: Readonly<Record<string, string>>,
  context: LineContext
): DropEvent | undefined => {
  try {
    const rawAction = fields.ACTION
    const lowered = typeof rawAction === "string" ? rawAction.toLowerCase() : "drop"
    if (lowered !== "drop" && lowered !== "accept") return undefined
    const action: Action = lowered
    const outer = new Packet()
    for (const key of replayOrder) {
      const value = Object.hasOwn(fields, key) ? fields[key] : undefined
      if (typeof value === "string") replay(outer, key, value)
    }
    const copy: Record<string, string> = {}
    for (const key of Object.keys(fields)) {
      const value = fields[key]
      if (typeof value !== "string") continue
      setOtherField(copy, key, value)
      if (!replayed.has(key)) replay(outer, key, value)
    }
    return assemble(outer, action, context, copy)
  } catch {
    return undefined
  }
}
