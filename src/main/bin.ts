/**
 * The `droptailer` command: one executable, a subcommand per role.
 */
// module by module: the package index would also load every other platform module (Redis, ...)
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect, Exit, Logger, Runtime } from "effect"
import { Command } from "effect/cli"
import { createRequire } from "node:module"
import { certsCommand } from "./CertsCommand.ts"
import { clientCommand } from "./ClientCommand.ts"
import { demoCommand } from "./DemoCommand.ts"
import { parseCommand } from "./ParseCommand.ts"
import { serverCommand } from "./ServerCommand.ts"

// the same relative path from src/main and dist/main
const packageJson = createRequire(import.meta.url)("../../package.json") as { readonly version: string }

const droptailer = Command.make("droptailer").pipe(
  Command.withDescription(
    "Firewall drop/accept logs from the systemd journal, shipped over gRPC with mutual TLS, enriched from Kubernetes"
  ),
  Command.withSubcommands([parseCommand, clientCommand, serverCommand, certsCommand, demoCommand])
)

/**
 * SIGTERM/SIGINT interrupt the main fiber, which runs every finalizer (flush, checkpoint, drain the
 * gRPC server); for a stopped pod or unit that is a normal end: exit 0, not runMain's 130.
 */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

const main = droptailer.pipe(
  Command.run({ version: packageJson.version }),
  // Whatever a command did not report itself is reported here, inside the context that sends logs
  // to stderr (runMain's own report would go to stdout, which carries the events).
  Effect.tapCause((cause) =>
    Cause.hasInterruptsOnly(cause) || !Runtime.getErrorReported(Cause.squash(cause))
      ? Effect.void
      : Effect.logError(cause)
  ),
  Effect.provide(NodeServices.layer),
  Effect.provideService(Logger.LogToStderr, true)
)

NodeRuntime.runMain(main, { disableErrorReporting: true, teardown })
