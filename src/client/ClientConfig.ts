/**
 * The client's settings, from the environment (Effect `Config`), each with a default, validated at
 * start-up: a bad value fails with an error that names the variable and says what is wrong.
 *
 * | variable                          | default                                              |
 * |-----------------------------------|------------------------------------------------------|
 * | DROPTAILER_PREFIXES_OF_DROPS      | `nftables-metal-dropped: ,nftables-firewall-dropped: ` |
 * | DROPTAILER_PREFIXES_OF_ACCEPTS    | `nftables-metal-accepted: ,nftables-firewall-accepted: ` |
 * | DROPTAILER_STATE_DIRECTORY        | `/var/lib/droptailer` (the journal checkpoint)       |
 * | DROPTAILER_STDOUT                 | `false` (print events instead of shipping; = --stdout) |
 * | DROPTAILER_START                  | `tail:100` — without a checkpoint: `tail:N` (last N entries, as upstream), `new`, `oldest` |
 * | DROPTAILER_JOURNAL_MATCH          | `SYSLOG_IDENTIFIER=kernel` — journalctl matches, space-separated (`+` = OR); empty: all entries |
 * | DROPTAILER_JOURNAL_DIRECTORY      | unset (the system journal) — `journalctl --directory` |
 * | DROPTAILER_JOURNAL_FILES          | unset — comma-separated `journalctl --file` paths/globs |
 * | DROPTAILER_JOURNAL_NAMESPACE      | unset — `journalctl --namespace`                     |
 * | DROPTAILER_JOURNALCTL             | `journalctl` — the executable                        |
 * | DROPTAILER_BATCH_SIZE             | `500` — most entries per batch (a batch is what was read since the last one started) |
 * | DROPTAILER_IN_FLIGHT              | `4` batches being delivered at once                  |
 * | DROPTAILER_CHECKPOINT_INTERVAL_MS | `500` — checkpoint writes at most this often         |
 */
import { Config, Effect, Option, Schema } from "effect"
import { defaultAcceptPrefixes, defaultDropPrefixes, parsePrefixList, type Prefixes } from "../domain/Parser.ts"
import { defaultStateDirectory } from "../journal/CheckpointStore.ts"
import type { JournalOptions, StartPosition } from "../journal/JournalSource.ts"

export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  variable: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `${this.variable}: ${this.problem}`
  }
}

export interface ClientConfig {
  readonly prefixes: Prefixes
  readonly stateDirectory: string
  readonly stdout: boolean
  readonly start: StartPosition
  readonly journal: JournalOptions
  readonly batchSize: number
  readonly inFlight: number
  readonly checkpointIntervalMillis: number
}

/** `tail:N`, `new`, `oldest` → a start position; `undefined` when it is none of them. */
export const parseStart = (value: string): StartPosition | undefined => {
  const text = value.trim()
  if (text === "new") return { _tag: "New" }
  if (text === "oldest" || text === "all") return { _tag: "Oldest" }
  const tail = /^tail(?::(\d{1,9}))?$/.exec(text)
  if (tail !== null) return { _tag: "Tail", lines: tail[1] === undefined ? 100 : Number(tail[1]) }
  return undefined
}

const matchPattern = /^(?:\+|[A-Z0-9_]+=.*)$/

/** Space-separated journalctl matches; `undefined` when one is not `FIELD=value` or `+`. */
export const parseMatches = (value: string): Array<string> | string => {
  const matches = value.trim().split(/\s+/).filter((m) => m.length > 0)
  const bad = matches.find((m) => !matchPattern.test(m))
  return bad === undefined ? matches : bad
}

const invalid = (variable: string, problem: string) => new ConfigInvalid({ variable, problem })

const string = (name: string, fallback: string) =>
  Config.String(name).pipe(Config.withDefault(fallback))
const optionalString = (name: string) => Config.option(Config.String(name))
const positiveInt = (name: string, fallback: number) =>
  Effect.gen(function*() {
    const text = yield* string(name, String(fallback)).pipe(
      Effect.mapError((e) => invalid(name, String(e)))
    )
    const n = Number(text.trim())
    if (!Number.isInteger(n) || n <= 0) return yield* invalid(name, `expected a positive whole number, got "${text}"`)
    return n
  })

const read = <A>(name: string, config: Config.Config<A>) =>
  config.pipe(Effect.mapError((e) => invalid(name, String(e))))

export const loadClientConfig: Effect.Effect<ClientConfig, ConfigInvalid> = Effect.gen(function*() {
  const drops = yield* read("DROPTAILER_PREFIXES_OF_DROPS", string("DROPTAILER_PREFIXES_OF_DROPS", defaultDropPrefixes.join(",")))
  const accepts = yield* read(
    "DROPTAILER_PREFIXES_OF_ACCEPTS",
    string("DROPTAILER_PREFIXES_OF_ACCEPTS", defaultAcceptPrefixes.join(","))
  )
  const prefixes: Prefixes = { drop: parsePrefixList(drops), accept: parsePrefixList(accepts) }
  if (prefixes.drop.length + prefixes.accept.length === 0) {
    return yield* invalid("DROPTAILER_PREFIXES_OF_DROPS", "no prefixes left for drops or accepts")
  }

  const stateDirectory = yield* read("DROPTAILER_STATE_DIRECTORY", string("DROPTAILER_STATE_DIRECTORY", defaultStateDirectory))
  if (stateDirectory.trim() === "") return yield* invalid("DROPTAILER_STATE_DIRECTORY", "must not be empty")

  const stdoutText = yield* read("DROPTAILER_STDOUT", string("DROPTAILER_STDOUT", "false"))
  const stdoutValue = stdoutText.trim().toLowerCase()
  if (!["true", "false", "1", "0", "yes", "no", ""].includes(stdoutValue)) {
    return yield* invalid("DROPTAILER_STDOUT", `expected true or false, got "${stdoutText}"`)
  }
  const stdout = ["true", "1", "yes"].includes(stdoutValue)

  const startText = yield* read("DROPTAILER_START", string("DROPTAILER_START", "tail:100"))
  const start = parseStart(startText)
  if (start === undefined) {
    return yield* invalid("DROPTAILER_START", `expected tail:N (last N entries), new or oldest, got "${startText}"`)
  }

  const matchText = yield* read("DROPTAILER_JOURNAL_MATCH", string("DROPTAILER_JOURNAL_MATCH", "SYSLOG_IDENTIFIER=kernel"))
  const matches = parseMatches(matchText)
  if (typeof matches === "string") {
    return yield* invalid("DROPTAILER_JOURNAL_MATCH", `"${matches}" is not a journal match (FIELD=value, or + between groups)`)
  }

  const directory = yield* read("DROPTAILER_JOURNAL_DIRECTORY", optionalString("DROPTAILER_JOURNAL_DIRECTORY"))
  const filesText = yield* read("DROPTAILER_JOURNAL_FILES", optionalString("DROPTAILER_JOURNAL_FILES"))
  const namespace = yield* read("DROPTAILER_JOURNAL_NAMESPACE", optionalString("DROPTAILER_JOURNAL_NAMESPACE"))
  const journalctl = yield* read("DROPTAILER_JOURNALCTL", string("DROPTAILER_JOURNALCTL", "journalctl"))
  const files = Option.map(filesText, (t) => t.split(",").map((f) => f.trim()).filter((f) => f.length > 0))
  if (Option.isSome(directory) && Option.isSome(files)) {
    return yield* invalid("DROPTAILER_JOURNAL_FILES", "set either DROPTAILER_JOURNAL_DIRECTORY or DROPTAILER_JOURNAL_FILES, not both")
  }

  const journal: JournalOptions = {
    matches,
    directory: Option.getOrUndefined(Option.filter(directory, (d) => d.trim() !== "")),
    files: Option.getOrUndefined(files),
    namespace: Option.getOrUndefined(Option.filter(namespace, (n) => n.trim() !== "")),
    journalctl
  }

  return {
    prefixes,
    stateDirectory,
    stdout,
    start,
    journal,
    batchSize: yield* positiveInt("DROPTAILER_BATCH_SIZE", 500),
    inFlight: yield* positiveInt("DROPTAILER_IN_FLIGHT", 4),
    checkpointIntervalMillis: yield* positiveInt("DROPTAILER_CHECKPOINT_INTERVAL_MS", 500)
  }
})
