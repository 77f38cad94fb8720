/** `droptailer certs` — placeholder until its issue lands. */
import { Console } from "effect"
import { Command } from "effect/cli"

export const certsCommand = Command.make("certs", {}, () => Console.error("droptailer certs: not implemented yet")).pipe(
  Command.withDescription("certs")
)
