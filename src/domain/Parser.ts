/**
 * Classification and parsing of netfilter log lines (pure, no I/O).
 * CONTRACT STUB — the domain work replaces the bodies; the exported names and types stay.
 */
import type { Action, DropEvent } from "./DropEvent.ts"

export interface Prefixes {
  readonly drop: ReadonlyArray<string>
  readonly accept: ReadonlyArray<string>
}

export const defaultDropPrefixes = ["nftables-metal-dropped: ", "nftables-firewall-dropped: "] as const
export const defaultAcceptPrefixes = ["nftables-metal-accepted: ", "nftables-firewall-accepted: "] as const
export const defaultPrefixes: Prefixes = { drop: defaultDropPrefixes, accept: defaultAcceptPrefixes }

/** The env format of DROPTAILER_PREFIXES_OF_DROPS / _ACCEPTS: comma-separated, as upstream. */
export const parsePrefixList = (value: string): Array<string> => value.split(",").filter((p) => p.length > 0)

export interface Classified {
  readonly action: Action
  /** The message after the prefix: the KEY=VALUE part. */
  readonly body: string
}

/** A drop prefix makes a drop, an accept prefix an accept; anything else is not ours (undefined). */
export const classify = (message: string, prefixes: Prefixes): Classified | undefined => {
  for (const p of prefixes.drop) if (message.startsWith(p)) return { action: "drop", body: message.slice(p.length) }
  for (const p of prefixes.accept) if (message.startsWith(p)) return { action: "accept", body: message.slice(p.length) }
  return undefined
}

/** Where a line came from: the journal entry's realtime clock (epoch µs) and host. */
export interface LineContext {
  readonly timestamp: number
  readonly host: string
}

export type ParseResult =
  | { readonly _tag: "Event"; readonly event: DropEvent }
  /** Not a drop or accept line (no prefix matched): not an error, the pipeline moves past it. */
  | { readonly _tag: "Skipped"; readonly reason: string }
  /** Had a prefix but could not be made into an event (binary garbage, oversized, ...). */
  | { readonly _tag: "Malformed"; readonly reason: string }

/** classify + parse one journal MESSAGE. Never throws. */
export const parseLine = (_message: string, _prefixes: Prefixes, _context: LineContext): ParseResult => ({
  _tag: "Malformed",
  reason: "parser not implemented yet"
})

/**
 * An event from an upstream-style wire map (KEY → VALUE, plus ACTION), for clients that send only
 * `fields` (the Go client). Never throws; missing keys leave fields absent.
 */
export const eventFromFields = (
  _fields: Readonly<Record<string, string>>,
  _context: LineContext
): DropEvent | undefined => undefined
