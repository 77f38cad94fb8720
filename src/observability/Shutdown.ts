/**
 * Stopping on SIGTERM / SIGINT is a normal end, not a failure. `NodeRuntime.runMain` interrupts the
 * main fiber on those signals — which runs every finalizer: flush in-flight batches, save the
 * checkpoint, drain the gRPC server — and then exits 130 (its default teardown for an interrupted
 * fiber). A Kubernetes pod or a systemd unit that is stopped should exit 0.
 *
 * `exitCleanlyOnInterrupt(command)` leaves the interruption and the finalizers as they are; once the
 * command has ended by interruption alone (its finalizers done), it makes the process exit 0.
 * Failures and defects keep their exit codes.
 *
 * (The interruption cannot be turned into a success inside the command: the main fiber stays
 * interrupted. The exit code is set in an `exit` listener, which Node runs inside `process.exit`
 * before the code is final. The cleaner place would be a `teardown` for `runMain` in bin.ts.)
 */
import { Cause, Effect, Exit } from "effect"

let stoppedCleanly = false

const onExit = (): void => {
  if (stoppedCleanly) process.exitCode = 0
}

export const exitCleanlyOnInterrupt = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.onExit(effect, (exit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
      ? Effect.andThen(
        Effect.sync(() => {
          if (!stoppedCleanly) process.once("exit", onExit)
          stoppedCleanly = true
        }),
        Effect.logInfo("stopped")
      )
      : Effect.void)
