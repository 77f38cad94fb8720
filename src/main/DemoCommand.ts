/** `droptailer demo` — placeholder until the demo lands. */
import { Console } from "effect"
import { Command } from "effect/cli"

export const demoCommand = Command.make("demo", {}, () => Console.error("droptailer demo: not implemented yet")).pipe(
  Command.withDescription("demo")
)
