/** `droptailer server` — placeholder until its issue lands. */
import { Console } from "effect"
import { Command } from "effect/cli"

export const serverCommand = Command.make("server", {}, () => Console.error("droptailer server: not implemented yet")).pipe(
  Command.withDescription("server")
)
