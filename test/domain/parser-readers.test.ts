/**
 * The straight-line readers' shortcuts, against the token loop (tabs instead of spaces make the
 * parser read every token): the codes of a line end in zeros that the readers rely on instead of
 * the line's length (values are read 4 codes at a time, keys compared as words), whatever the
 * longer line before left in the shared buffer; colons (IPv6) are found 4 codes at a time; ` SYN `
 * is read without a token lookup.
 */
import { describe, it } from "@effect/vitest"
import fc from "fast-check"
import { defaultPrefixes, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { allLines } from "./lines.ts"
import { expectSame, viaTokenLoop } from "./token-loop.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const prefix = "nftables-metal-dropped: "
const run = (line: string): ParseResult => parseLine(line, defaultPrefixes, context)

/** `line` parsed right after `before` (whose codes stay in the buffer past `line`'s end), and via the token loop. */
const expectAfter = (before: string, line: string): void => {
  const tabbed = run(viaTokenLoop(line))
  run(before)
  expectSame(run(line), tabbed)
}

describe("the straight-line readers", () => {
  it("read a line cut anywhere as the token loop does, after the whole line was parsed", () => {
    for (const line of allLines) {
      for (let cut = prefix.length; cut <= line.length; cut++) expectAfter(line, line.slice(0, cut))
    }
  })

  it("read a line cut anywhere as the token loop does, after any longer line", () => {
    const long = allLines.reduce((a, b) => (a.length >= b.length ? a : b))
    fc.assert(
      fc.property(fc.constantFrom(...allLines), fc.nat(400), fc.constantFrom(...allLines, long), (line, at, before) => {
        expectAfter(before, line.slice(0, Math.min(line.length, prefix.length + at)))
      }),
      { numRuns: 3000 }
    )
  })

  it("tell IPv6 from IPv4 by a colon anywhere in an address, as the token loop does", () => {
    const address = fc.stringMatching(/^[0-9a-f.:]{1,24}$/)
    fc.assert(
      fc.property(address, address, fc.boolean(), fc.boolean(), (src, dst, tcp, inner) => {
        const head = `IN=eth0 OUT= SRC=${src} DST=${dst} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1`
        const tail = inner
          ? `PROTO=ICMP TYPE=3 CODE=3 [SRC=${dst} DST=${src} LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=2 PROTO=UDP SPT=1 DPT=2 LEN=10 ]`
          : tcp
          ? "PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0"
          : "PROTO=UDP SPT=1 DPT=2 LEN=20"
        const line = `${prefix}${head} ${tail} `
        expectSame(run(line), run(viaTokenLoop(line)))
      }),
      { numRuns: 2000 }
    )
  })

  it("read the TCP flag words around SYN as the token loop does", () => {
    const word = fc.constantFrom("SYN", "ACK", "FIN", "URG", "SYNACK", "SY", "SYNN", "syn", "CWR", "RST", "PSH")
    fc.assert(
      fc.property(fc.array(word, { maxLength: 4 }), fc.boolean(), (flags, end) => {
        const line = `${prefix}IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 ${
          [...flags, ""].join(" ")
        }URGP=0${end ? "" : " "}`
        expectSame(run(line), run(viaTokenLoop(line)))
      }),
      { numRuns: 1000 }
    )
  })
})
