/**
 * The `droptailer` command: one executable, a subcommand per role.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Logger } from "effect"
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

droptailer.pipe(
  Command.run({ version: packageJson.version }),
  Effect.provide(NodeServices.layer),
  // stdout carries events (server, client --stdout, parse): whatever runMain reports goes to stderr
  Effect.provideService(Logger.LogToStderr, true),
  NodeRuntime.runMain
)
