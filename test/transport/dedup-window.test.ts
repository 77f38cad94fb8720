/**
 * DedupWindow against a plain model (arrays and a Map): the same answers for any sequence of
 * add / has / remove, with few ids (repeats, removals of absent ids) and with many (evictions,
 * the table growing, probe runs wrapping around).
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { DedupWindow } from "../../src/transport/DedupWindow.ts"

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

const run = (perHost: number, maxHosts: number, ops: ReadonlyArray<Op>): void => {
  const window = new DedupWindow(perHost, maxHosts)
  const model = new Model(perHost, maxHosts)
  for (const [op, host, id] of ops) {
    if (op === "add") expect(window.add(host, id)).toBe(model.add(host, id))
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
})
