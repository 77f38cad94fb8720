/**
 * Logs go to stderr — stdout carries the event lines that `stern` and `kubectl logs` show.
 * `DROPTAILER_LOG_FORMAT`: `json` (one object per line, for containers), `pretty` (for a terminal),
 * or `auto` (default: pretty when stderr is a terminal, JSON otherwise).
 * `DROPTAILER_LOG_LEVEL`: trace, debug, info (default), warn, error, fatal, none.
 */
import { Config, Effect, Layer, Logger, References } from "effect"

export const LogFormat = Config.Literals(["auto", "json", "pretty"], "DROPTAILER_LOG_FORMAT").pipe(
  Config.withDefault("auto" as const)
)

export const LogLevel = Config.LogLevel("DROPTAILER_LOG_LEVEL").pipe(Config.withDefault("Info" as const))

export const LoggingLive: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(
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
  })
)
