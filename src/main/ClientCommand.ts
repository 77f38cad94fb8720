/**
 * `droptailer client` — follows the journal and ships drop/accept events (ClientPipeline).
 * Settings come from the environment (src/client/ClientConfig.ts); `--stdout` (or
 * DROPTAILER_STDOUT=true) prints the events as JSON lines instead of shipping them.
 * Logs go to stderr: stdout carries only events.
 *
 * Only the command line is defined here; the client itself (./Client.ts) is loaded when the
 * command runs, so no command loads the modules of another (start-up time).
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"

export const clientCommand = Command.make(
  "client",
  {
    stdout: Flag.Boolean("stdout").pipe(
      Flag.withDescription("Print events as JSON lines on stdout instead of shipping them (also DROPTAILER_STDOUT=true)"),
      Flag.withDefault(false)
    )
  },
  ({ stdout }) => Effect.flatMap(Effect.promise(() => import("./Client.ts")), (client) => client.runClient(stdout))
).pipe(
  Command.withDescription("Follow the systemd journal and ship firewall drop/accept events to the droptailer server")
)
