/**
 * JournalSource against the real systemd-journald: entries written through /dev/kmsg and logger,
 * journalctl killed under the source, a lost cursor.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import * as Os from "node:os"
import { NodeServices } from "@effect/platform-node"
import { expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Stream } from "effect"
import { type Cursor, type JournalEntry } from "../../src/journal/JournalEntry.ts"
import { JournalSource, type JournalOptions, type StartPosition } from "../../src/journal/JournalSource.ts"
import { cursorLostResets, journalctlRestarts } from "../../src/journal/metrics.ts"
import { describeWith } from "../support/environment.ts"
import {
  childPidsOf,
  uniqueMarker,
  waitFor,
  withDevkmsgUnlimited,
  writeViaKmsg,
  writeViaLogger
} from "../support/journal.ts"

const sourceLayer = (options: JournalOptions) =>
  JournalSource.layerWith({ restartBaseDelay: 50, ...options }).pipe(Layer.provide(NodeServices.layer))

/** Follows in the background, collecting entries; `stop` interrupts (which kills journalctl). */
const following = (options: JournalOptions, start: StartPosition) =>
  Effect.gen(function*() {
    const entries: Array<JournalEntry> = []
    const fiber = yield* Effect.gen(function*() {
      const source = yield* JournalSource
      yield* source.follow(start).pipe(Stream.runForEach((e) => Effect.sync(() => entries.push(e))))
    }).pipe(Effect.provide(sourceLayer(options)), Effect.forkChild)
    return { entries, stop: Fiber.interrupt(fiber) }
  })

const realtimeOf = (cursor: string): { realtime: number; hostname: string; transport: string } => {
  const json = JSON.parse(execFileSync("journalctl", ["-o", "json", `--cursor=${cursor}`, "-n", "1"], { encoding: "utf8" }).split("\n")[0]!)
  return { realtime: Number(json.__REALTIME_TIMESTAMP), hostname: json._HOSTNAME, transport: json._TRANSPORT }
}

describeWith(["root", "journald"], "JournalSource on the real journal", () => {
  it.live("reads entries written through /dev/kmsg and logger, with the journal's microsecond clock and host", () =>
    Effect.gen(function*() {
      const marker = uniqueMarker("src")
      const identifier = uniqueMarker("srcid")
      const kmsgLines = Array.from({ length: 30 }, (_, i) => `droptailer-test ${marker} kmsg ${i}`)
      yield* Effect.promise(() => withDevkmsgUnlimited(() => writeViaKmsg(kmsgLines)))
      yield* Effect.promise(() => writeViaLogger(identifier, ["first", "second \u00e9\u00e8"]))

      const { entries: kernel, stop: stopKernel } = yield* following(
        { matches: ["SYSLOG_IDENTIFIER=kernel"], extraFields: ["_TRANSPORT"] },
        { _tag: "Tail", lines: 5_000 }
      )
      const { entries: logged, stop: stopLogged } = yield* following(
        { matches: [`SYSLOG_IDENTIFIER=${identifier}`] },
        { _tag: "Oldest" }
      )
      yield* Effect.promise(() =>
        waitFor("the kmsg and logger entries", () => kernel.filter((e) => e.message.includes(marker)).length === 30 && logged.length === 2)
      )
      yield* stopKernel
      yield* stopLogged

      const mine = kernel.filter((e) => e.message.includes(marker))
      expect(mine.map((e) => e.message)).toEqual(kmsgLines)
      for (const e of [...mine, ...logged]) {
        const truth = realtimeOf(e.cursor)
        expect(e.realtime).toBe(truth.realtime)
        expect(Number.isInteger(e.realtime) && e.realtime > 1_600_000_000_000_000).toBe(true)
        expect(e.hostname).toBe(truth.hostname)
        expect(e.hostname).toBe(Os.hostname())
      }
      expect(mine.every((e) => e.identifier === "kernel" && e.fields._TRANSPORT?.[0] === "kernel")).toBe(true)
      expect(new Set(mine.map((e) => e.realtime % 1000)).size).toBeGreaterThan(1) // microseconds, not milliseconds
      expect(logged.map((e) => e.message)).toEqual(["first", "second \u00e9\u00e8"])
      expect(logged[0]!.identifier).toBe(identifier)
    }))

  it.live("restarts journalctl when it is killed, after the last emitted entry: nothing lost, nothing repeated", () =>
    Effect.gen(function*() {
      const identifier = uniqueMarker("kill")
      yield* Effect.promise(() => writeViaLogger(identifier, ["warm-up"]))
      const restartsBefore = (yield* Metric.value(journalctlRestarts)).count
      const { entries, stop } = yield* following({ matches: [`SYSLOG_IDENTIFIER=${identifier}`] }, { _tag: "Oldest" })
      yield* Effect.promise(() => waitFor("warm-up", () => entries.length === 1))
      const batch = (from: number) => Array.from({ length: 500 }, (_, i) => `entry ${from + i}`)
      yield* Effect.promise(() => writeViaLogger(identifier, batch(0)))
      yield* Effect.promise(() => waitFor("some entries", () => entries.length > 100))
      const pids = childPidsOf(process.pid, "journalctl")
      expect(pids.length).toBe(1)
      process.kill(pids[0]!, "SIGKILL")
      yield* Effect.promise(() => writeViaLogger(identifier, batch(500)))
      yield* Effect.promise(() => waitFor("all entries", () => entries.length >= 1_001))
      yield* Effect.sleep("300 millis")
      const newPids = childPidsOf(process.pid, "journalctl")
      yield* stop
      expect(newPids.length).toBe(1)
      expect(newPids[0]).not.toBe(pids[0])
      expect(entries.map((e) => e.message)).toEqual(["warm-up", ...batch(0), ...batch(500)])
      expect((yield* Metric.value(journalctlRestarts)).count - restartsBefore).toBeGreaterThanOrEqual(1)
      expect(childPidsOf(process.pid, "journalctl")).toEqual([]) // interrupting killed it
    }))

  it.live("reads a backlog without --follow, then follows after its last entry: nothing lost, nothing repeated", () =>
    Effect.gen(function*() {
      const identifier = uniqueMarker("catchup")
      const lines = (from: number, n: number) => Array.from({ length: n }, (_, i) => `line ${from + i}`)
      yield* Effect.promise(() => writeViaLogger(identifier, lines(0, 2_000)))
      const { entries, stop } = yield* following({ matches: [`SYSLOG_IDENTIFIER=${identifier}`] }, { _tag: "Oldest" })
      yield* Effect.promise(() => waitFor("the backlog", () => entries.length === 2_000))
      yield* Effect.promise(() => writeViaLogger(identifier, lines(2_000, 300)))
      yield* Effect.promise(() => waitFor("the new entries", () => entries.length >= 2_300))
      yield* Effect.sleep("300 millis")
      // by now the catch-up run has exited: one journalctl, following
      const pids = childPidsOf(process.pid, "journalctl")
      expect(pids.length).toBe(1)
      const args = readFileSync(`/proc/${pids[0]}/cmdline`, "utf8").split("\0")
      expect(args).toContain("--follow")
      expect(args.some((a) => a.startsWith("--cursor="))).toBe(true)
      yield* stop
      expect(entries.map((e) => e.message)).toEqual(lines(0, 2_300))
    }))

  it.live("a saved cursor that no longer exists (vacuumed, or malformed) → from the oldest entry, counted", () =>
    Effect.gen(function*() {
      const identifier = uniqueMarker("lost")
      const messages = ["one", "two", "three"]
      yield* Effect.promise(() => writeViaLogger(identifier, messages))
      const first = execFileSync("journalctl", ["-o", "export", "--output-fields=MESSAGE", `SYSLOG_IDENTIFIER=${identifier}`], {
        encoding: "utf8"
      }).split("\n")[0]!.slice("__CURSOR=".length)
      // The same journal, an entry before its head: what a vacuumed cursor looks like.
      const vacuumed = first.replace(/;i=[0-9a-f]+;/, ";i=0;") as Cursor
      const malformed = "s=not-a-cursor" as Cursor
      for (const cursor of [vacuumed, malformed]) {
        const lostBefore = (yield* Metric.value(cursorLostResets)).count
        const { entries, stop } = yield* following(
          { matches: [`SYSLOG_IDENTIFIER=${identifier}`] },
          { _tag: "AfterCursor", cursor }
        )
        yield* Effect.promise(() => waitFor(`entries after ${cursor}`, () => entries.length === 3))
        yield* Effect.sleep("200 millis")
        yield* stop
        expect(entries.map((e) => e.message)).toEqual(messages) // the oldest one is not skipped
        expect((yield* Metric.value(cursorLostResets)).count - lostBefore).toBe(1)
      }
      // and an existing cursor resumes right after it
      const { entries, stop } = yield* following(
        { matches: [`SYSLOG_IDENTIFIER=${identifier}`] },
        { _tag: "AfterCursor", cursor: first as Cursor }
      )
      yield* Effect.promise(() => waitFor("entries after the first", () => entries.length === 2))
      yield* Effect.sleep("200 millis")
      yield* stop
      expect(entries.map((e) => e.message)).toEqual(["two", "three"])
    }))
})
