/**
 * The pipeline's ordering and checkpoint rules, with a scripted journal and a sink whose batches
 * finish out of order. (The real journal is exercised in client.test.ts.)
 */
import { expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Queue, Random, Stream } from "effect"
import { ClientPipeline } from "../../src/client/ClientPipeline.ts"
import { EventSink, type OutgoingEvent } from "../../src/client/EventSink.ts"
import { defaultPrefixes } from "../../src/domain/Parser.ts"
import { CheckpointStore, type Position } from "../../src/journal/CheckpointStore.ts"
import type { Cursor, JournalEntry } from "../../src/journal/JournalEntry.ts"
import { JournalSource } from "../../src/journal/JournalSource.ts"
import { dropLine } from "../support/journal.ts"

const cursor = (i: number) =>
  `s=46d3250e34e546919c4cc68a080935b1;i=${i.toString(16)};b=6bc46222b020476594a23443224435a6;m=1;t=2;x=3` as Cursor

const entries: Array<JournalEntry> = Array.from({ length: 5_000 }, (_, k) => {
  const i = k + 1
  const message = i % 3 === 0
    ? `some other kernel line ${i}`
    : i % 101 === 0
    ? "nftables-metal-dropped: \u0000garbage"
    : dropLine("nftables-metal-dropped: ", i)
  return { cursor: cursor(i), realtime: 1_795_790_000_000_000 + i, hostname: "fw-1", message, fields: {} }
})

it.live("delivers in batches, several in flight, and advances the checkpoint only in journal order past acknowledged batches", () =>
  Effect.gen(function*() {
    const acknowledged = new Set<string>()
    const delivered: Array<OutgoingEvent> = []
    const advances: Array<Position> = []
    let violations = 0
    let maxInFlight = 0
    let inFlight = 0

    const sink = Layer.succeed(EventSink, EventSink.of({
      deliver: (batch) =>
        Effect.gen(function*() {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          // later batches often finish first
          yield* Effect.sleep(yield* Random.nextBetween(0, 15))
          for (const e of batch) {
            acknowledged.add(e.id)
            delivered.push(e)
          }
          inFlight--
        })
    }))
    const source = Layer.succeed(JournalSource, JournalSource.of({
      follow: () => Stream.fromIterable(entries).pipe(Stream.rechunk(37), Stream.concat(Stream.never)),
      read: () => Stream.fromIterable(entries)
    }))
    const checkpoint = Layer.succeed(CheckpointStore, CheckpointStore.of({
      saved: { _tag: "None" },
      path: "(memory)",
      advance: (position) =>
        Effect.sync(() => {
          const last = advances[advances.length - 1]
          if (last !== undefined && parseInt(last.cursor.split(";")[1]!.slice(2), 16) >= parseInt(position.cursor.split(";")[1]!.slice(2), 16)) violations++
          // every event up to this position must be acknowledged already
          const upTo = parseInt(position.cursor.split(";")[1]!.slice(2), 16)
          for (let i = 1; i <= upTo; i++) {
            if (i % 3 !== 0 && i % 101 !== 0 && !acknowledged.has(`46d3250e34e546919c4cc68a080935b1-${i.toString(16)}`)) violations++
          }
          advances.push(position)
        }),
      current: Effect.sync(() => Option.fromUndefinedOr(advances[advances.length - 1])),
      flush: Effect.void
    }))

    const layer = ClientPipeline.layerWith({
      prefixes: defaultPrefixes,
      start: { _tag: "Tail", lines: 100 },
      batchSize: 100,
      inFlight: 4
    }).pipe(Layer.provide(Layer.mergeAll(sink, source, checkpoint)))

    const fiber = yield* Effect.gen(function*() {
      const pipeline = yield* ClientPipeline
      yield* pipeline.run
    }).pipe(Effect.provide(layer), Effect.forkChild)

    for (let n = 0; n < 400 && advances[advances.length - 1]?.cursor !== cursor(5_000); n++) yield* Effect.sleep(25)
    yield* Fiber.interrupt(fiber)

    expect(advances[advances.length - 1]?.cursor).toBe(cursor(5_000)) // moved past trailing skipped lines too
    expect(violations).toBe(0)
    expect(maxInFlight).toBeGreaterThan(1)
    const expected = entries.filter((e) => !e.message.startsWith("some other") && !e.message.includes("garbage"))
    expect(delivered.length).toBe(expected.length)
    expect(new Set(delivered.map((e) => e.id)).size).toBe(expected.length)
    const first = delivered.find((e) => e.id.endsWith("-1"))!
    expect(first.event.timestamp).toBe(1_795_790_000_000_001)
    expect(first.event.host).toBe("fw-1")
    expect(first.message).toBe(entries[0]!.message)
  }))

it.live("batches grow with the load: what is read while every slot is busy goes out as one batch (at most batchSize), at once when a slot frees", () =>
  Effect.gen(function*() {
    const sizes: Array<number> = []
    const advanced: Array<string> = []
    const release = yield* Deferred.make<void>()
    const sink = Layer.succeed(EventSink, EventSink.of({
      deliver: (batch) =>
        Effect.gen(function*() {
          sizes.push(batch.length)
          if (sizes.length <= 2) yield* Deferred.await(release) // the two slots stay busy
        })
    }))
    const chunks = yield* Queue.unbounded<ReadonlyArray<JournalEntry>>()
    const source = Layer.succeed(JournalSource, JournalSource.of({
      follow: () => Stream.fromQueue(chunks).pipe(Stream.flattenIterable),
      read: () => Stream.empty
    }))
    const checkpoint = Layer.succeed(CheckpointStore, CheckpointStore.of({
      saved: { _tag: "None" },
      path: "(memory)",
      advance: (position) => Effect.sync(() => void advanced.push(position.cursor)),
      current: Effect.sync(() => Option.none()),
      flush: Effect.void
    }))
    const drops = (from: number, count: number) => entries.filter((e) => !e.message.startsWith("some other") && !e.message.includes("garbage")).slice(from, from + count)
    const layer = ClientPipeline.layerWith({ prefixes: defaultPrefixes, start: { _tag: "Oldest" }, batchSize: 100, inFlight: 2 }).pipe(
      Layer.provide(Layer.mergeAll(sink, source, checkpoint))
    )
    const fiber = yield* Effect.gen(function*() {
      yield* (yield* ClientPipeline).run
    }).pipe(Effect.provide(layer), Effect.forkChild)

    const waitFor = (what: () => boolean) => Effect.gen(function*() {
      for (let n = 0; n < 200 && !what(); n++) yield* Effect.sleep(5)
    })
    yield* Queue.offer(chunks, drops(0, 10))
    yield* waitFor(() => sizes.length === 1)
    yield* Queue.offer(chunks, drops(10, 20))
    yield* waitFor(() => sizes.length === 2)
    expect(sizes).toEqual([10, 20]) // a free slot takes each read at once
    for (let k = 0; k < 9; k++) {
      yield* Queue.offer(chunks, drops(30 + 10 * k, 10)) // 9 reads while both slots are busy
      yield* Effect.sleep(2)
    }
    yield* Queue.offer(chunks, drops(120, 40)) // 130 read: a batch of 100 is full, the reader waits
    yield* Effect.sleep(50)
    expect(sizes).toEqual([10, 20])
    yield* Deferred.succeed(release, undefined)
    const last = drops(159, 1)[0]!.cursor
    yield* waitFor(() => advanced[advanced.length - 1] === last)
    expect(sizes).toEqual([10, 20, 100, 30]) // ten reads coalesced, cut at batchSize
    expect(advanced.length).toBe(4)
    expect(advanced[3]).toBe(last) // all checkpointed while running (not by the drain on interruption)
    yield* Fiber.interrupt(fiber)
  }))
