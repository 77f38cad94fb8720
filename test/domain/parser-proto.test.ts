/**
 * The tail reader's ` PROTO=TCP ` and ` PROTO=UDP ` (compared as one key with the value and the
 * space after it) and its ` RES=0x00 SYN URGP=0` (compared as 5 words), against the token loop:
 * any protocol word before any usual tail, TCP ends near that one, and lines cut around them.
 */
import { describe, it } from "@effect/vitest"
import { defaultPrefixes, parseLine, type ParseResult } from "../../src/domain/Parser.ts"
import { expectSame, viaTokenLoop } from "./token-loop.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }
const run = (line: string): ParseResult => parseLine(line, defaultPrefixes, context)
const expectAsTokenLoop = (line: string): void => expectSame(run(line), run(viaTokenLoop(line)))

const heads = [
  "nftables-metal-dropped: IN=a OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1",
  "nftables-metal-accepted: IN=a OUT=b SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=7"
]
const words = ["TCP", "UDP", "TCPX", "UDPLITE", "TC", "UD", "tcp", "ICMP", "UDP=", "TCP\t", "47", ""]
const tails = [
  " SPT=1 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 ",
  " SPT=1 DPT=22 WINDOW=1024 RES=0x00 ACK PSH URGP=0",
  " SPT=53 DPT=5353 LEN=20",
  " SPT=53 DPT=5353 LEN=20 ",
  " TYPE=8 CODE=0 ID=1 SEQ=2",
  " ",
  ""
]

describe("the tail's protocol word", () => {
  it("gives the token loop's event for any protocol before any usual tail", () => {
    for (const head of heads) {
      for (const df of ["", " DF"]) {
        for (const word of words) {
          for (const tail of tails) expectAsTokenLoop(`${head}${df} PROTO=${word}${tail}`)
        }
      }
    }
  })

  it("gives the token loop's event for TCP ends like the usual one", () => {
    const ends = [
      " RES=0x00 SYN URGP=0", " RES=0x00 SYN URGP=0 ", " RES=0x00 SYN URGP=00", " RES=0x00 SYN URGP=1", " RES=0x00 SYN URGP=0X",
      " RES=0x01 SYN URGP=0", " RES=0x00 ACK SYN URGP=0", " RES=0x00 SYN FIN URGP=0", " RES=0x00 SYN URGP=0  ",
      " RES=0x00 SYN URGP=0 OPT (020405B4)", " RES=0x00 SYN URGP=0 UID=0", " RES=0x00 SYN URGP=0\t", " RES=0x00 SYNURGP=0",
      " RES=0x00  SYN URGP=0", " RES=0x00 SYN URGP="
    ]
    for (const head of heads) {
      for (const end of ends) {
        const line = `${head} PROTO=TCP SPT=1 DPT=22 WINDOW=1024${end}`
        for (let cut = line.length - end.length; cut <= line.length; cut++) expectAsTokenLoop(line.slice(0, cut))
      }
    }
  })

  it("gives the token loop's event for lines cut around the word", () => {
    for (const head of heads) {
      for (const tail of tails.slice(0, 3)) {
        const line = `${head} PROTO=${tail.includes("LEN=") ? "UDP" : "TCP"}${tail}`
        for (let cut = head.length; cut <= head.length + 16; cut++) expectAsTokenLoop(line.slice(0, cut))
      }
    }
  })
})
