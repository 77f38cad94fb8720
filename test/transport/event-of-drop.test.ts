/**
 * `eventOfDrop` parses the part of the message from `IN=` on (`parseBody`) instead of the whole
 * message with its own prefix (`parseLine`, what it did before, without that prefix test). This
 * checks the two give the same event, field for field and key order included, for every kind of
 * line the corpus has, any prefix (none, odd, one holding `IN=` itself), both actions, maps sent
 * whole or as ACTION only, messages without `IN=` or starting with it, non-ASCII and overlong ones.
 */
import { assert, describe, it } from "@effect/vitest"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { formatJsonLine } from "../../src/domain/Format.ts"
import { eventFromFields, maxLineLength, parseLine, type Prefixes } from "../../src/domain/Parser.ts"
import { eventOfDrop } from "../../src/transport/IngestServer.ts"
import { Drop } from "../../src/transport/generated/droptailer.ts"
import { makeWireDecoder, type WireDrop } from "../../src/transport/WireDrop.ts"
import { allLines } from "../domain/lines.ts"

/** What eventOfDrop did before: parseLine with the message's prefix (what precedes `IN=`) as the only one. */
const reference = (drop: WireDrop, peerName: () => string): DropEvent | undefined => {
  const fields = drop.fields
  const host = drop.host !== "" ? drop.host : (fields.host ?? fields.HOST ?? peerName())
  const timestamp = drop.timestamp.seconds * 1_000_000 + Math.floor(drop.timestamp.nanos / 1000)
  const context = { timestamp, host }
  if (drop.message !== "") {
    const at = drop.message.indexOf("IN=")
    const prefix = at > 0 ? drop.message.slice(0, at) : ""
    const prefixes: Prefixes = fields.ACTION === "accept" ? { drop: [], accept: [prefix] } : { drop: [prefix], accept: [] }
    const parsed = parseLine(drop.message, prefixes, context)
    if (parsed._tag === "Event") {
      const onlyAction = Object.keys(fields).length === 1 && Object.hasOwn(fields, "ACTION")
      if (!onlyAction) (parsed.event as { fields: DropEvent["fields"] }).fields = fields
      return parsed.event
    }
  }
  // (eventOfDrop then falls back to the map: the same code either way)
  return eventFromFields(fields, context)
}

const bodies = allLines.map((line) => {
  const at = line.indexOf("IN=")
  return at > 0 ? line.slice(at) : line
})

const prefixes = [
  "nftables-metal-dropped: ",
  "nftables-firewall-accepted: ",
  "",
  "x",
  "kernel: [12345.678] fw-in: ",
  "préfixe ünïcode: ",
  "OUT=eth9 "
]

/** Messages: every body under every prefix, and odd ones. */
const messages: Array<string> = [
  ...prefixes.flatMap((prefix) => bodies.map((body) => prefix + body)),
  // no IN= at all, IN= first, IN= twice, IN= only inside a value, garbage
  "nftables-metal-dropped: OUT=eth0 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=TCP SPT=1 DPT=2",
  "IN=eth0 OUT= SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=UDP SPT=1 DPT=2 LEN=20",
  "a IN=b: IN=eth0 OUT= SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=UDP SPT=1 DPT=2 LEN=20",
  "pre: OUT= PHYSIN=IN=x SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=2",
  "nftables-metal-dropped: IN=",
  "nftables-metal-dropped: IN=\u0000\u0001 OUT=\uFFFD SRC=1.2.3.4",
  "nftables-metal-dropped: IN=eth0 OUT= SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0 \ud800",
  "just words, no netfilter fields",
  `nftables-metal-dropped: IN=eth0 OUT= SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=TCP SPT=1 DPT=2 ${"X=1 ".repeat(maxLineLength / 4)}`,
  `nftables-metal-dropped: IN=eth0 OUT= SRC=1.2.3.4 ${"Y".repeat(maxLineLength - 50)}`
]

const drop = (message: string, i: number, fields: Record<string, string>, host = "fw-1"): WireDrop => ({
  timestamp: { seconds: 1_700_000_000 + i, nanos: (i * 7919) % 1_000_000_000 },
  fields,
  eventId: `id-${i}`,
  host,
  message
})

const check = (wire: WireDrop, what: string) => {
  const actual = eventOfDrop(wire, () => "peer-cn")
  const expected = reference(wire, () => "peer-cn")
  if (expected === undefined) {
    // neither the message nor the map gives an event: eventOfDrop's minimal event (not under test here)
    assert.isDefined(actual, what)
    return
  }
  assert.deepStrictEqual(actual, expected, what)
  assert.deepStrictEqual(Object.keys(actual.fields), Object.keys(expected.fields), `${what}: key order`)
  assert.strictEqual(formatJsonLine(actual), formatJsonLine(expected), `${what}: line`)
}

describe("eventOfDrop", () => {
  it("gives parseLine's event with the message's own prefix, for every line, prefix and action", () => {
    let i = 0
    for (const message of messages) {
      for (const action of ["drop", "accept", "Drop", "reject"]) {
        const what = `${action}: ${JSON.stringify(message.slice(0, 120))}`
        check(drop(message, i++, { ACTION: action }), `${what} (ACTION only)`)
        check(drop(message, i++, { ACTION: action, IN: "eth0", SRC: "9.9.9.9", EXTRA: "x" }), `${what} (map)`)
        check(drop(message, i++, { ACTION: action, HOST: "from-map" }, ""), `${what} (host from the map)`)
      }
      check(drop(message, i++, { SRC: "9.9.9.9", PROTO: "TCP" }, ""), `no ACTION: ${JSON.stringify(message.slice(0, 120))}`)
    }
  })

  it("the same for Drops decoded with only ACTION (one shared map): the events, and a map of their own when the map is used", () => {
    const decoder = makeWireDecoder()
    const odd = ["just words, no netfilter fields", "", "nftables-metal-dropped: IN="]
    let i = 0
    for (const message of [...messages.slice(0, 40), ...odd]) {
      for (const action of ["drop", "accept"]) {
        const plain = drop(message, i++, { ACTION: action })
        const bytes = Buffer.from(Drop.encode({ ...plain, fields: { ACTION: action } }).finish())
        const decoded = decoder.single(bytes)
        if (decoded._tag !== "Success") throw new Error(decoded.failure.reason)
        const what = `${action}: ${JSON.stringify(message.slice(0, 80))}`
        const actual = eventOfDrop(decoded.success, () => "peer-cn")
        assert.deepStrictEqual(actual, eventOfDrop(plain, () => "peer-cn"), what)
        // whatever path built it, the event's map can be changed without touching other Drops
        assert.isFalse(Object.isFrozen(actual.fields), what)
        ;(actual.fields as Record<string, string>).ACTION = "changed"
        const again = decoder.single(bytes)
        assert.strictEqual(again._tag === "Success" && again.success.fields.ACTION, action, what)
      }
    }
  })

  it("the same in a run of similar events (the parser's caches carry from one event to the next)", () => {
    const line = allLines[0]!
    const at = line.indexOf("IN=")
    let i = 0
    for (let n = 0; n < 300; n++) {
      const prefix = n % 50 < 40 ? line.slice(0, at) : `other-${n % 3}: `
      const body = line.slice(at).replace(/SPT=\d+/, `SPT=${1024 + n}`).replace(/ID=\d+/, `ID=${n % 7}`)
      check(drop(prefix + body, i++, { ACTION: n % 11 === 0 ? "accept" : "drop" }), `run ${n}`)
    }
  })
})
