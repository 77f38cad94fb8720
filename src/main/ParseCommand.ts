/** `droptailer parse` — placeholder until its issue lands. */
import { Console } from "effect"
import { Command } from "effect/cli"

export const parseCommand = Command.make("parse", {}, () => Console.error("droptailer parse: not implemented yet")).pipe(
  Command.withDescription("parse")
)
