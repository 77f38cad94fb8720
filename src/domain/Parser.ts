/**
 * Classification and parsing of netfilter log lines (pure, no I/O).
 *
 * The format is what the kernel's nf_log_syslog.c prints for nftables `log` and iptables `LOG`:
 * space-separated `KEY=VALUE` tokens and bare flags, in a fixed order, with two exceptions to
 * "one token, one fact": `OPT (...)` groups and the `[...]` inner packet of ICMP errors, whose
 * keys repeat the outer packet's. The parser is a hand-written two-pass tokenizer (no regex, no
 * Schema): it runs for every kernel line the client reads, so it has to do ~1M lines/s.
 */
import type { Action, DropEvent } from "./DropEvent.ts"
import { canonicalIp } from "./Ip.ts"

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

/** `0x2a` → 42 (MARK, SPI); -1 when not hex. */
const parse0x = (s: string): number => (s.length > 2 && s.charCodeAt(0) === 48 && s.charCodeAt(1) === 120 ? parseHex(s, 2) : -1)

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
  macSrc: string | undefined = undefined
  macDst: string | undefined = undefined
  macProto: string | undefined = undefined
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
// Token ids. Keys and bare words the kernel prints get a small number, found by length and a
// `startsWith` at the token's offset: no substring for the key, no string-switch, and the wire
// map is written with the constant (internalized) name.

const K_IN = 1
const K_OUT = 2
const K_PHYSIN = 3
const K_PHYSOUT = 4
const K_MAC = 5
const K_MACSRC = 6
const K_MACDST = 7
const K_MACPROTO = 8
const K_SRC = 9
const K_DST = 10
const K_LEN = 11
const K_TOS = 12
const K_PREC = 13
const K_TTL = 14
const K_ID = 15
const K_TC = 16
const K_HOPLIMIT = 17
const K_FLOWLBL = 18
const K_PROTO = 19
const K_SPT = 20
const K_DPT = 21
const K_SEQ = 22
const K_ACK = 23 // also the bare ACK flag: one wire key
const K_WINDOW = 24
const K_RES = 25
const K_URGP = 26
const K_TYPE = 27
const K_CODE = 28
const K_PARAMETER = 29
const K_POINTER = 30
const K_GATEWAY = 31
const K_MTU = 32
const K_SPI = 33
const K_UID = 34
const K_GID = 35
const K_MARK = 36
const K_HTYPE = 37
const K_PTYPE = 38
const K_OPCODE = 39
const K_IPSRC = 40
const K_IPDST = 41
// bare words
const W_CE = 42
const W_DF = 43
const W_MF = 44
const W_AE = 45
const W_CWR = 46
const W_ECE = 47
const W_URG = 48
const W_PSH = 49
const W_RST = 50
const W_SYN = 51
const W_FIN = 52
const W_ARP = 53
const W_INCOMPLETE = 54
const W_OPT = 55
const W_AH = 56
const W_ESP = 57

const tokenNames = [
  "", "IN", "OUT", "PHYSIN", "PHYSOUT", "MAC", "MACSRC", "MACDST", "MACPROTO", "SRC", "DST", "LEN", "TOS", "PREC",
  "TTL", "ID", "TC", "HOPLIMIT", "FLOWLBL", "PROTO", "SPT", "DPT", "SEQ", "ACK", "WINDOW", "RES", "URGP", "TYPE",
  "CODE", "PARAMETER", "POINTER", "GATEWAY", "MTU", "SPI", "UID", "GID", "MARK", "HTYPE", "PTYPE", "OPCODE",
  "IPSRC", "IPDST", "CE", "DF", "MF", "AE", "CWR", "ECE", "URG", "PSH", "RST", "SYN", "FIN", "ARP", "INCOMPLETE",
  "OPT", "AH", "ESP"
] as const
const tokenIds: ReadonlyMap<string, number> = new Map(tokenNames.map((name, id) => [name, id]))

/** The first `count` characters at `from` as one integer, as the scan packs them. */
const packAt = (text: string, from: number, count: number): number => {
  let packed = 0
  for (let i = 0; i < count; i++) packed = packed * 256 + text.charCodeAt(from + i)
  return packed
}

/** Whether `text[from+4..]` continues with the rest of `word` (its first four characters matched). */
const rest = (text: string, from: number, word: string): boolean => {
  for (let i = 4; i < word.length; i++) if (text.charCodeAt(from + i) !== word.charCodeAt(i)) return false
  return true
}

/**
 * The id of `text[from..from+len)` when it is a key/word the kernel prints, else 0. Dispatches on
 * the length and `packed`, the first (up to) four characters as one integer (an integer switch),
 * then compares the rest: no substring, no string switch. Generated from `tokenNames`.
 */
const tokenId = (text: string, from: number, len: number, packed: number): number => {
  if (len < 2 || len > 10) return 0
  switch (len) {
    case 2:
      switch (packed) {
        case 0x4145: // AE
          return W_AE
        case 0x4148: // AH
          return W_AH
        case 0x4345: // CE
          return W_CE
        case 0x4446: // DF
          return W_DF
        case 0x4944: // ID
          return K_ID
        case 0x494e: // IN
          return K_IN
        case 0x4d46: // MF
          return W_MF
        case 0x5443: // TC
          return K_TC
      }
      return 0
    case 3:
      switch (packed) {
        case 0x41434b: // ACK
          return K_ACK
        case 0x415250: // ARP
          return W_ARP
        case 0x435752: // CWR
          return W_CWR
        case 0x445054: // DPT
          return K_DPT
        case 0x445354: // DST
          return K_DST
        case 0x454345: // ECE
          return W_ECE
        case 0x455350: // ESP
          return W_ESP
        case 0x46494e: // FIN
          return W_FIN
        case 0x474944: // GID
          return K_GID
        case 0x4c454e: // LEN
          return K_LEN
        case 0x4d4143: // MAC
          return K_MAC
        case 0x4d5455: // MTU
          return K_MTU
        case 0x4f5054: // OPT
          return W_OPT
        case 0x4f5554: // OUT
          return K_OUT
        case 0x505348: // PSH
          return W_PSH
        case 0x524553: // RES
          return K_RES
        case 0x525354: // RST
          return W_RST
        case 0x534551: // SEQ
          return K_SEQ
        case 0x535049: // SPI
          return K_SPI
        case 0x535054: // SPT
          return K_SPT
        case 0x535243: // SRC
          return K_SRC
        case 0x53594e: // SYN
          return W_SYN
        case 0x544f53: // TOS
          return K_TOS
        case 0x54544c: // TTL
          return K_TTL
        case 0x554944: // UID
          return K_UID
        case 0x555247: // URG
          return W_URG
      }
      return 0
    case 4:
      switch (packed) {
        case 0x434f4445: // CODE
          return K_CODE
        case 0x4d41524b: // MARK
          return K_MARK
        case 0x50524543: // PREC
          return K_PREC
        case 0x54595045: // TYPE
          return K_TYPE
        case 0x55524750: // URGP
          return K_URGP
      }
      return 0
    case 5:
      switch (packed) {
        case 0x48545950: // HTYPE
          return rest(text, from, "HTYPE") ? K_HTYPE : 0
        case 0x49504453: // IPDST
          return rest(text, from, "IPDST") ? K_IPDST : 0
        case 0x49505352: // IPSRC
          return rest(text, from, "IPSRC") ? K_IPSRC : 0
        case 0x50524f54: // PROTO
          return rest(text, from, "PROTO") ? K_PROTO : 0
        case 0x50545950: // PTYPE
          return rest(text, from, "PTYPE") ? K_PTYPE : 0
      }
      return 0
    case 6:
      switch (packed) {
        case 0x4d414344: // MACDST
          return rest(text, from, "MACDST") ? K_MACDST : 0
        case 0x4d414353: // MACSRC
          return rest(text, from, "MACSRC") ? K_MACSRC : 0
        case 0x4f50434f: // OPCODE
          return rest(text, from, "OPCODE") ? K_OPCODE : 0
        case 0x50485953: // PHYSIN
          return rest(text, from, "PHYSIN") ? K_PHYSIN : 0
        case 0x57494e44: // WINDOW
          return rest(text, from, "WINDOW") ? K_WINDOW : 0
      }
      return 0
    case 7:
      switch (packed) {
        case 0x464c4f57: // FLOWLBL
          return rest(text, from, "FLOWLBL") ? K_FLOWLBL : 0
        case 0x47415445: // GATEWAY
          return rest(text, from, "GATEWAY") ? K_GATEWAY : 0
        case 0x50485953: // PHYSOUT
          return rest(text, from, "PHYSOUT") ? K_PHYSOUT : 0
        case 0x504f494e: // POINTER
          return rest(text, from, "POINTER") ? K_POINTER : 0
      }
      return 0
    case 8:
      switch (packed) {
        case 0x484f504c: // HOPLIMIT
          return rest(text, from, "HOPLIMIT") ? K_HOPLIMIT : 0
        case 0x4d414350: // MACPROTO
          return rest(text, from, "MACPROTO") ? K_MACPROTO : 0
      }
      return 0
    case 9:
      switch (packed) {
        case 0x50415241: // PARAMETER
          return rest(text, from, "PARAMETER") ? K_PARAMETER : 0
      }
      return 0
    case 10:
      switch (packed) {
        case 0x494e434f: // INCOMPLETE
          return rest(text, from, "INCOMPLETE") ? W_INCOMPLETE : 0
      }
      return 0
  }
  return 0
}

/**
 * A `KEY=VALUE` token with a known key into packet `p` (`outer` for outer-only keys). Returns
 * false when the key is not one the kernel prints at that place.
 */
const applyKv = (outer: Packet, p: Packet, id: number, value: string): boolean => {
  switch (id) {
    case K_SRC:
      p.src = canonicalIp(value)
      if (p.version === 0) p.version = value.indexOf(":") >= 0 ? 6 : 4
      return true
    case K_DST:
      p.dst = canonicalIp(value)
      return true
    case K_LEN:
      // first LEN is the IP header's; after PROTO=UDP/UDPLITE it is the UDP header's
      if (p.proto === undefined) p.ipLength = parseDecimal(value)
      else if (isUdp(p.proto)) p.udpLength = parseDecimal(value)
      else return false
      return true
    case K_TOS:
      p.tos = value
      return true
    case K_PREC:
      p.prec = value
      return true
    case K_TTL:
      p.ttl = parseDecimal(value)
      return true
    case K_HOPLIMIT:
      p.ttl = parseDecimal(value)
      p.version = 6
      return true
    case K_ID:
      // first ID is the IPv4 header's; after PROTO=ICMP it is the echo identifier
      if (p.proto === undefined) p.ipId = parseDecimal(value)
      else if (isIcmp(p.proto)) p.icmpId = parseDecimal(value)
      else return false
      return true
    case K_TC:
      p.tc = value
      p.version = 6
      return true
    case K_FLOWLBL:
      p.flowLabel = value
      p.version = 6
      return true
    case K_PROTO:
      p.proto = value
      return true
    case K_SPT:
      p.spt = parseDecimal(value)
      return true
    case K_DPT:
      p.dpt = parseDecimal(value)
      return true
    case K_SEQ:
      if (isIcmp(p.proto)) p.icmpSeq = parseDecimal(value)
      else p.seq = parseDecimal(value)
      return true
    case K_ACK:
      p.ack = parseDecimal(value)
      return true
    case K_WINDOW:
      p.window = parseDecimal(value)
      return true
    case K_RES:
      p.res = value
      return true
    case K_URGP:
      p.urgp = parseDecimal(value)
      return true
    case K_TYPE:
      p.icmpType = parseDecimal(value)
      return true
    case K_CODE:
      p.icmpCode = parseDecimal(value)
      return true
    case K_PARAMETER:
      p.parameter = parseDecimal(value)
      return true
    case K_POINTER: // ICMPv6 parameter problem, %08x
      p.parameter = parseHex(value, 0)
      return true
    case K_GATEWAY:
      p.gateway = value
      return true
    case K_MTU:
      p.mtu = parseDecimal(value)
      return true
    case K_SPI:
      p.spi = parse0x(value)
      return true
  }
  if (p !== outer) return false
  switch (id) {
    case K_IN:
      p.inIface = value
      return true
    case K_OUT:
      p.outIface = value
      return true
    case K_PHYSIN:
      p.physin = value
      return true
    case K_PHYSOUT:
      p.physout = value
      return true
    case K_MAC:
      p.mac = value
      return true
    case K_MACSRC: // link layer (`log flags ether`) before ARP, ARP payload after it
      if (p.arp) p.arpMacSrc = value
      else p.macSrc = value
      return true
    case K_MACDST:
      if (p.arp) p.arpMacDst = value
      else p.macDst = value
      return true
    case K_MACPROTO:
      p.macProto = value
      return true
    case K_HTYPE:
      p.htype = parseDecimal(value)
      return true
    case K_PTYPE:
      p.ptype = value
      return true
    case K_OPCODE:
      p.opcode = parseDecimal(value)
      return true
    case K_IPSRC:
      p.src = canonicalIp(value)
      return true
    case K_IPDST:
      p.dst = canonicalIp(value)
      return true
    case K_MARK:
      p.mark = parse0x(value)
      return true
    case K_UID:
      p.uid = parseDecimal(value)
      return true
    case K_GID:
      p.gid = parseDecimal(value)
      return true
  }
  return false
}

/** A bare word with a known id: IP and TCP flags, `ARP`, IPv6 extension header names. */
const applyWord = (outer: Packet, p: Packet, id: number): boolean => {
  switch (id) {
    case W_CE:
      p.ipFlags |= IP_CE
      return true
    case W_DF:
      p.ipFlags |= IP_DF
      return true
    case W_MF:
    case W_INCOMPLETE: // IPv6 fragment header with the M bit (the `[N bytes]` form is handled before)
      p.ipFlags |= IP_MF
      return true
    case W_AH:
      p.ipFlags |= IP_AH
      return true
    case W_ESP:
      p.ipFlags |= IP_ESP
      return true
    case W_ARP:
      if (p !== outer) return false
      p.arp = true
      p.proto = "ARP"
      return true
    case W_AE:
    case W_CWR:
    case W_ECE:
    case W_URG:
    case K_ACK:
    case W_PSH:
    case W_RST:
    case W_SYN:
    case W_FIN:
      if (p.proto !== "TCP") return false
      p.tcpFlags |= 1 << (id === K_ACK ? 4 : id < W_PSH ? id - W_AE : id - W_AE + 1)
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
  readonly fields: Record<string, string> = {}
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
    case K_IN:
      fields.IN = value
      return
    case K_OUT:
      fields.OUT = value
      return
    case K_PHYSIN:
      fields.PHYSIN = value
      return
    case K_PHYSOUT:
      fields.PHYSOUT = value
      return
    case K_MAC:
      fields.MAC = value
      return
    case K_MACSRC:
      fields.MACSRC = value
      return
    case K_MACDST:
      fields.MACDST = value
      return
    case K_MACPROTO:
      fields.MACPROTO = value
      return
    case K_SRC:
      fields.SRC = value
      return
    case K_DST:
      fields.DST = value
      return
    case K_LEN:
      fields.LEN = value
      return
    case K_TOS:
      fields.TOS = value
      return
    case K_PREC:
      fields.PREC = value
      return
    case K_TTL:
      fields.TTL = value
      return
    case K_ID:
      fields.ID = value
      return
    case K_TC:
      fields.TC = value
      return
    case K_HOPLIMIT:
      fields.HOPLIMIT = value
      return
    case K_FLOWLBL:
      fields.FLOWLBL = value
      return
    case K_PROTO:
      fields.PROTO = value
      return
    case K_SPT:
      fields.SPT = value
      return
    case K_DPT:
      fields.DPT = value
      return
    case K_SEQ:
      fields.SEQ = value
      return
    case K_ACK:
      fields.ACK = value
      return
    case K_WINDOW:
      fields.WINDOW = value
      return
    case K_RES:
      fields.RES = value
      return
    case K_URGP:
      fields.URGP = value
      return
    case K_TYPE:
      fields.TYPE = value
      return
    case K_CODE:
      fields.CODE = value
      return
    case K_PARAMETER:
      fields.PARAMETER = value
      return
    case K_POINTER:
      fields.POINTER = value
      return
    case K_GATEWAY:
      fields.GATEWAY = value
      return
    case K_MTU:
      fields.MTU = value
      return
    case K_SPI:
      fields.SPI = value
      return
    case K_UID:
      fields.UID = value
      return
    case K_GID:
      fields.GID = value
      return
    case K_MARK:
      fields.MARK = value
      return
    case K_HTYPE:
      fields.HTYPE = value
      return
    case K_PTYPE:
      fields.PTYPE = value
      return
    case K_OPCODE:
      fields.OPCODE = value
      return
    case K_IPSRC:
      fields.IPSRC = value
      return
    case K_IPDST:
      fields.IPDST = value
      return
    case W_CE:
      fields.CE = value
      return
    case W_DF:
      fields.DF = value
      return
    case W_MF:
      fields.MF = value
      return
    case W_AE:
      fields.AE = value
      return
    case W_CWR:
      fields.CWR = value
      return
    case W_ECE:
      fields.ECE = value
      return
    case W_URG:
      fields.URG = value
      return
    case W_PSH:
      fields.PSH = value
      return
    case W_RST:
      fields.RST = value
      return
    case W_SYN:
      fields.SYN = value
      return
    case W_FIN:
      fields.FIN = value
      return
    case W_ARP:
      fields.ARP = value
      return
    case W_INCOMPLETE:
      fields.INCOMPLETE = value
      return
    case W_OPT:
      fields.OPT = value
      return
    case W_AH:
      fields.AH = value
      return
    case W_ESP:
      fields.ESP = value
      return
  }
}

const handleToken = (scan: Scan, s: number, e: number, eq: number, packed: number): void => {
  const text = scan.text
  const outer = scan.outer
  let p = scan.current
  const first = text.charCodeAt(s)

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
      if (text.charCodeAt(e - 1) === 41 /* ) */) {
        const options = text.slice(s + 1, e - 1)
        if (p.proto === "TCP") p.tcpOptions = options
        else p.ipOptions = options
        if (p === outer) setOtherField(scan.fields, text.slice(s, e), "")
        return
      }
    } else if (state === S_INCOMPLETE) {
      if (first === 91 /* [ */) {
        scan.pendingBytes = parseDecimal(text.slice(s + 1, e))
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
    if (e - s > 1) {
      const keyLength = (eq > s ? eq : e) - s - 1
      handleToken(scan, s + 1, e, eq, packAt(text, s + 1, keyLength < 4 ? keyLength : 4))
    }
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
    const id = tokenId(text, s, eq - s, packed)
    const value = text.slice(eq + 1, e)
    if (id !== 0 && id <= K_IPDST && applyKv(outer, p, id, value)) {
      if (p === outer) setKnownField(scan, id, value)
      return
    }
    if (p === outer) {
      if (id !== 0) setKnownField(scan, id, value)
      else setOtherField(scan.fields, text.slice(s, eq), value)
    }
    addUnknown(outer, text.slice(s, e))
    return
  }

  const id = tokenId(text, s, e - s, packed)
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

/** Sets `scan.error` when `c` (outside printable ASCII and not a separator) is not acceptable. */
const badCharacter = (scan: Scan, c: number, i: number): boolean => {
  if (c < 32 || c === 127) {
    scan.error = `binary data (control character 0x${c.toString(16).padStart(2, "0")} at column ${i + 1})`
    return true
  }
  if (c >= 0xd800 && (c <= 0xdfff || c === 0xfffd)) {
    scan.error = `invalid UTF-8 (replacement or surrogate character at column ${i + 1})`
    return true
  }
  return false
}

/**
 * Tokens of `text[from..]` into the scan; stops at a control character, U+FFFD or a lone
 * surrogate (binary data or invalid UTF-8), leaving the reason in `scan.error`. Two tight loops per
 * token: the key (packing its first four characters for `tokenId` on the way) and the value (which
 * only looks for the next separator).
 */
const scanTokens = (scan: Scan, from: number): number => {
  const text = scan.text
  const n = text.length
  let count = 0
  let i = from
  while (i < n) {
    let c = text.charCodeAt(i)
    if (c === 32 || c === 9) {
      i++
      continue
    }
    const start = i
    let packed = 0
    let eq = -1
    for (; i < n; i++) {
      c = text.charCodeAt(i)
      if (c > 32 && c < 127) {
        if (c === 61) {
          eq = i++
          break
        }
        if (i - start < 4) packed = packed * 256 + c
        continue
      }
      if (c === 32 || c === 9) break
      if (badCharacter(scan, c, i)) return -1
      if (i - start < 4) packed = packed * 256 + c
    }
    if (eq >= 0) {
      for (; i < n; i++) {
        c = text.charCodeAt(i)
        if (c > 32 && c < 127) continue
        if (c === 32 || c === 9) break
        if (badCharacter(scan, c, i)) return -1
      }
    }
    handleToken(scan, start, i, eq, packed)
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

const ipHeader = (p: Packet): IpHeader | undefined => {
  if (p.version !== 4 && p.version !== 6) return undefined
  const ip: Mutable<IpHeader> = { version: p.version }
  if (p.ipLength >= 0) ip.length = p.ipLength
  if (p.ttl >= 0) ip.ttl = p.ttl
  if (p.tos !== undefined) ip.tos = p.tos
  if (p.prec !== undefined) ip.precedence = p.prec
  if (p.ipId >= 0) ip.id = p.ipId
  if (p.ipFlags !== 0) {
    const flags: Array<string> = []
    for (let i = 0; i < ipFlagNames.length; i++) if (p.ipFlags & (1 << i)) flags.push(ipFlagNames[i]!)
    ip.flags = flags
  }
  if (p.fragOffset >= 0) ip.fragmentOffset = p.fragOffset
  if (p.ipOptions !== undefined) ip.options = p.ipOptions
  if (p.tc !== undefined) ip.trafficClass = p.tc
  if (p.flowLabel !== undefined) ip.flowLabel = p.flowLabel
  return ip
}

const tcpHeader = (p: Packet): TcpHeader | undefined => {
  if (p.proto !== "TCP") return undefined
  if (p.window < 0 && p.tcpFlags === 0 && p.seq < 0 && p.res === undefined && p.urgp < 0) return undefined
  const flags: Array<string> = []
  if (p.tcpFlags !== 0) {
    for (let i = 0; i < tcpFlagNames.length; i++) if (p.tcpFlags & (1 << i)) flags.push(tcpFlagNames[i]!)
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
    // 14 bytes: destination, source, EtherType
    return { dst: raw.slice(0, 17), src: raw.slice(18, 35), ethertype: `0x${raw.slice(36, 38)}${raw.slice(39, 41)}` }
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
  // built key by key so the keys come in Schema order (the JSON line follows it)
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
  const mac = macHeader(line)
  if (mac !== undefined) event.mac = mac
  const ip = ipHeader(line)
  if (ip !== undefined) event.ip = ip
  const tcp = tcpHeader(line)
  if (tcp !== undefined) event.tcp = tcp
  if (isUdp(line.proto) && line.udpLength >= 0) event.udp = { length: line.udpLength }
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

/** Parses `text[from..]`, the KEY=VALUE part after the prefix. */
const parseFrom = (text: string, from: number, action: Action, context: LineContext): ParseResult => {
  const scan = new Scan(text)
  const count = scanTokens(scan, from)
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
    return parseFrom(body, 0, action, context)
  } catch (cause) {
    return { _tag: "Malformed", reason: `parser error: ${String(cause)}` }
  }
}

const startsWithAny = (message: string, prefixes: ReadonlyArray<string>): number => {
  for (let i = 0; i < prefixes.length; i++) {
    const prefix = prefixes[i]!
    if (message.startsWith(prefix)) return prefix.length
  }
  return -1
}

/** classify + parse one journal MESSAGE. Never throws. */
export const parseLine = (message: string, prefixes: Prefixes, context: LineContext): ParseResult => {
  if (message.length === 0) return { _tag: "Skipped", reason: "empty message" }
  // classify without slicing: the body is parsed in place after the prefix
  let action: Action = "drop"
  let from = startsWithAny(message, prefixes.drop)
  if (from < 0) {
    action = "accept"
    from = startsWithAny(message, prefixes.accept)
    if (from < 0) return { _tag: "Skipped", reason: "no drop or accept prefix" }
  }
  if (message.length > maxLineLength) {
    return { _tag: "Malformed", reason: `line too long (${message.length} characters, limit ${maxLineLength})` }
  }
  try {
    return parseFrom(message, from, action, context)
  } catch (cause) {
    // not expected; the contract is "never throws", so a parser bug becomes a reported line
    return { _tag: "Malformed", reason: `parser error: ${String(cause)}` }
  }
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
  else known = id !== 0 && id <= K_IPDST && applyKv(outer, outer, id, value)
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
