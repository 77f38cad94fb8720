/** Setting shapes shared by the client's and the server's transport configuration. */
import { Config, Schema } from "effect"

/** A whole number > 0 from the environment variable `name`, or `fallback` when it is unset. */
export const positiveInt = (name: string, fallback: number): Config.Config<number> =>
  Config.schema(Schema.Int.check(Schema.isGreaterThan(0)), name).pipe(Config.withDefault(fallback))
