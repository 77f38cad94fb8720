/**
 * Follows the systemd journal: `journalctl --follow -o export` as a scoped child process, its
 * stdout split into entries (JournalEntry.ts) and decoded with Schema.
 *
 * Output mode: `-o export --output-fields=...`. Measured on this machine over the same 100k
 * entries: `-o json` 21k entries/s, `-o json --output-fields` 26k/s, `-o export` 55k/s — and export
 * is binary-safe. (bench/journal.ts prints the current figures.)
 *
 * Start and restart (facts about journalctl 252 checked here):
 * - `--after-cursor=C` with a cursor that no longer exists (vacuumed) silently skips the oldest
 *   entry; a malformed cursor fails with "Failed to seek to cursor: Invalid argument" (exit 1);
 *   a cursor beyond the tail prints nothing. So we start at `--cursor=C` (inclusive) and look at the
 *   first entry: the entry C itself is dropped; anything else means C is gone — journalctl has
 *   positioned at the nearest entry (the oldest one when C was vacuumed): count it, warn once,
 *   emit from there.
 * - `--follow` with a cursor still applies the default `--lines=10` (it printed 10 of 360 entries
 *   and then only new ones): `--no-tail` is required.
 * - When journalctl exits or crashes the stream restarts it (exponential backoff with jitter),
 *   after the last entry this source emitted — those entries are already downstream, so nothing
 *   is lost and nothing repeats within a process.
 * - A backlog is read without `--follow` first: with it, journalctl 252 spent 20-30% more time
 *   over the same 100k entries (15k mmap/munmap pairs instead of ~300: it keeps remapping the
 *   journal files). So from an absolute position (the oldest entry, a cursor) each start is a
 *   plain read to the current end, then `--follow` after the last entry it emitted (or from the
 *   same position when it emitted none) — the same hand-over as a restart. `Tail` and `New` are
 *   relative to the end: they follow at once, as before.
 */
import { existsSync } from "node:fs"
import { Context, Effect, Layer, Metric, Option, Schedule, Schema, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { logThrottled } from "../observability/LogThrottle.ts"
import { alwaysPrinted, type Cursor, ExportDecoder, type JournalEntry, sameEntry } from "./JournalEntry.ts"
import { cursorLostResets, journalctlRestarts, journalEntriesRead } from "./metrics.ts"

export type StartPosition =
  | { readonly _tag: "AfterCursor"; readonly cursor: Cursor }
  | { readonly _tag: "Oldest" }
  | { readonly _tag: "Tail"; readonly lines: number }
  | { readonly _tag: "New" }

export const StartPosition = {
  afterCursor: (cursor: Cursor): StartPosition => ({ _tag: "AfterCursor", cursor }),
  oldest: { _tag: "Oldest" } as StartPosition,
  tail: (lines: number): StartPosition => ({ _tag: "Tail", lines }),
  new: { _tag: "New" } as StartPosition
}

export interface JournalOptions {
  /** journalctl matches (`FIELD=value`, `+` for OR); default `SYSLOG_IDENTIFIER=kernel` as upstream. */
  readonly matches: ReadonlyArray<string>
  /** `--directory`: read the journal files in this directory. */
  readonly directory?: string | undefined
  /** `--file`: read these journal files (globs allowed). */
  readonly files?: ReadonlyArray<string> | undefined
  /** `--namespace`: a journal namespace. */
  readonly namespace?: string | undefined
  /** Fields to print besides the cursor and clocks (MESSAGE, _HOSTNAME, SYSLOG_IDENTIFIER always). */
  readonly extraFields?: ReadonlyArray<string> | undefined
  /** The journalctl executable. */
  readonly journalctl?: string | undefined
  /** First delay before restarting journalctl (doubles up to `restartMaxDelay`). */
  readonly restartBaseDelay?: number | undefined
  readonly restartMaxDelay?: number | undefined
}

export const defaultJournalOptions: JournalOptions = { matches: ["SYSLOG_IDENTIFIER=kernel"] }

export class JournalctlError extends Schema.TaggedError<JournalctlError>()("JournalctlError", {
  reason: Schema.String,
  stderr: Schema.String,
  /** journalctl refused the cursor (malformed, or from a journal it cannot read). */
  cursorRejected: Schema.Boolean
}) {}

const baseFields = ["MESSAGE", "_HOSTNAME", "SYSLOG_IDENTIFIER"]

/** The journalctl arguments for a start position (exported for tests and the bench). */
export const journalctlArgs = (
  options: JournalOptions,
  start: StartPosition,
  follow: boolean
): Array<string> => {
  const fields = [...new Set([...baseFields, ...(options.extraFields ?? [])])]
  const args = ["--no-pager", "--quiet", "--output=export", `--output-fields=${fields.join(",")}`]
  if (follow) args.push("--follow")
  if (options.directory !== undefined) args.push(`--directory=${options.directory}`)
  for (const file of options.files ?? []) args.push(`--file=${file}`)
  if (options.namespace !== undefined) args.push(`--namespace=${options.namespace}`)
  switch (start._tag) {
    case "AfterCursor":
      args.push(`--cursor=${start.cursor}`, "--no-tail")
      break
    case "Oldest":
      args.push("--no-tail")
      break
    case "Tail":
      args.push(`--lines=${start.lines}`)
      break
    case "New":
      args.push("--lines=0")
      break
  }
  args.push(...options.matches)
  return args
}

const stderrLimit = 4096

/**
 * Closing the scope kills journalctl, but a SIGKILLed client runs no finalizer: its journalctl
 * (in its own process group) would follow on until its next write fails, forever on a quiet
 * journal. When util-linux's setpriv is there, journalctl is exec'd through
 * `setpriv --pdeathsig SIGKILL`, so the kernel kills it when the client dies.
 */
const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => existsSync(path))
const withParentDeathSignal = (command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  setpriv === undefined ? [command, [...args]] : [setpriv, ["--pdeathsig", "SIGKILL", "--", command, ...args]]

/**
 * journalctl writes through stdio, whose buffer for a pipe is 4 KiB: every 4 KiB is a write(2), a
 * wakeup of our reader and a trip through Node's streams and Effect's pull. When coreutils' stdbuf
 * is there, journalctl runs under `stdbuf --output=64K` and writes 64 KiB at a time (with --follow
 * it still flushes whenever it waits for new entries: no added latency). Measured over 100k
 * entries: 15-20% less client CPU per entry. (stdbuf execs journalctl: same process.)
 */
const stdbuf = ["/usr/bin/stdbuf", "/bin/stdbuf"].find((path) => existsSync(path))
const stdoutBufferBytes = 65536

/** The command that runs journalctl with `args` (exported for the bench: the raw read runs the same). */
export const journalctlCommand = (journalctl: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  stdbuf === undefined ? [journalctl, [...args]] : [stdbuf, [`--output=${stdoutBufferBytes}`, journalctl, ...args]]

/** stdout chunks read ahead of decoding (bounded): journalctl keeps writing while we decode. */
const readAheadChunks = 16

export class JournalSource extends Context.Service<JournalSource, {
  /**
   * Entries from `start` on, following the journal forever (journalctl restarted when it exits).
   * Never fails. Closing the stream's scope kills journalctl.
   */
  readonly follow: (start: StartPosition) => Stream.Stream<JournalEntry>
  /** Entries from `start` to the current end of the journal (one journalctl run, no follow). */
  readonly read: (start: StartPosition) => Stream.Stream<JournalEntry, JournalctlError>
}>()("droptailer/journal/JournalSource") {
  static readonly layerWith = (options: JournalOptions) =>
    Layer.effect(
      JournalSource,
      Effect.gen(function*() {
        const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
        const journalctl = options.journalctl ?? "journalctl"
        let warnedCursorLost = false

        const cursorLost = (cursor: string, detail: string) =>
          Effect.gen(function*() {
            yield* Metric.update(cursorLostResets, 1)
            if (!warnedCursorLost) {
              warnedCursorLost = true
              yield* Effect.logWarning("saved journal cursor no longer exists; reading from the oldest entry").pipe(
                Effect.annotateLogs({ cursor, detail })
              )
            }
          })

        /** State shared by the runs of one `follow`: where the next run starts. */
        interface RunState {
          start: StartPosition
          lastEmitted: Cursor | undefined
        }

        /** One journalctl run: its entries, then a failure when it exits (follow) or exits non-zero. */
        const run = (state: RunState, follow: boolean): Stream.Stream<JournalEntry, JournalctlError> =>
          Stream.unwrap(Effect.gen(function*() {
            const start: StartPosition = state.lastEmitted !== undefined
              ? StartPosition.afterCursor(state.lastEmitted)
              : state.start
            const args = journalctlArgs(options, start, follow)
            yield* Effect.logDebug("starting journalctl").pipe(Effect.annotateLogs({ args: args.join(" ") }))
            const [command, commandArgs] = withParentDeathSignal(...journalctlCommand(journalctl, args))
            const handle = yield* spawner.spawn(
              ChildProcess.make(command, commandArgs, { stdin: "ignore", stdout: "pipe", stderr: "pipe" })
            ).pipe(
              Effect.mapError((cause) =>
                new JournalctlError({ reason: `cannot start ${journalctl}: ${cause.message}`, stderr: "", cursorRejected: false })
              )
            )
            let stderr = ""
            yield* handle.stderr.pipe(
              Stream.decodeText(),
              Stream.runForEach((text) =>
                Effect.sync(() => {
                  if (stderr.length < stderrLimit) stderr = (stderr + text).slice(0, stderrLimit)
                })
              ),
              Effect.ignore,
              Effect.forkScoped
            )
            const decoder = new ExportDecoder(alwaysPrinted.filter((f) => !(options.extraFields ?? []).includes(f)))
            // With a cursor, the first entry tells whether the cursor still exists.
            let expectCursor: Cursor | undefined = start._tag === "AfterCursor" ? start.cursor : undefined
            /** A decoded batch: counted, and where a restart would resume. One array, for filter + flattenArray. */
            const emitted = (batch: Array<JournalEntry>): Effect.Effect<readonly [Array<JournalEntry>]> => {
              if (batch.length === 0) return Effect.succeed([batch])
              state.lastEmitted = batch[batch.length - 1]!.cursor
              return Effect.as(Metric.update(journalEntriesRead, batch.length), [batch] as const)
            }
            /** Undecodable entries, and the first entry after a cursor. */
            const rareCases = (batch: Array<JournalEntry>) =>
              Effect.gen(function*() {
                for (const failure of decoder.failures.splice(0)) {
                  yield* logThrottled("Warning", "journal.undecodable-entry", "journal entry could not be decoded", {
                    error: String(failure)
                  })
                }
                if (expectCursor !== undefined && batch.length > 0) {
                  const cursor = expectCursor
                  expectCursor = undefined
                  if (sameEntry(batch[0]!.cursor, cursor)) batch.shift()
                  else yield* cursorLost(cursor, "journalctl positioned at a different entry")
                }
                return yield* emitted(batch)
              })
            const entries = handle.stdout.pipe(
              // Read ahead (bounded): journalctl keeps writing while we parse, instead of the two
              // taking turns on a 64 KiB pipe.
              Stream.buffer({ capacity: readAheadChunks }),
              Stream.mapError((cause) =>
                new JournalctlError({ reason: `reading journalctl: ${cause.message}`, stderr, cursorRejected: false })
              ),
              // Everything read ahead is decoded at once, as one array of entries: the stages below
              // (and the client's batches) work per array, so their cost is shared by more entries
              // when journalctl writes faster than we read (4 KiB per write without stdbuf).
              Stream.mapArrayEffect((chunks) => {
                const batch: Array<JournalEntry> = []
                for (const chunk of chunks) decoder.push(chunk, batch)
                return decoder.failures.length > 0 || (expectCursor !== undefined && batch.length > 0)
                  ? rareCases(batch)
                  : emitted(batch)
              }),
              Stream.filter((batch): batch is [JournalEntry, ...Array<JournalEntry>] => batch.length > 0),
              Stream.flattenArray
            )
            const exit = Stream.fromEffect(
              Effect.gen(function*() {
                const code = yield* handle.exitCode.pipe(Effect.option)
                yield* Effect.yieldNow // let the stderr reader catch up
                const exitCode = Option.getOrUndefined(code)
                if (!follow && exitCode === 0) return
                const cursorRejected = /seek to cursor/i.test(stderr)
                return yield* new JournalctlError({
                  reason: exitCode === undefined ? "journalctl was killed" : `journalctl exited with code ${exitCode}`,
                  stderr: stderr.trim(),
                  cursorRejected
                })
              })
            ).pipe(Stream.drain)
            return Stream.concat(entries, exit)
          }))

        const restartSchedule = Schedule.min([
          Schedule.exponential(options.restartBaseDelay ?? 200, 2),
          Schedule.spaced(options.restartMaxDelay ?? 30_000)
        ]).pipe(Schedule.jittered)

        const follow = (start: StartPosition): Stream.Stream<JournalEntry> => {
          const state: RunState = { start, lastEmitted: undefined }
          return Stream.suspend(() => {
            const absolute = state.lastEmitted !== undefined || state.start._tag === "Oldest" ||
              state.start._tag === "AfterCursor"
            // catch up (journalctl exits at the end, code 0), then follow from where it stopped
            return absolute ? Stream.concat(run(state, false), Stream.suspend(() => run(state, true))) : run(state, true)
          }).pipe(
            Stream.tapError((error) =>
              Effect.gen(function*() {
                yield* Metric.update(journalctlRestarts, 1)
                if (error.cursorRejected && state.lastEmitted === undefined && state.start._tag === "AfterCursor") {
                  yield* cursorLost(state.start.cursor, error.stderr)
                  state.start = StartPosition.oldest
                }
                yield* logThrottled("Warning", "journal.journalctl-restart", "journalctl stopped; restarting", {
                  reason: error.reason,
                  stderr: error.stderr
                })
              })
            ),
            Stream.retry(restartSchedule),
            Stream.orDie // unreachable: the schedule never ends
          )
        }

        const read = (start: StartPosition) => run({ start, lastEmitted: undefined }, false)

        return JournalSource.of({ follow, read })
      })
    )

  /** Follows the local system journal with upstream's match (SYSLOG_IDENTIFIER=kernel). */
  static readonly layer = JournalSource.layerWith(defaultJournalOptions)
}
