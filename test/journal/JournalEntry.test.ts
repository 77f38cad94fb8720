import { describe, expect, it } from "vitest"
import { cursorPosition, decodeJournalEntry, entryId, ExportParser, sameEntry, valuesOf } from "../../src/journal/JournalEntry.ts"

const cursor = (i: number) =>
  `s=46d3250e34e546919c4cc68a080935b1;i=${i.toString(16)};b=6bc46222b020476594a23443224435a6;m=84c256f;t=66142f9268fd0;x=57aa39329c42239a`

const binaryField = (name: string, bytes: Uint8Array): Buffer => {
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(bytes.length))
  return Buffer.concat([Buffer.from(`${name}\n`), length, Buffer.from(bytes), Buffer.from("\n")])
}

const exportEntry = (i: number, extra: Array<Buffer> = []): Buffer =>
  Buffer.concat([
    Buffer.from(`__CURSOR=${cursor(i)}\n__REALTIME_TIMESTAMP=1795790136053712\n_HOSTNAME=fw-1\nSYSLOG_IDENTIFIER=kernel\n`),
    ...extra,
    Buffer.from(`MESSAGE=line ${i}\n\n`)
  ])

describe("ExportParser", () => {
  it("splits entries at blank lines, whatever the chunk boundaries", () => {
    const all = Buffer.concat([exportEntry(1), exportEntry(2), exportEntry(3)])
    for (const size of [1, 2, 7, 64, all.length]) {
      const parser = new ExportParser()
      const out = []
      for (let at = 0; at < all.length; at += size) out.push(...parser.push(all.subarray(at, at + size)))
      expect(out.map((e) => e.MESSAGE)).toEqual(["line 1", "line 2", "line 3"])
      expect(parser.buffered).toBe(0)
    }
  })

  it("decodes binary fields (newlines, non-UTF-8 bytes) and keeps every value of a repeated field", () => {
    const bytes = Uint8Array.from([...Buffer.from("nftables-metal-dropped: a\nb "), 0xff, 0xfe])
    const all = Buffer.concat([
      exportEntry(5, [binaryField("BINARY", bytes), Buffer.from("TAG=one\nTAG=two\n"), binaryField("TAG", Uint8Array.from([0xc3, 0x28]))])
    ])
    const parser = new ExportParser()
    const out = []
    for (let at = 0; at < all.length; at += 3) out.push(...parser.push(all.subarray(at, at + 3)))
    expect(out).toHaveLength(1)
    const decoded = decodeJournalEntry(out[0])
    if (decoded._tag !== "Success") throw new Error(String(decoded.failure))
    const entry = decoded.success
    expect(entry.hostname).toBe("fw-1")
    expect(entry.realtime).toBe(1795790136053712)
    expect(entry.identifier).toBe("kernel")
    expect(entry.fields.BINARY).toEqual(["nftables-metal-dropped: a\nb \ufffd\ufffd"])
    expect(entry.fields.TAG).toEqual(["one", "two", "\ufffd("])
  })
})

describe("JournalEntry (json form)", () => {
  it("decodes byte arrays and repeated values as journalctl -o json prints them", () => {
    const decoded = decodeJournalEntry({
      __CURSOR: cursor(9),
      __REALTIME_TIMESTAMP: "1795790136053712",
      _HOSTNAME: "fw-2",
      MESSAGE: [...Buffer.from("nftables-metal-dropped: IN=lo "), 0xff],
      X: ["a", [0x62]],
      Y: null
    })
    if (decoded._tag !== "Success") throw new Error(String(decoded.failure))
    expect(decoded.success.message).toBe("nftables-metal-dropped: IN=lo \ufffd")
    expect(decoded.success.fields.X).toEqual(["a", "b"])
    expect(decoded.success.fields.Y).toEqual([])
  })

  it("rejects entries without a cursor or realtime clock", () => {
    expect(decodeJournalEntry({ MESSAGE: "x", __REALTIME_TIMESTAMP: "1" })._tag).toBe("Failure")
    expect(decodeJournalEntry({ MESSAGE: "x", __CURSOR: cursor(1) })._tag).toBe("Failure")
    expect(decodeJournalEntry({ MESSAGE: "x", __CURSOR: "garbage", __REALTIME_TIMESTAMP: "1" })._tag).toBe("Failure")
  })
})

describe("cursors", () => {
  it("derive a stable entry id from seqnum id and seqnum", () => {
    expect(cursorPosition(cursor(255))).toEqual({ seqnumId: "46d3250e34e546919c4cc68a080935b1", seqnum: "ff" })
    expect(entryId(cursor(255))).toBe("46d3250e34e546919c4cc68a080935b1-ff")
    expect(sameEntry(cursor(3), cursor(3).replace("x=57aa", "x=0000"))).toBe(true)
    expect(sameEntry(cursor(3), cursor(4))).toBe(false)
    expect(valuesOf(undefined)).toEqual([])
  })
})
