/**
 * The event fast path looks for colons (IPv6) in `SRC=... DST=...` in one pass, then in each
 * address: against the token loop, a colon anywhere in either address, or in neither.
 */
import { describe, it } from "@effect/vitest"
import { defaultPrefixes, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { expectSame, viaTokenLoop } from "./token-loop.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const run = (line: string): ParseResult => parseLine(line, defaultPrefixes, context)

const withColon = (ip: string): Array<string> => Array.from({ length: ip.length + 1 }, (_, at) => `${ip.slice(0, at)}:${ip.slice(at)}`)
const addresses = [
  "1.2.3.4", "10.200.30.4", "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", ...withColon("1.2.3.4"),
  ...withColon("10.200.30.44")
]

describe("the fast path's colon search", () => {
  it("gives the token loop's event whichever address has a colon, wherever", () => {
    for (const src of addresses) {
      for (const dst of addresses) {
        for (const tail of [" PROTO=UDP SPT=1 DPT=2 LEN=20", " PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0 "]) {
          const line =
            `nftables-metal-dropped: IN=a OUT= SRC=${src} DST=${dst} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1${tail}`
          expectSame(run(line), run(viaTokenLoop(line)))
        }
      }
    }
  })
})
