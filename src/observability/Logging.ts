/**
 * Logs go to stderr — stdout carries the event lines that `stern` and `kubectl logs` show.
 * `DROPTAILER_LOG_FORMAT`: `json` (one object per line, for containers), `pretty` (for a terminal),
 * or `auto` (default: pretty when stderr is a terminal, JSON otherwise).
 * `DROPTAILER_LOG_LEVEL`: trace, debug, info (default), warn (or warning), error, fatal, none — in
 * any case (`WARN`, `Warn`).
 */
import { Config, Effect, Layer, Logger, References, Runtime, Schema } from "effect"
import type { LogLevel as Level } from "effect"

export const LogFormat = Config.Literals(["auto", "json", "pretty"], "DROPTAILER_LOG_FORMAT").pipe(
  Config.withDefault("auto" as const)
)

const levels: Record<string, Level.LogLevel> = {
  all: "All",
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None",
  off: "None"
}
const levelKey = (value: string): string => value.trim().toLowerCase()

const LogLevelString = Schema.String.check(
  Schema.makeFilter((value: string) =>
    Object.hasOwn(levels, levelKey(value)) || "expected trace, debug, info, warn, error, fatal or none"
  )
)

export const LogLevel: Config.Config<Level.LogLevel> = Config.schema(LogLevelString, "DROPTAILER_LOG_LEVEL").pipe(
  Config.withDefault("info"),
  Config.map((value) => levels[levelKey(value)]!)
)

/**
 * The logging settings are invalid. Logging is what could not be set up, so the reason was written
 * to stderr directly (runMain would report it on stdout, which carries events).
 */
export class LoggingConfigInvalid extends Error {
  override readonly [Runtime.errorReported] = false
}

export const LoggingLive: Layer.Layer<never, LoggingConfigInvalid> = Layer.unwrap(
  Effect.gen(function*() {
    const format = yield* LogFormat
    const level = yield* LogLevel
    const pretty = format === "pretty" || (format === "auto" && process.stderr.isTTY === true)
    const logger = pretty ? Logger.consolePretty() : Logger.withConsoleError(Logger.formatJson)
    return Layer.mergeAll(
      Logger.layer([logger]),
      Layer.succeed(Logger.LogToStderr, true),
      Layer.succeed(References.MinimumLogLevel, level)
    )
  }).pipe(
    Effect.catch((error) =>
      Effect.andThen(
        Effect.sync(() => process.stderr.write(`droptailer: invalid logging settings: ${error.message}\n`)),
        Effect.fail(new LoggingConfigInvalid(error.message))
      )
    )
  )
)

/** Says "stopped" when a command ends by SIGTERM/SIGINT (its finalizers have run by then). */
export const logStopped = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.onInterrupt(effect, () => Effect.logInfo("stopped"))
