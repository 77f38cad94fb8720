/**
 * What every long-running command does around its run: a failure (bad settings, a port taken) is
 * logged once on stderr and ends the process with exit 1; an interruption (SIGTERM) is logged as
 * "stopped"; logs go through LoggingLive.
 */
import { Effect, Runtime } from "effect"
import { LoggingLive, logStopped } from "../observability/Logging.ts"

/** Start-up failed and was already logged on stderr: exit 1 without a second report on stdout. */
export class StartupFailed extends Error {
  override readonly [Runtime.errorReported] = false
}

/** `run` as a command whose failures are logged as `<what>: <message>`. */
export const asCommand = (what: string) =>
<A, E extends { readonly message: string }, R>(run: Effect.Effect<A, E, R>) =>
  run.pipe(
    Effect.catch((error) =>
      Effect.andThen(Effect.logError(`${what}: ${error.message}`), Effect.fail(new StartupFailed(error.message)))
    ),
    logStopped,
    Effect.provide(LoggingLive)
  )
