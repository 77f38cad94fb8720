/**
 * The fields of a `journalctl -o json` entry that a drop line needs, decoded at the boundary.
 *
 * journalctl prints MESSAGE as a string when it is valid UTF-8 without control characters, and
 * as an array of byte numbers otherwise; a field logged twice becomes an array of such values.
 * `__REALTIME_TIMESTAMP` is epoch microseconds as a decimal string.
 */
import { Schema, SchemaGetter } from "effect"

const Byte = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 }))
const MessageBytes = Schema.Array(Byte)

const utf8 = new TextDecoder("utf-8", { fatal: false })

/** Bytes as UTF-8, invalid sequences as U+FFFD (which the parser then reports as malformed). */
export const decodeUtf8Bytes = (bytes: ReadonlyArray<number>): string => utf8.decode(Uint8Array.from(bytes))

/** MESSAGE, as a string either way. */
export const JournalMessage = Schema.Union([Schema.String, MessageBytes]).pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transform((m: string | ReadonlyArray<number>) => (typeof m === "string" ? m : decodeUtf8Bytes(m))),
    encode: SchemaGetter.transform((s: string) => s)
  })
)

const Micros = Schema.String.check(Schema.isPattern(/^\d{1,17}$/)).pipe(
  Schema.decodeTo(Schema.Int, {
    decode: SchemaGetter.transform((s: string) => Number(s)),
    encode: SchemaGetter.transform((n: number) => String(n))
  })
)

export const JournalJsonEntry = Schema.Struct({
  MESSAGE: JournalMessage,
  __REALTIME_TIMESTAMP: Micros,
  _HOSTNAME: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "JournalJsonEntry" })
export type JournalJsonEntry = typeof JournalJsonEntry.Type

export const decodeJournalJsonEntry = Schema.decodeUnknownResult(JournalJsonEntry)
