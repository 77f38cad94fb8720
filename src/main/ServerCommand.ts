/**
 * `droptailer server`: receives events over gRPC with mutual TLS, enriches them from Kubernetes,
 * prints one line per event on stdout. The server itself (./Server.ts, with the Kubernetes client)
 * is loaded when the command runs, so the other commands start without it.
 */
import { Effect } from "effect"
import { Command } from "effect/cli"

export const serverCommand = Command.make(
  "server",
  {},
  () => Effect.flatMap(Effect.promise(() => import("./Server.ts")), (server) => server.runServer)
).pipe(
  Command.withDescription(
    "Receive events from droptailer clients over gRPC with mutual TLS, enrich them from Kubernetes, print one line per event"
  )
)
