/**
 * The server's stdout lines. CONTRACT STUB — the domain work fills these in.
 */
import { type DropEvent, encodeDropEventJson } from "./DropEvent.ts"

/** One JSON object per line, the DESIGN.md "Output" shape (also what `droptailer parse` prints). */
export const formatJsonLine = (event: DropEvent): string => JSON.stringify(encodeDropEventJson(event))

/** The Go server's line, byte for byte: `<Go time.String() of the second> <sorted JSON of fields + timestamp>`. */
export const formatUpstreamLine = (event: DropEvent): string => JSON.stringify(event.fields)

export const OutputFormat = ["json", "upstream"] as const
export type OutputFormat = (typeof OutputFormat)[number]
