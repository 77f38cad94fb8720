/**
 * The journal position the client has shipped up to: the cursor of the last entry whose event (or
 * whose skip) is acknowledged, saved atomically in the state directory.
 *
 * - `advance` only records the position in memory (cheap, called per batch, in journal order);
 *   a background fiber writes it at most every `flushIntervalMillis` when it moved, and the
 *   layer's finalizer writes the last one on shutdown.
 * - A write is a temp file, fsync, rename over the old file, fsync of the directory: after a crash
 *   the file holds either the old or the new position, never a torn one.
 * - A failed write is logged (throttled), counted and retried at the next tick; the pipeline goes on.
 */
import * as Fs from "node:fs/promises"
import * as NodePath from "node:path"
import { Clock, Context, Effect, Layer, Metric, Option, Schedule, Schema, Semaphore } from "effect"
import { logThrottled } from "../observability/LogThrottle.ts"
import { Cursor } from "./JournalEntry.ts"
import { checkpointLagSeconds, checkpointWriteErrors, checkpointWrites } from "./metrics.ts"

export interface CheckpointOptions {
  /** The state directory (DROPTAILER_STATE_DIRECTORY, default /var/lib/droptailer). */
  readonly directory: string
  /** How often a moved position is written at most. Default 500 ms. */
  readonly flushIntervalMillis?: number | undefined
}

export const defaultStateDirectory = "/var/lib/droptailer"
export const checkpointFileName = "journal-cursor.json"

export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  operation: Schema.String,
  path: Schema.String,
  message: Schema.String
}) {}

/** What the checkpoint file holds. */
export const CheckpointFile = Schema.Struct({
  cursor: Cursor,
  /** Realtime clock of the entry (epoch µs). */
  realtime: Schema.Number,
  savedAt: Schema.String
})
export type CheckpointFile = typeof CheckpointFile.Type

const decodeCheckpointFile = Schema.decodeUnknownResult(Schema.fromJsonString(CheckpointFile))

export interface Position {
  readonly cursor: Cursor
  readonly realtime: number
}

/** What was saved when the store started. */
export type Saved =
  | { readonly _tag: "None" }
  | { readonly _tag: "Saved"; readonly position: Position }
  /** A file exists but holds no valid cursor: the position is lost. */
  | { readonly _tag: "Corrupt"; readonly detail: string }

export class CheckpointStore extends Context.Service<CheckpointStore, {
  /** The position saved before this process started. */
  readonly saved: Saved
  /** Records that everything up to and including `position` is acknowledged (in journal order). */
  readonly advance: (position: Position) => Effect.Effect<void>
  /** The last advanced position (saved or not yet). */
  readonly current: Effect.Effect<Option.Option<Position>>
  /** Writes the current position now if it moved since the last write. */
  readonly flush: Effect.Effect<void, CheckpointError>
  readonly path: string
}>()("droptailer/journal/CheckpointStore") {
  static readonly layerWith = (options: CheckpointOptions) =>
    Layer.effect(
      CheckpointStore,
      Effect.gen(function*() {
        const directory = options.directory
        const path = NodePath.join(directory, checkpointFileName)
        const fail = (operation: string) => (cause: unknown) =>
          new CheckpointError({ operation, path, message: cause instanceof Error ? cause.message : String(cause) })

        yield* Effect.tryPromise({
          try: () => Fs.mkdir(directory, { recursive: true, mode: 0o700 }),
          catch: fail("create state directory")
        })
        const saved = yield* load(path)
        if (saved._tag === "Corrupt") {
          yield* Effect.logWarning("checkpoint file is unreadable; the journal position is lost").pipe(
            Effect.annotateLogs({ path, detail: saved.detail })
          )
        }

        let current: Position | undefined = saved._tag === "Saved" ? saved.position : undefined
        let written: Position | undefined = current

        const write = (position: Position) =>
          Effect.tryPromise({
            try: async () => {
              const body: CheckpointFile = { ...position, savedAt: new Date().toISOString() }
              const temp = `${path}.tmp-${process.pid}`
              const handle = await Fs.open(temp, "w", 0o600)
              try {
                await handle.writeFile(`${JSON.stringify(body)}\n`)
                await handle.sync()
              } finally {
                await handle.close()
              }
              await Fs.rename(temp, path)
              const dir = await Fs.open(directory, "r")
              try {
                await dir.sync()
              } finally {
                await dir.close()
              }
            },
            catch: fail("write checkpoint")
          })

        const lock = yield* Semaphore.make(1)
        const flush = Effect.suspend(() => {
          const position = current
          if (position === undefined || position === written) return Effect.void
          return write(position).pipe(
            Effect.tap(() =>
              Effect.sync(() => {
                written = position
              })
            ),
            Effect.tap(() => Metric.update(checkpointWrites, 1))
          )
        }).pipe(Semaphore.withPermit(lock))

        const updateLag = Effect.gen(function*() {
          if (current === undefined) return
          const now = yield* Clock.currentTimeMillis
          yield* Metric.update(checkpointLagSeconds, Math.max(0, (now * 1000 - current.realtime) / 1e6))
        })

        const tick = flush.pipe(
          Effect.catch((error) =>
            Metric.update(checkpointWriteErrors, 1).pipe(
              Effect.andThen(logThrottled("Error", "checkpoint.write", "cannot save the journal checkpoint", {
                path: error.path,
                error: error.message
              }))
            )
          ),
          Effect.andThen(updateLag)
        )
        yield* tick.pipe(
          Effect.repeat(Schedule.spaced(options.flushIntervalMillis ?? 500)),
          Effect.forkScoped
        )
        yield* Effect.addFinalizer(() =>
          flush.pipe(
            Effect.catch((error) => Effect.logError("cannot save the journal checkpoint at shutdown", error.message))
          )
        )

        return CheckpointStore.of({
          saved,
          path,
          advance: (position) =>
            Effect.sync(() => {
              current = position
            }),
          current: Effect.sync(() => Option.fromUndefinedOr(current)),
          flush
        })
      })
    )
}

const load = (path: string): Effect.Effect<Saved, CheckpointError> =>
  Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(error))),
    catch: (cause) =>
      new CheckpointError({ operation: "read checkpoint", path, message: cause instanceof Error ? cause.message : String(cause) })
  }).pipe(
    Effect.map((text): Saved => {
      if (text === undefined) return { _tag: "None" }
      const decoded = decodeCheckpointFile(text.trim())
      return decoded._tag === "Success"
        ? { _tag: "Saved", position: { cursor: decoded.success.cursor, realtime: decoded.success.realtime } }
        : { _tag: "Corrupt", detail: String(decoded.failure) }
    })
  )
