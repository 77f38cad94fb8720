import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, Scope } from "effect"
import { checkpointFileName, CheckpointStore } from "../../src/journal/CheckpointStore.ts"
import type { Cursor } from "../../src/journal/JournalEntry.ts"
import { checkpointWrites } from "../../src/journal/metrics.ts"

const cursor = (i: number) =>
  `s=46d3250e34e546919c4cc68a080935b1;i=${i.toString(16)};b=6bc46222b020476594a23443224435a6;m=1;t=2;x=3` as Cursor

const tempDir = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "droptailer-checkpoint-"))

/** Builds the store in its own scope, runs `body`, closes the scope (the finalizer saves). */
const withStore = <A>(directory: string, body: (store: CheckpointStore["Service"]) => Effect.Effect<A>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(CheckpointStore.layerWith({ directory, flushIntervalMillis: 100 }), scope)
    const store = Context.get(context, CheckpointStore)
    const result = yield* body(store)
    yield* Scope.close(scope, Exit.void)
    return result
  })

it.live("saves the last advanced position, coalesced, and again on shutdown", () =>
  Effect.gen(function*() {
    const directory = Path.join(tempDir(), "nested", "state")
    const writesBefore = (yield* Metric.value(checkpointWrites)).count
    yield* withStore(directory, (store) =>
      Effect.gen(function*() {
        expect(store.saved).toEqual({ _tag: "None" })
        for (let i = 1; i <= 10_000; i++) yield* store.advance({ cursor: cursor(i), realtime: 1_000 + i })
        yield* Effect.sleep("250 millis")
        const onDisk = JSON.parse(Fs.readFileSync(Path.join(directory, checkpointFileName), "utf8"))
        expect(onDisk.cursor).toBe(cursor(10_000))
        yield* store.advance({ cursor: cursor(10_001), realtime: 2_000 })
      }))
    const writes = (yield* Metric.value(checkpointWrites)).count - writesBefore
    expect(writes).toBeLessThanOrEqual(3) // 10,001 advances, not 10,001 fsyncs
    expect(Fs.readdirSync(directory)).toEqual([checkpointFileName]) // no temp files left
    const saved = yield* withStore(directory, (store) => Effect.succeed(store.saved))
    expect(saved).toEqual({ _tag: "Saved", position: { cursor: cursor(10_001), realtime: 2_000 } })
  }))

it.live("reports an unreadable checkpoint as corrupt (the position is lost)", () =>
  Effect.gen(function*() {
    const directory = tempDir()
    Fs.writeFileSync(Path.join(directory, checkpointFileName), "{\"cursor\":\"garbage\"")
    const saved = yield* withStore(directory, (store) => Effect.succeed(store.saved))
    expect(saved._tag).toBe("Corrupt")
  }))
