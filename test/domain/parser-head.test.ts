/**
 * The parser's straight-line reading of a line's head (`IN= OUT= [MAC=] SRC= DST=` and the IPv4 or
 * IPv6 header, single spaces) and of the usual tail after it (`[DF] PROTO=TCP|UDP ...`), and its
 * shared value texts, against the token loop, which reads the same line when neither applies: tabs
 * instead of spaces make it read every token.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { defaultPrefixes, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { allLines } from "./lines.ts"
import { expectSame, viaTokenLoop } from "./token-loop.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const prefix = "nftables-metal-dropped: "
const run = (line: string): ParseResult => parseLine(line, defaultPrefixes, context)

const event = (line: string) => {
  const r = run(line)
  if (r._tag !== "Event") throw new Error(`not an event: ${JSON.stringify(r)}`)
  return r.event
}

describe("the head of a line", () => {
  it("gives the token loop's event for every real line", () => {
    for (const line of allLines) {
      const tabbed = viaTokenLoop(line)
      expect(tabbed).not.toBe(line)
      expectSame(run(line), run(tabbed))
    }
  })

  it("gives the token loop's event for heads with odd values, then anything", () => {
    const value = fc.oneof(
      fc.constantFrom("", "0", "00", "01", "040", "1023", "1024", "65535", "0x00", "0xC0", "0xc0", "0x0", "0X00", "TCP", "a=b", "x"),
      fc.stringMatching(/^[!-~]{0,8}$/),
      fc.nat(70_000).map(String)
    )
    const group = fc.oneof(fc.constantFrom("0000", "ffff", "0db8", "FFFF", "0001"), fc.stringMatching(/^[0-9a-fA-F]{4}$/))
    const address = fc.oneof(
      fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300)).map((a) => a.join(".")),
      fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => g.join(":")),
      fc.constantFrom("2001:db8::1", "::", "1:2:3", "0000:0000:0000:0000:0000:ffff:0102:0304", "2001:0db8:0000:0000:0000:0000:0000:000g")
    )
    const mac = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom("12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00", "00:00:00:00:00:00:00:00:00:00:00:00:86:dd", "02:42:ac:11:00:02:02:42:ac:11:00:03:08:06", "02:42:ac:11:00:02:02:42:ac:11:00:03:AB:cd", "02:42", ""),
      fc.stringMatching(/^[!-~]{41}$/)
    )
    const tail = fc.array(
      fc.oneof(fc.constantFrom("DF", "PROTO=TCP", "PROTO=UDP", "SPT=1", "DPT=22", "LEN=8", "SYN", "ACK", "WINDOW=5", "RES=0x00", "URGP=0", "[SRC=1.2.3.4", "]", "OPT", "(0A)", "X=1", "LEN=2"), value),
      { maxLength: 8 }
    )
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.tuple(value, value, mac, address, address, value, value, value, value, value),
        tail,
        (v6, [inIface, outIface, macValue, src, dst, len, a, b, c, d], rest) => {
          const head = v6
            ? `LEN=${len} TC=${a} HOPLIMIT=${b} FLOWLBL=${c}`
            : `LEN=${len} TOS=${a} PREC=${b} TTL=${c} ID=${d}`
          const tokens = [`IN=${inIface}`, `OUT=${outIface}`, ...(macValue === undefined ? [] : [`MAC=${macValue}`]), `SRC=${src}`, `DST=${dst}`, head, ...rest]
          const line = `${prefix}${tokens.join(" ")}`
          expectSame(run(line), run(viaTokenLoop(line)))
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("leaves a line that stops or turns early to the token loop", () => {
    const full = `${prefix}IN=a OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP`
    for (let end = prefix.length; end <= full.length; end++) {
      const line = full.slice(0, end)
      expectSame(run(line), run(viaTokenLoop(line)))
    }
    for (const odd of [" IN=a", "IN=a  OUT=", "IN=a OUT=b PHYSIN=c MAC= SRC=1 DST=2 LEN=3 TOS=0x00 PREC=0x00 TTL=1 ID=2", "IN=a OUT= SRC=1 DST=2 LEN=3 TC=0 HOPLIMIT=1 FLOWLBL=2 ID=3", "IN=a OUT= SRC=1 DST=2 LEN=3 TOS=1 PREC=2 TTL=3 ID=4\u0001"]) {
      expectSame(run(prefix + odd), run(viaTokenLoop(prefix + odd)))
    }
  })
})

describe("the tail of a line", () => {
  const value = fc.oneof(
    fc.constantFrom("", "0", "00", "01", "1023", "1024", "65535", "4294967296", "0x00", "a=b", "x"),
    fc.stringMatching(/^[!-~]{0,6}$/),
    fc.nat(70_000).map(String)
  )
  const res = fc.oneof(fc.constantFrom("0x00", "0x0F", "0xc0", "0X00", "0x0", "0x100", ""), value)
  const flagNames = ["AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"]
  /** Flag words: in the kernel's order (a subset), or any order, repeats and other words. */
  const flags = fc.oneof(
    fc.subarray(flagNames),
    fc.array(fc.constantFrom(...flagNames, "SYNX", "S", "SYN=1", "DF", "OPT", "ACK=1"), { maxLength: 4 })
  )
  const heads = [
    "IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=54321",
    "IN=vrf09 OUT=vrf10 SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=1",
    "IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=744351"
  ]

  it("gives the token loop's event for usual tails with odd values, and for almost usual ones", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...heads),
        fc.boolean(),
        fc.constantFrom("TCP", "UDP", "ICMP", "UDPLITE", "tcp", "TC", ""),
        fc.boolean(),
        fc.tuple(value, value, value, res, flags, value),
        fc.constantFrom("", " ", "  ", "\t", " X=1", " OPT (0A)", " [", " SEQ=1", " URGP=1"),
        (head, df, proto, tcpShaped, [spt, dpt, a, reserved, words, urgp], end) => {
          const rest = tcpShaped
            ? [`WINDOW=${a}`, `RES=${reserved}`, ...words, `URGP=${urgp}`]
            : [`LEN=${a}`]
          const tokens = [head, ...(df ? ["DF"] : []), `PROTO=${proto}`, `SPT=${spt}`, `DPT=${dpt}`, ...rest]
          const line = `${prefix}${tokens.join(" ")}${end}`
          expectSame(run(line), run(viaTokenLoop(line)))
        }
      ),
      { numRuns: 5000 }
    )
  })

  it("leaves a tail that stops early to the token loop", () => {
    const full = `${prefix}${heads[0]} DF PROTO=TCP SPT=1 DPT=22 WINDOW=5 RES=0x00 ACK SYN URGP=0 `
    for (let end = full.indexOf(" DF"); end <= full.length; end++) {
      const line = full.slice(0, end)
      expectSame(run(line), run(viaTokenLoop(line)))
    }
  })
})

describe("shared value texts", () => {
  it("are the logged text, whatever it is", () => {
    const e = event(
      `${prefix}IN=a OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:AB:cd SRC=1.2.3.4 DST=5.6.7.8 LEN=040 TOS=0xc0 PREC=0xC0 TTL=1023 ID=1024 PROTO=tcp SPT=0 DPT=00 `
    )
    expect(e.fields).toEqual({
      IN: "a", OUT: "", MAC: "12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:AB:cd", SRC: "1.2.3.4", DST: "5.6.7.8", LEN: "040",
      TOS: "0xc0", PREC: "0xC0", TTL: "1023", ID: "1024", PROTO: "tcp", SPT: "0", DPT: "00", ACTION: "drop"
    })
    expect(e.ip).toEqual({ version: 4, length: 40, ttl: 1023, tos: "0xc0", precedence: "0xC0", id: 1024 })
    expect(e.mac?.ethertype).toBe("0xABcd")
    expect(e.protocol).toBe("tcp")
    expect(e.tcp).toBeUndefined()
    expect(e.src).toEqual({ ip: "1.2.3.4", port: 0 })
    expect(e.dst).toEqual({ ip: "5.6.7.8", port: 0 })
  })

  it("name the common EtherTypes and protocols as logged", () => {
    const cases = [
      ["08:00", "0x0800"],
      ["86:dd", "0x86dd"],
      ["08:06", "0x0806"],
      ["86:DD", "0x86DD"],
      ["81:00", "0x8100"]
    ] as const
    for (const [logged, ethertype] of cases) {
      const e = event(`${prefix}IN=a OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:${logged} SRC=1.2.3.4 DST=1.2.3.4 `)
      expect(e.mac?.ethertype).toBe(ethertype)
    }
    for (const proto of ["TCP", "UDP", "ICMP", "ICMPv6", "UDPLITE", "ESP", "ICMPv7", "UDPX", "132"]) {
      expect(event(`${prefix}IN=a OUT= PROTO=${proto} `).protocol).toBe(proto)
    }
  })

  it("keep numbers exact around the shared range", () => {
    for (const n of ["0", "9", "10", "1023", "1024", "65535", "4294967295", "007", "0000"]) {
      const e = event(`${prefix}IN=a OUT= SRC=1.2.3.4 DST=1.2.3.4 LEN=${n} TOS=0x00 PREC=0x00 TTL=${n} ID=${n} `)
      expect([e.fields.LEN, e.fields.TTL, e.fields.ID]).toEqual([n, n, n])
      expect(e.ip?.length).toBe(Number(n))
    }
  })
})
