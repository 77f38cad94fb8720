/**
 * How the client pipeline cuts a chunk of journal entries into batches, and which events it marks
 * as rebuildable from their message (so PushBatch sends only ACTION of their map).
 */
import { describe, expect, it } from "vitest"
import { type Batch, Batcher } from "../../src/client/Batcher.ts"
import { defaultPrefixes, type Prefixes } from "../../src/domain/Parser.ts"
import type { JournalEntry } from "../../src/journal/JournalEntry.ts"

/** The batches a Batcher makes of `entries` read at once, taken one after the other. */
const toBatches = (entries: ReadonlyArray<JournalEntry>, prefixes: Prefixes, size: number): Array<Batch> => {
  const batcher = new Batcher(prefixes, size)
  batcher.add(entries)
  const batches: Array<Batch> = []
  for (let batch = batcher.takeNow(); batch !== undefined; batch = batcher.takeNow()) batches.push(batch)
  return batches
}

const cursor = (i: number) => `s=0123456789abcdef0123456789abcdef;i=${i.toString(16)};b=0123456789abcdef0123456789abcdef;m=1;t=1;x=1`
const entry = (i: number, message: string) => ({ cursor: cursor(i), realtime: 1_700_000_000_000_000 + i, hostname: "fw-1", message }) as unknown as JournalEntry
const tcp = "IN=vrf09 OUT= SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=TCP SPT=1 DPT=2 SYN"

describe("the batches of a chunk of journal entries", () => {
  it("marks an event when its prefix is followed right away by IN= (the server parses it the same way)", () => {
    const [batch] = toBatches([
      entry(1, `nftables-metal-dropped: ${tcp}`),
      entry(2, `nftables-firewall-accepted: ${tcp}`),
      entry(3, `nftables-metal-dropped: something else ${tcp}`),
      entry(4, "systemd-journald[1]: not ours")
    ], defaultPrefixes, 500)
    expect(batch!.events.map((e) => [e.event.action, e.fieldsFromMessage])).toEqual([
      ["drop", true],
      ["accept", true],
      // the server would take "nftables-metal-dropped: something else " as the prefix: send the map
      ["drop", false]
    ])
    expect(batch!.entries).toBe(4)
  })

  it("cuts batches of at most `size` entries; each ends at the position of its last entry", () => {
    const entries = Array.from({ length: 7 }, (_, i) => entry(i, `nftables-metal-dropped: ${tcp}`))
    const batches = toBatches(entries, defaultPrefixes, 3)
    expect(batches.map((b) => b.entries)).toEqual([3, 3, 1])
    expect(batches.map((b) => b.last!.cursor)).toEqual([cursor(2), cursor(5), cursor(6)])
  })
})
