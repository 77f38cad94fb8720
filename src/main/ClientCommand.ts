/** `droptailer client` — placeholder until its issue lands. */
import { Console } from "effect"
import { Command } from "effect/cli"

export const clientCommand = Command.make("client", {}, () => Console.error("droptailer client: not implemented yet")).pipe(
  Command.withDescription("client")
)
