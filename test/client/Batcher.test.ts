/**
 * The Batcher between the journal reader and the delivery slots: batches are everything read since
 * the previous batch was taken (at most `size` entries), nothing is lost, repeated or reordered,
 * a full batch makes the reader wait, and nothing waits for a timer.
 */
import { expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import * as fc from "fast-check"
import { type Batch, Batcher } from "../../src/client/Batcher.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { type Cursor, entryId, type JournalEntry } from "../../src/journal/JournalEntry.ts"
import { dropLine } from "../support/journal.ts"

const cursor = (i: number) =>
  `s=46d3250e34e546919c4cc68a080935b1;i=${i.toString(16)};b=6bc46222b020476594a23443224435a6;m=1;t=2;x=3` as Cursor

/** Entry `i`: a drop, an accept, a line that is neither, or a malformed drop, by `kind`. */
const entry = (i: number, kind = 0): JournalEntry => {
  const message = kind === 1
    ? dropLine("nftables-firewall-accepted: ", i)
    : kind === 2
    ? `some other kernel line ${i}`
    : kind === 3
    ? "nftables-metal-dropped: \u0000garbage"
    : dropLine("nftables-metal-dropped: ", i)
  return { cursor: cursor(i), realtime: 1_795_790_000_000_000 + i, hostname: "fw-1", message, fields: {} } as JournalEntry
}
const entries = (from: number, count: number): Array<JournalEntry> => Array.from({ length: count }, (_, k) => entry(from + k))

/** What a batch says about its entries, in journal order: events by id, malformed by cursor. */
const summary = (batches: ReadonlyArray<Batch>) => ({
  events: batches.flatMap((b) => b.events.map((e) => [e.id, e.message, e.event.action, e.event.timestamp, e.fieldsFromMessage])),
  malformed: batches.flatMap((b) => (b.malformed ?? []).map((m) => m.cursor)),
  entries: batches.reduce((n, b) => n + b.entries, 0),
  drops: batches.reduce((n, b) => n + b.drops, 0)
})

/** The same, straight from parseLine entry by entry (the reference). */
const expected = (all: ReadonlyArray<JournalEntry>) => {
  const events: Array<unknown> = []
  const malformed: Array<string> = []
  let drops = 0
  for (const e of all) {
    const result = parseLine(e.message, defaultPrefixes, { timestamp: e.realtime, host: e.hostname })
    if (result._tag === "Event") {
      events.push([entryId(e.cursor), e.message, result.event.action, e.realtime, e.message.indexOf("IN=") === e.message.indexOf(": ") + 2])
      if (result.event.action === "drop") drops++
    } else if (result._tag === "Malformed") malformed.push(e.cursor)
  }
  return { events, malformed, entries: all.length, drops }
}

it("property: whatever the chunks and whenever batches are taken, the batches are the entries in order, each at most `size`, each ending at its last entry's position", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 40 }), fc.nat(3)), { maxLength: 30 }),
      fc.integer({ min: 1, max: 50 }),
      (chunks, size) => {
        const batcher = new Batcher(defaultPrefixes, size)
        const all: Array<JournalEntry> = []
        const taken: Array<Batch> = []
        for (const [kinds, takes] of chunks) {
          const chunk = kinds.map((kind, k) => entry(all.length + 1 + k, kind))
          all.push(...chunk)
          batcher.add(chunk)
          for (let t = 0; t < takes; t++) {
            const batch = batcher.takeNow()
            if (batch !== undefined) taken.push(batch)
          }
        }
        for (let batch = batcher.takeNow(); batch !== undefined; batch = batcher.takeNow()) taken.push(batch)
        expect(summary(taken)).toEqual(expected(all))
        let seen = 0
        for (const batch of taken) {
          expect(batch.entries).toBeGreaterThan(0)
          expect(batch.entries).toBeLessThanOrEqual(size)
          seen += batch.entries
          expect(batch.last).toEqual({ cursor: all[seen - 1]!.cursor, realtime: all[seen - 1]!.realtime })
        }
        expect(batcher.held).toBe(0)
      }
    ),
    { numRuns: 300 }
  )
})

it("a batch is everything read since the previous take: chunks read while no slot takes coalesce, up to `size`", () => {
  const batcher = new Batcher(defaultPrefixes, 100)
  batcher.add(entries(1, 30))
  batcher.add(entries(31, 30))
  batcher.add(entries(61, 30))
  expect(batcher.full).toBe(false)
  expect(batcher.takeNow()!.entries).toBe(90) // three reads, one batch
  batcher.add(entries(91, 60))
  batcher.add(entries(151, 60)) // 120 read: a full batch of 100 is closed, 20 stay open
  expect(batcher.full).toBe(true)
  expect(batcher.held).toBe(120)
  expect([batcher.takeNow()!.entries, batcher.full, batcher.takeNow()!.entries]).toEqual([100, false, 20])
  expect(batcher.takeNow()).toBeUndefined()
})

it.effect("a waiting slot gets the next read at once (no timer), and the reader waits while a full batch is not taken", () =>
  Effect.gen(function*() {
    const batcher = new Batcher(defaultPrefixes, 50)
    const slot = yield* Effect.forkChild(batcher.take)
    yield* Effect.yieldNow
    yield* batcher.offer(entries(1, 7)) // the slot was waiting: it takes these 7 right away
    const [first] = yield* Fiber.join(slot)
    expect(first.entries).toBe(7)

    yield* batcher.offer(entries(8, 30)) // no slot waiting: kept open, the reader goes on
    const reader = yield* Effect.forkChild(batcher.offer(entries(38, 30))) // 60 read: 50 closed, the reader waits
    yield* Effect.yieldNow
    expect(reader.pollUnsafe()).toBeUndefined()
    const [full] = yield* batcher.take
    expect(full.entries).toBe(50)
    yield* Fiber.join(reader) // taken: the reader goes on
    const [rest] = yield* batcher.take
    expect([rest.entries, rest.last!.cursor]).toEqual([10, cursor(67)])
  }))

it.effect("after the reader ends, what it read is still taken, then take ends; a defect of the reader is passed on", () =>
  Effect.gen(function*() {
    const batcher = new Batcher(defaultPrefixes, 50)
    yield* batcher.offer(entries(1, 5))
    batcher.end(Exit.void)
    expect((yield* batcher.take)[0].entries).toBe(5)
    const done = yield* Effect.exit(batcher.take)
    expect(Exit.isFailure(done) && Cause.isDone(Cause.squash(done.cause))).toBe(true)

    const failing = new Batcher(defaultPrefixes, 50)
    const waiting = yield* Effect.forkChild(Effect.exit(failing.take))
    yield* Effect.yieldNow
    failing.end(Exit.die(new Error("boom")))
    const exit = yield* Fiber.join(waiting)
    expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
  }))

it.effect("a batch that is not full goes out only while fewer than `eager` are outstanding; a full one goes anyway; settling one lets the open batch go", () =>
  Effect.gen(function*() {
    const batcher = new Batcher(defaultPrefixes, 50, 2)
    yield* batcher.offer(entries(1, 5))
    expect((yield* batcher.take)[0].entries).toBe(5) // 0 outstanding: at once
    yield* batcher.offer(entries(6, 5))
    expect((yield* batcher.take)[0].entries).toBe(5) // 1 outstanding: at once
    yield* batcher.offer(entries(11, 5))
    const slot = yield* Effect.forkChild(batcher.take)
    yield* batcher.offer(entries(16, 5)) // 2 outstanding: the reads coalesce
    yield* Effect.yieldNow
    expect(slot.pollUnsafe()).toBeUndefined()
    batcher.settle()
    const [coalesced] = yield* Fiber.join(slot)
    expect([coalesced.entries, coalesced.last!.cursor]).toEqual([10, cursor(20)])
    yield* Effect.forkChild(batcher.offer(entries(21, 60))) // 2 outstanding, but 50 of these make a full batch
    expect((yield* batcher.take)[0].entries).toBe(50)
    const rest = yield* Effect.forkChild(batcher.take)
    yield* Effect.yieldNow
    expect(rest.pollUnsafe()).toBeUndefined() // 3 outstanding, 10 open: they wait
    batcher.settle()
    yield* Effect.yieldNow
    expect(rest.pollUnsafe()).toBeUndefined() // still 2
    batcher.settle()
    expect((yield* Fiber.join(rest))[0].entries).toBe(10)
  }))
