/**
 * PushBatch without the map: a client event whose fields are exactly the parse of its message
 * (`fieldsFromMessage`, set by the client pipeline) travels with only ACTION, and the server prints
 * the map rebuilt from the message; every other event travels, and is printed, with its own map.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { OutgoingEvent } from "../../src/client/EventSink.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { makeCertSet } from "../../src/transport/Certs.ts"
import { inProcessServer, shipper, shipperConfigFor, writeTempCerts } from "./support.ts"

const lines = [
  "nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=59265 DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0",
  "nftables-metal-accepted: IN=vrf10 OUT=vrf11 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0001:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=744351 PROTO=UDP SPT=53 DPT=5353 LEN=40"
]

const event = (line: string, i: number, fieldsFromMessage: boolean): OutgoingEvent => {
  const parsed = parseLine(line, defaultPrefixes, { timestamp: 1_700_000_000_000_000 + i, host: "fw-slim" })
  if (parsed._tag !== "Event") throw new Error(`not an event: ${line}`)
  return { id: `slim-${i}`, message: line, event: parsed.event, fieldsFromMessage }
}

describe("PushBatch events whose map the server rebuilds from the message", () => {
  it.live("print the same map as events sent with it; an event without the mark keeps its own map", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const { port, received } = yield* inProcessServer(set)
      const dir = yield* writeTempCerts(set)
      const sink = yield* shipper(shipperConfigFor(dir, port))
      const slim = lines.map((line, i) => event(line, i, true))
      // the mark promises a map the message gives; a map with more in it shows what was sent
      const lying = event(lines[0]!, 10, true)
      const own = event(lines[0]!, 11, false)
      const extra = { ...lying, event: { ...lying.event, fields: { ...lying.event.fields, EXTRA: "sent?" } } }
      const withOwnMap = { ...own, event: { ...own.event, fields: { ...own.event.fields, EXTRA: "sent" } } }
      yield* sink.deliver([...slim, extra, withOwnMap])
      assert.strictEqual(received.length, 4)
      assert.deepStrictEqual(received[0]!.fields, slim[0]!.event.fields)
      assert.deepStrictEqual(Object.keys(received[0]!.fields), Object.keys(slim[0]!.event.fields), "same key order")
      assert.deepStrictEqual(received[1]!.fields, slim[1]!.event.fields)
      assert.strictEqual(received[1]!.action, "accept")
      assert.strictEqual(received[1]!.fields.ACTION, "accept")
      assert.isUndefined(received[2]!.fields.EXTRA, "only ACTION travelled; the map was rebuilt")
      assert.strictEqual(received[3]!.fields.EXTRA, "sent")
    }).pipe(Effect.scoped), 60_000)
})
