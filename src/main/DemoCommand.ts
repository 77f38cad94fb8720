/**
 * `droptailer demo` (`npm start`): server and client in one process (./Demo.ts, loaded when the
 * command runs).
 */
import { Effect } from "effect"
import { Command } from "effect/cli"

export const demoCommand = Command.make(
  "demo",
  {},
  () => Effect.flatMap(Effect.promise(() => import("./Demo.ts")), (demo) => demo.runDemo)
).pipe(
  Command.withDescription(
    "Server and client in one process on this machine's journal (or stdin), over loopback gRPC with fresh certificates"
  )
)
