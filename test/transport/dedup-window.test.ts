/**
 * DedupWindow against a plain model (arrays and a Map): the same answers for any sequence of
 * add / has / remove, with few ids (repeats, removals of absent ids), with many (evictions, the
 * table growing, probe runs wrapping around), and with ids of any code units and lengths over
 * many hosts (the least recently active one forgotten first).
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { DedupWindow, hashId, hashIdBytes } from "../../src/transport/DedupWindow.ts"

class ModelWindow {
  readonly ring: Array<string | undefined> = []
  next = 0
  readonly size: number
  constructor(size: number) {
    this.size = size
  }
  has(id: string): boolean {
    return this.ring.includes(id)
  }
  remove(id: string): void {
    const at = this.ring.indexOf(id)
    if (at !== -1) this.ring[at] = undefined
  }
  add(id: string): boolean {
    if (this.has(id)) return false
    this.ring[this.next] = id
    this.next = this.next + 1 === this.size ? 0 : this.next + 1
    return true
  }
}

class Model {
  readonly hosts = new Map<string, ModelWindow>()
  readonly perHost: number
  readonly maxHosts: number
  constructor(perHost: number, maxHosts: number) {
    this.perHost = Math.max(1, perHost)
    this.maxHosts = Math.max(1, maxHosts)
  }
  has(host: string, id: string): boolean {
    return id !== "" && this.hosts.get(host)?.has(id) === true
  }
  remove(host: string, id: string): void {
    if (id !== "") this.hosts.get(host)?.remove(id)
  }
  add(host: string, id: string): boolean {
    if (id === "") return true
    let window = this.hosts.get(host)
    if (window === undefined) {
      if (this.hosts.size >= this.maxHosts) this.hosts.delete(this.hosts.keys().next().value!)
      window = new ModelWindow(this.perHost)
    } else {
      this.hosts.delete(host)
    }
    this.hosts.set(host, window)
    return window.add(id)
  }
}

type Op = readonly ["add" | "has" | "remove", string, string]

/**
 * `hashed`: adds of ASCII ids pass the id's hash as the request decoder does (`hashIdBytes` of
 * the id's bytes, placed in a larger buffer); otherwise the window hashes the string.
 */
const run = (perHost: number, maxHosts: number, ops: ReadonlyArray<Op>, hashed = false): void => {
  const window = new DedupWindow(perHost, maxHosts)
  const model = new Model(perHost, maxHosts)
  for (const [op, host, id] of ops) {
    if (op === "add" && hashed && Buffer.byteLength(id) === id.length) {
      const bytes = Buffer.from(`..${id}..`, "latin1")
      expect(window.add(host, id, hashIdBytes(bytes, 2, 2 + id.length))).toBe(model.add(host, id))
    } else if (op === "add") expect(window.add(host, id)).toBe(model.add(host, id))
    else if (op === "has") expect(window.has(host, id)).toBe(model.has(host, id))
    else {
      window.remove(host, id)
      model.remove(host, id)
    }
  }
  for (const [, host, id] of ops) expect(window.has(host, id)).toBe(model.has(host, id))
}

describe("DedupWindow", () => {
  it("answers as the model for any sequence of operations on few ids and hosts", () => {
    const op = fc.tuple(
      fc.constantFrom("add" as const, "add" as const, "has" as const, "remove" as const),
      fc.constantFrom("h1", "h2", "h3"),
      fc.oneof(fc.constantFrom("", "a", "b", "c", "d", "e"), fc.nat(40).map(String))
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 3 }), fc.array(op, { maxLength: 300 }), (perHost, maxHosts, ops) =>
        run(perHost, maxHosts, ops)),
      { numRuns: 500 }
    )
  })

  it("answers as the model with many ids: evictions, growth of the table, removals", () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 500, max: 3000 })), fc.integer({ min: 1, max: 100_000 }), (perHost, seed) => {
        let state = seed
        const random = (n: number) => {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0
          return state % n
        }
        const ops: Array<Op> = []
        for (let i = 0; i < 4000; i++) {
          const r = random(100)
          // mostly fresh ids, some retransmits of recent and old ones, some removals
          const id = r < 70 ? `s=x;i=${i}` : `s=x;i=${Math.max(0, i - random(perHost * 2))}`
          ops.push([r < 90 ? "add" : r < 95 ? "has" : "remove", random(10) === 0 ? "h2" : "h1", id])
        }
        run(perHost, 2, ops)
      }),
      { numRuns: 40 }
    )
  })

  it("answers as the model for runs of numbered ids (several prefixes, digits carrying over, leading zeros), hashed from bytes or not", () => {
    const prefixes = ["4f8e2a1c9b7d4e3fa2c5b6d7e8f90123-", "s=x;i=", "x-", "x-1", "", "id 7-"]
    const starts = [0, 5, 999_999_990, 99_999_995, 123_456_789_012]
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.array(fc.tuple(fc.constantFrom(...prefixes), fc.constantFrom(...starts), fc.integer({ min: 1, max: 400 }), fc.boolean()), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.boolean(),
        (perHost, runs, seed, hashed) => {
          let state = seed
          const random = (n: number) => {
            state = (Math.imul(state, 1103515245) + 12345) >>> 0
            return state % n
          }
          const ops: Array<Op> = []
          for (const [prefix, start, length, padded] of runs) {
            for (let i = 0; i < length; i++) {
              const n = start + i
              const id = prefix + (padded ? String(n).padStart(12, "0") : String(n))
              ops.push(["add", "h1", id])
              // retransmits of recent ids, lookups and removals in between
              const r = random(100)
              if (r < 10) ops.push(["add", "h1", prefix + String(start + random(i + 1))])
              else if (r < 13) ops.push(["has", "h1", prefix + String(start + random(i + 1))])
              else if (r < 15) ops.push(["remove", "h1", prefix + String(start + random(i + 1))])
            }
          }
          run(perHost, 1, ops, hashed)
        }
      ),
      { numRuns: 150 }
    )
  })

  it("answers as the model for ids of any code units and lengths, many hosts", () => {
    // code units of one byte (ASCII, Latin-1 up to ÿ) and two (Ā = 0x100, €, 中, ł, a surrogate pair, 0x41xx beside "A")
    const unit = fc.constantFrom("a", "b", "0", "9", "\u0000", "é", "ÿ", "\u0100", "€", "中", "ł", "😀", "\u4141", "\u0141")
    const short = fc.array(unit, { minLength: 1, maxLength: 5 }).map((a) => a.join(""))
    // ids alike in their low bytes, one byte per code unit or two
    const alike = fc.constantFrom("A", "AA", "\u4141", "\u0141", "\u4141\u4141", "\u0141\u4141", "A\u0141", "ÿ", "\u01ff", "\uff00")
    // long ids sharing a prefix and their length, differing at the end
    const long = fc.tuple(fc.constantFrom("x", "é", "中"), fc.integer({ min: 40, max: 700 }), short).map(([c, n, end]) => c.repeat(n) + end)
    const op = fc.tuple(
      fc.constantFrom("add" as const, "add" as const, "add" as const, "has" as const, "remove" as const),
      fc.constantFrom("h1", "h1", "h2", "h3", "h4", "h5", "h6", "é-host"),
      fc.oneof({ weight: 4, arbitrary: short }, { weight: 3, arbitrary: alike }, { weight: 1, arbitrary: long }, { weight: 1, arbitrary: fc.constant("") })
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 400 }), (perHost, maxHosts, ops) =>
        run(perHost, maxHosts, ops)),
      { numRuns: 400 }
    )
  })

  it("hashes an ASCII id's bytes as its string (the decoder's hashes are the window's)", () => {
    const char = fc.oneof(fc.constantFrom(..."0123456789"), fc.constantFrom(..."0123456789"), fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)))
    fc.assert(
      fc.property(fc.array(char, { maxLength: 60 }).map((a) => a.join("")), fc.nat(5), (id, offset) => {
        const bytes = Buffer.concat([Buffer.alloc(offset, 0x39), Buffer.from(id, "latin1"), Buffer.from("77")])
        expect(hashIdBytes(bytes, offset, offset + id.length)).toBe(hashId(id))
      }),
      { numRuns: 5000 }
    )
  })
})
