/**
 * The event fast path: a line whose head (`IN= OUT= [MAC=] SRC= DST=` and the IP header) and usual
 * TCP or UDP tail are both there, with every number a decimal, is made into its event straight from
 * where the values are (no token loop, no packet). It must give exactly the token loop's event:
 * the same values and the same keys in the same order at every level (the JSON line follows it).
 * Tabs instead of spaces make the parser read every token, so a line and its tabbed twin are
 * compared; also the JSON lines and the Schema's encoding of a sequence of such lines, written one
 * after the other (the 14-byte MAC headers are kept in a small table and come back shared).
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { encodeDropEventJson } from "../../src/domain/DropEvent.ts"
import { formatJsonLine, JsonLineWriter } from "../../src/domain/Format.ts"
import { defaultPrefixes, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { allLines } from "./lines.ts"
import { expectSame, viaTokenLoop } from "./token-loop.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const prefix = "nftables-metal-dropped: "
const run = (line: string): ParseResult => parseLine(line, defaultPrefixes, context)

/** Mostly decimals (a line with one that is not goes the general way). */
const number = fc.oneof(
  { arbitrary: fc.nat(70_000).map(String), weight: 12 },
  { arbitrary: fc.constantFrom("0", "00", "01", "1023", "1024", "65535", "4294967296", "123456789012345"), weight: 4 },
  { arbitrary: fc.constantFrom("1234567890123456", "", "x", "1x", "-1", "0x10", "1.5", "a=b"), weight: 1 }
)
const text = fc.oneof(fc.constantFrom("", "vrf09", "lo", "0x00", "0xC0", "0x0", "744351"), fc.stringMatching(/^[!-~]{0,8}$/))
const macs = [
  "12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00",
  "00:00:00:00:00:00:00:00:00:00:00:00:86:dd",
  "02:42:ac:11:00:02:02:42:ac:11:00:03:08:06",
  "02:42:ac:11:00:02:02:42:ac:11:00:03:AB:cd"
]
const mac = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(...macs, "02:42", ""),
  fc.stringMatching(/^[0-9a-f]{2}(:[0-9a-f]{2}){13}$/),
  fc.stringMatching(/^[!-~]{41}$/)
)
const address = fc.oneof(
  fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300)).map((a) => a.join(".")),
  fc.array(fc.stringMatching(/^[0-9a-fA-F]{4}$/), { minLength: 8, maxLength: 8 }).map((g) => g.join(":")),
  fc.constantFrom("2001:db8::1", "::", "0000:0000:0000:0000:0000:0000:0000:0001", "1.2.3.4")
)
const flagNames = ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"]

/** The head of a usual line: interfaces, MAC, addresses, the IP header (for `usualLine` and the ICMP lines below). */
const lineHead = fc
  .record({ v6: fc.boolean(), inIface: text, outIface: text, mac, src: address, dst: address, len: number, a: text, b: number, c: number, d: number, df: fc.boolean() })
  .map((l) => {
    const ip = l.v6 ? `LEN=${l.len} TC=${l.a} HOPLIMIT=${l.b} FLOWLBL=${l.c}` : `LEN=${l.len} TOS=${l.a} PREC=0x00 TTL=${l.b} ID=${l.d}`
    const tokens = [`IN=${l.inIface}`, `OUT=${l.outIface}`, ...(l.mac === undefined ? [] : [`MAC=${l.mac}`]), `SRC=${l.src}`, `DST=${l.dst}`, ip, ...(l.df ? ["DF"] : [])]
    return `${prefix}${tokens.join(" ")}`
  })

/** A line the fast path takes (or, with a number that is not one, leaves to the token loop). */
const usualLine = fc
  .tuple(
    lineHead,
    fc.record({
      tcp: fc.boolean(),
      spt: number,
      dpt: number,
      t: number,
      res: fc.oneof(fc.constantFrom("0x00", "0x0F", "0xc0", "0X00"), text),
      flags: fc.subarray(flagNames),
      urgp: number,
      end: fc.constantFrom("", " ")
    })
  )
  .map(([head, l]) => {
    const tail = l.tcp
      ? `PROTO=TCP SPT=${l.spt} DPT=${l.dpt} WINDOW=${l.t} RES=${l.res}${l.flags.map((f) => ` ${f}`).join("")} URGP=${l.urgp}`
      : `PROTO=UDP SPT=${l.spt} DPT=${l.dpt} LEN=${l.t}`
    return `${head} ${tail}${l.end}`
  })

/** The quoted packet of an ICMP error (`[SRC= ... ]`), usual shapes and near misses. */
const quoted = fc
  .record({
    v6: fc.boolean(),
    src: address,
    dst: address,
    len: number,
    a: text,
    b: number,
    c: number,
    d: number,
    df: fc.boolean(),
    proto: fc.oneof({ arbitrary: fc.constantFrom("UDP", "TCP", "ICMP", "ICMPv6"), weight: 12 }, { arbitrary: fc.constantFrom("UDPLITE", "SCTP", "TCQ", "ICMPv5", ""), weight: 1 }),
    spt: number,
    dpt: number,
    t: number,
    sequence: fc.boolean(),
    ackKey: fc.oneof({ arbitrary: fc.constant("ACK"), weight: 6 }, { arbitrary: fc.constantFrom("XCK", "SEQ", "ACKS", "AC"), weight: 1 }),
    seq: number,
    ack: number,
    res: fc.oneof(fc.constantFrom("0x00", "0x0F", "0xc0", "0X00"), text),
    flags: fc.subarray(flagNames),
    urgp: number,
    echo: fc.boolean(),
    extra: fc.oneof({ arbitrary: fc.constant(""), weight: 12 }, { arbitrary: fc.constantFrom(" MTU=1", " IN=a", " X", " DF", " LEN=5", " ID=1", " ]", " [SRC=1.2.3.4"), weight: 1 })
  })
  .map((q) => {
    const ip = q.v6 ? `LEN=${q.len} TC=${q.a} HOPLIMIT=${q.b} FLOWLBL=${q.c}` : `LEN=${q.len} TOS=${q.a} PREC=0x00 TTL=${q.b} ID=${q.d}`
    const rest = q.proto === "UDP" || q.proto === "UDPLITE"
      ? ` SPT=${q.spt} DPT=${q.dpt} LEN=${q.t}`
      : q.proto === "TCP" || q.proto === "TCQ" || q.proto === "SCTP"
      ? ` SPT=${q.spt} DPT=${q.dpt}${q.sequence ? ` SEQ=${q.seq} ${q.ackKey}=${q.ack}` : ""} WINDOW=${q.t} RES=${q.res}${q.flags.map((f) => ` ${f}`).join("")} URGP=${q.urgp}`
      : ` TYPE=${q.spt} CODE=${q.dpt}${q.echo ? ` ID=${q.seq} SEQ=${q.ack}` : ""}`
    return `[SRC=${q.src} DST=${q.dst} ${ip}${q.df ? " DF" : ""} PROTO=${q.proto}${rest}${q.extra} ]`
  })

/** An ICMP or ICMPv6 line: echo (`ID= SEQ=`), an error with its quoted packet (and MTU=), bare `TYPE= CODE=`, and near misses. */
const icmpLine = fc
  .record({
    lineHead,
    proto: fc.oneof({ arbitrary: fc.constantFrom("ICMP", "ICMPv6"), weight: 8 }, { arbitrary: fc.constantFrom("ICMPv4", "ICMPv", "ICMX", "icmp", "ICMPV6", "TCP", "UDP", ""), weight: 1 }),
    type: number,
    code: number,
    echo: fc.oneof(
      { arbitrary: fc.constantFrom("echo", "error"), weight: 6 },
      { arbitrary: fc.constantFrom("none", "id", "seq", "swapped", "more", "mtu", "gateway", "glued", "unclosed"), weight: 2 }
    ),
    id: number,
    seq: number,
    quoted,
    mtu: fc.oneof(fc.constant(undefined), number),
    end: fc.constantFrom("", " ", "  ")
  })
  .map((l) => {
    const mtu = l.mtu === undefined ? "" : ` MTU=${l.mtu}`
    const rest = l.echo === "echo"
      ? ` ID=${l.id} SEQ=${l.seq}`
      : l.echo === "error"
      ? ` ${l.quoted}${mtu}`
      : l.echo === "id"
      ? ` ID=${l.id}`
      : l.echo === "seq"
      ? ` SEQ=${l.seq}`
      : l.echo === "swapped"
      ? ` SEQ=${l.seq} ID=${l.id}`
      : l.echo === "more"
      ? ` ID=${l.id} SEQ=${l.seq} MTU=1400`
      : l.echo === "mtu"
      ? ` MTU=${l.mtu ?? 1}`
      : l.echo === "gateway"
      ? ` GATEWAY=10.0.0.1 ${l.quoted}`
      : l.echo === "glued"
      ? ` ${l.quoted.slice(0, -2)}]${mtu}`
      : l.echo === "unclosed"
      ? ` ${l.quoted.slice(0, -2)}${mtu}`
      : ""
    return `${l.lineHead} PROTO=${l.proto} TYPE=${l.type} CODE=${l.code}${rest}${l.end}`
  })

describe("the event fast path", () => {
  it("gives the token loop's event for every real line", () => {
    for (const line of allLines) expectSame(run(line), run(viaTokenLoop(line)))
  })

  it("gives the token loop's event for usual lines with any values, numbers that are not ones included", () => {
    fc.assert(fc.property(usualLine, (line) => expectSame(run(line), run(viaTokenLoop(line)))), { numRuns: 4000 })
  })

  it("gives the token loop's event for ICMP and ICMPv6 lines (echo, errors, bare) with any values, numbers that are not ones included", () => {
    fc.assert(fc.property(icmpLine, (line) => expectSame(run(line), run(viaTokenLoop(line)))), { numRuns: 6000 })
  })

  it("gives the token loop's event for ICMP errors whose quoted packet is nearly the usual one", () => {
    const line = `${prefix}IN=lo OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.0.0.2 DST=10.0.0.1 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=636 DF PROTO=UDP SPT=5 DPT=6 LEN=10 ] `
    expectSame(run(line), run(viaTokenLoop(line)))
    for (const [from, to] of [[" ] ", "  "], [" ] ", " X ] "], [" ] ", "] "], [" ] ", " ]MTU=1"], [" ] ", " ]  MTU=1"], ["[SRC", "[ SRC"], [" DF PROTO", " DF DF PROTO"], ["LEN=10", "LEN=10 LEN=11"], ["CODE=3 [", "CODE=3 MTU=1 ["]] as const) {
      const edited = line.replace(from, to)
      expect(edited).not.toBe(line)
      expectSame(run(edited), run(viaTokenLoop(edited)))
    }
  })

  it("gives the token loop's event for the ICMP echo lines of a sequence, JSON lines included", () => {
    const lines = [
      `${prefix}IN=vrf09 OUT= MAC=${macs[2]} SRC=192.0.2.7 DST=127.0.0.9 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=ICMP TYPE=8 CODE=0 ID=17 SEQ=7 `,
      `${prefix}IN=vrf09 OUT= SRC=192.0.2.7 DST=127.0.0.9 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=4242 PROTO=ICMP TYPE=0 CODE=0 ID=17 SEQ=7`,
      `${prefix}IN=lo OUT= MAC=${macs[1]} SRC=fe80:0000:0000:0000:0001:02ff:fe03:0004 DST=0000:0000:0000:0000:0000:0000:0000:0009 LEN=51 TC=0 HOPLIMIT=64 FLOWLBL=74565 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1234 SEQ=5 `,
      `${prefix}IN=lo OUT=eth0 SRC=2001:db8::1 DST=::1 LEN=51 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=129 CODE=0 ID=0 SEQ=65535 `,
      `${prefix}IN=lo OUT= MAC=${macs[0]} SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ICMP TYPE=3 CODE=1 `,
      `${prefix}IN=lo OUT= MAC=${macs[0]} SRC=127.0.0.1 DST=127.0.0.1 LEN=58 TOS=0x00 PREC=0xC0 TTL=64 ID=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=127.0.0.1 DST=127.0.0.1 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=636 DF PROTO=UDP SPT=57515 DPT=54329 LEN=10 ] `,
      `${prefix}IN=lo OUT= SRC=127.0.0.1 DST=127.0.0.9 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=ICMP TYPE=3 CODE=4 [SRC=10.0.0.5 DST=10.9.9.9 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=ICMP TYPE=8 CODE=0 ID=77 SEQ=3 ] MTU=1400`,
      `${prefix}IN=lo OUT= MAC=${macs[1]} SRC=2001:0db8:0000:0000:0001:0000:0000:0001 DST=0000:0000:0000:0000:0000:0000:0000:0009 LEN=108 TC=0 HOPLIMIT=64 FLOWLBL=74565 PROTO=ICMPv6 TYPE=2 CODE=0 [SRC=0000:0000:0000:0000:0000:0000:0000:0009 DST=2001:0db8:0000:0001:0000:0000:0000:0001 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=74565 PROTO=TCP SPT=443 DPT=50000 SEQ=5 ACK=6 WINDOW=100 RES=0x00 ACK PSH URGP=0 ] MTU=1280 `,
      `${prefix}IN=lo OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=10.0.0.5 DST=8.8.8.8 LEN=32 TOS=0x00 PREC=0x00 TTL=1 ID=4242 PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0 ]`
    ]
    for (const line of lines) {
      const fast = run(line)
      expectSame(fast, run(viaTokenLoop(line)))
      if (fast._tag !== "Event") throw new Error(fast.reason)
      expect(fast.event.icmp).toBeDefined()
      if (line.includes("[")) expect(fast.event.inner).toBeDefined()
      expect(formatJsonLine(fast.event)).toBe(JSON.stringify(encodeDropEventJson(fast.event)))
    }
  })

  it("gives the token loop's event for real lines with a character changed, removed or added", () => {
    const edit = fc.tuple(
      fc.constantFrom(...allLines),
      fc.nat(),
      fc.constantFrom("replace", "delete", "insert"),
      fc.constantFrom(" ", "=", "0", "9", "a", "F", ":", ".", "S", "x", "\u00e9", "\t", "  ")
    )
    fc.assert(
      fc.property(edit, ([line, at, op, piece]) => {
        const body = line.indexOf(": ") + 2
        const i = body + (at % (line.length - body))
        const edited = op === "replace"
          ? line.slice(0, i) + piece + line.slice(i + 1)
          : op === "delete"
          ? line.slice(0, i) + line.slice(i + 1)
          : line.slice(0, i) + piece + line.slice(i)
        expectSame(run(edited), run(viaTokenLoop(edited)))
      }),
      { numRuns: 4000 }
    )
  })

  it("tells apart MAC headers that differ in one digit only, wherever it is", () => {
    // 16 of them per position: more than the table has slots, so some share one
    const base = "02:42:ac:11:00:02:02:42:ac:11:00:03:08:00"
    for (let at = 0; at < base.length; at++) {
      if (base[at] === ":") continue
      for (let digit = 0; digit < 16; digit++) {
        const line = `${prefix}IN=a OUT= MAC=${base.slice(0, at)}${digit.toString(16)}${base.slice(at + 1)} SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20`
        expectSame(run(line), run(viaTokenLoop(line)))
      }
    }
  })

  it("takes a second MAC= after the head as the token loop does (the last one is the packet's)", () => {
    const head = `${prefix}IN=a OUT= MAC=${macs[0]} SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1`
    for (const rest of [`MAC=${macs[2]} PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=2`, `PROTO=ICMP MAC=02:42 TYPE=8`, `MAC=${macs[0]} X=1`]) {
      const line = `${head} ${rest}`
      expectSame(run(line), run(viaTokenLoop(line)))
    }
  })

  it("writes the token loop's JSON lines for a sequence of lines with many MAC headers, one after the other", () => {
    // more MAC headers than the table keeps, each different from another in one digit only (any of
    // the 28), in an order that brings each back after others
    const base = "02:42:ac:11:00:02:02:42:ac:11:00:03:08:00"
    const many = Array.from({ length: 56 }, (_, i) => {
      const at = Math.floor((i % 28) / 2) * 3 + (i % 2)
      return `${base.slice(0, at)}${i < 28 ? "f" : "9"}${base.slice(at + 1)}`
    })
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...many, ...macs), fc.nat(65535), fc.boolean()), { minLength: 1, maxLength: 80 }), (rows) => {
        const lines = rows.map(([m, port, tcp]) =>
          `${prefix}IN=vrf09 OUT= MAC=${m} SRC=10.0.0.${port & 255} DST=10.0.0.53 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=${port} DF ${
            tcp ? `PROTO=TCP SPT=${port} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0` : `PROTO=UDP SPT=${port} DPT=53 LEN=40`
          } `
        )
        const fast = lines.map(run)
        const slow = lines.map((l) => run(viaTokenLoop(l)))
        const writer = new JsonLineWriter()
        const written = (results: ReadonlyArray<ParseResult>): string => {
          writer.reset()
          for (const r of results) {
            if (r._tag !== "Event") throw new Error(r.reason)
            writer.event(r.event)
            writer.byte(10)
          }
          return writer.text()
        }
        for (let i = 0; i < lines.length; i++) {
          expectSame(fast[i]!, slow[i]!)
          const r = fast[i]!
          if (r._tag === "Event") expect(formatJsonLine(r.event)).toBe(JSON.stringify(encodeDropEventJson(r.event)))
        }
        expect(written(fast)).toBe(written(slow))
      }),
      { numRuns: 300 }
    )
  })
})
