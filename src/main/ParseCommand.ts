/**
 * `droptailer parse`: netfilter log lines on stdin → one JSON event per accepted line on stdout.
 *
 * Each input line is a raw kernel message or a `journalctl -o json` object (a leading `{`).
 * Lines that are not drops/accepts, or cannot be parsed, are reported on stderr with their 1-based
 * line number and the reason; the command goes on and exits 0 at the end of input.
 *
 * stdin is split by hand (readline costs 20-40%) and stdout is written in one batch per input
 * chunk, waiting for `drain` when the pipe is full, so a slow reader slows us instead of filling
 * memory.
 */
import { once } from "node:events"
import { hostname } from "node:os"
import { Config, Effect, Result, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { formatLine, OutputFormat } from "../domain/Format.ts"
import { decodeJournalJsonEntry } from "../domain/JournalEntry.ts"
import {
  defaultAcceptPrefixes,
  defaultDropPrefixes,
  type LineContext,
  maxLineLength,
  parseLine,
  parsePrefixList,
  type Prefixes
} from "../domain/Parser.ts"

export class ParseIoError extends Schema.TaggedError<ParseIoError>()("ParseIoError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

/** Bytes kept for one line before it is reported as too long (UTF-8 is at most 4 bytes/char). */
const maxLineBytes = maxLineLength * 4

export interface ParseOptions {
  readonly prefixes: Prefixes
  readonly format: OutputFormat
  readonly host: string
  readonly now: () => number
}

/** One input line (without its newline) → the output line, or the stderr report. */
export const processLine = (
  text: string,
  lineNumber: number,
  options: ParseOptions
): { readonly out?: string; readonly err?: string } => {
  let message = text
  let context: LineContext
  if (text.charCodeAt(0) === 123 /* { */) {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (cause) {
      return { err: `line ${lineNumber}: malformed: invalid journal JSON (${(cause as Error).message})` }
    }
    const decoded = decodeJournalJsonEntry(json)
    if (Result.isFailure(decoded)) {
      return { err: `line ${lineNumber}: malformed: not a journal entry: ${String(decoded.failure).replace(/\s+/g, " ")}` }
    }
    const entry = decoded.success
    message = entry.MESSAGE
    context = { timestamp: entry.__REALTIME_TIMESTAMP, host: entry._HOSTNAME ?? options.host }
  } else {
    if (text.length > 0 && text.charCodeAt(text.length - 1) === 13) message = text.slice(0, -1) // CRLF input
    context = { timestamp: options.now(), host: options.host }
  }
  const result = parseLine(message, options.prefixes, context)
  switch (result._tag) {
    case "Event":
      return { out: formatLine(options.format, result.event) }
    case "Skipped":
      return { err: `line ${lineNumber}: skipped: ${result.reason}` }
    case "Malformed":
      return { err: `line ${lineNumber}: malformed: ${result.reason}` }
  }
}

const write = async (stream: NodeJS.WritableStream, text: string): Promise<void> => {
  if (text.length === 0) return
  if (!stream.write(text)) await once(stream, "drain")
}

/** The stdin → stdout loop over Node streams. Resolves at end of input. */
export const runParse = async (
  input: AsyncIterable<Buffer>,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
  options: ParseOptions
): Promise<void> => {
  let pending: Buffer | undefined // the incomplete last line of the previous chunk
  let discarding = false // inside an over-long line: drop bytes until its newline
  let lineNumber = 0
  let out = ""
  let err = ""
  const handle = (text: string): void => {
    const r = processLine(text, ++lineNumber, options)
    if (r.out !== undefined) out += `${r.out}\n`
    if (r.err !== undefined) err += `${r.err}\n`
  }
  const tooLong = (): void => {
    err += `line ${++lineNumber}: malformed: line too long (over ${maxLineBytes} bytes)\n`
  }
  for await (const chunk of input) {
    let start = 0
    let nl = chunk.indexOf(10)
    while (nl >= 0) {
      if (discarding) {
        discarding = false
      } else if (pending !== undefined) {
        const line = Buffer.concat([pending, chunk.subarray(start, nl)])
        pending = undefined
        if (line.length > maxLineBytes) tooLong()
        else handle(line.toString("utf8"))
      } else if (nl - start > maxLineBytes) {
        tooLong()
      } else {
        handle(chunk.toString("utf8", start, nl))
      }
      start = nl + 1
      nl = chunk.indexOf(10, start)
    }
    if (start < chunk.length && !discarding) {
      const rest = chunk.subarray(start)
      pending = pending === undefined ? Buffer.from(rest) : Buffer.concat([pending, rest])
      if (pending.length > maxLineBytes) {
        // keep memory bounded: report now, skip the rest of this line
        pending = undefined
        discarding = true
        tooLong()
      }
    }
    if (err.length > 0) {
      await write(stderr, err)
      err = ""
    }
    if (out.length > 0) {
      await write(stdout, out)
      out = ""
    }
  }
  if (pending !== undefined && pending.length > 0 && !discarding) handle(pending.toString("utf8"))
  await write(stderr, err)
  await write(stdout, out)
}

/** `--drop-prefix a --drop-prefix b,c` → [a, b, c]; none given → the environment's list. */
const prefixesFrom = (flags: ReadonlyArray<string>, fromEnv: string): Array<string> =>
  flags.length > 0 ? flags.flatMap(parsePrefixList) : parsePrefixList(fromEnv)

const prefixConfig = Config.all({
  drop: Config.String("DROPTAILER_PREFIXES_OF_DROPS").pipe(Config.withDefault(defaultDropPrefixes.join(","))),
  accept: Config.String("DROPTAILER_PREFIXES_OF_ACCEPTS").pipe(Config.withDefault(defaultAcceptPrefixes.join(",")))
})

const isEpipe = (cause: unknown): boolean => (cause as { code?: unknown } | undefined)?.code === "EPIPE"

export const parseCommand = Command.make(
  "parse",
  {
    format: Flag.Literals("format", OutputFormat).pipe(
      Flag.withDescription("json: the DESIGN.md event shape; upstream: the Go server's line"),
      Flag.withDefault("json" as OutputFormat)
    ),
    dropPrefix: Flag.String("drop-prefix").pipe(
      Flag.withDescription("Prefix of drop lines (repeatable or comma-separated; overrides DROPTAILER_PREFIXES_OF_DROPS)"),
      Flag.atLeast(0)
    ),
    acceptPrefix: Flag.String("accept-prefix").pipe(
      Flag.withDescription(
        "Prefix of accept lines (repeatable or comma-separated; overrides DROPTAILER_PREFIXES_OF_ACCEPTS)"
      ),
      Flag.atLeast(0)
    )
  },
  Effect.fn("parseCommand")(function*({ acceptPrefix, dropPrefix, format }) {
    const env = yield* prefixConfig
    const prefixes: Prefixes = {
      drop: prefixesFrom(dropPrefix, env.drop),
      accept: prefixesFrom(acceptPrefix, env.accept)
    }
    const host = hostname()
    yield* Effect.tryPromise({
      try: () =>
        runParse(process.stdin, process.stdout, process.stderr, {
          prefixes,
          format,
          host,
          now: () => Date.now() * 1000
        }),
      catch: (cause) => new ParseIoError({ message: `droptailer parse: ${String(cause)}`, cause })
    }).pipe(
      // the reader went away (`| head`): that is the end, not an error
      Effect.catchIf((error) => isEpipe(error.cause), () => Effect.void)
    )
  })
).pipe(
  Command.withDescription(
    "Parse netfilter log lines (raw, or `journalctl -o json`) from stdin into one JSON event per line on stdout"
  )
)
