import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { formatTimestamp, parseTimestamp, TimestampMicros } from "../../src/domain/DropEvent.ts"

describe("timestamps", () => {
  it("format journal realtime microseconds as RFC 3339 UTC with six digits", () => {
    expect(formatTimestamp(1795790134013717)).toBe("2026-11-27T14:35:34.013717Z")
    expect(formatTimestamp(1795790134000000)).toBe("2026-11-27T14:35:34.000000Z")
  })

  it("parse back what they format", () => {
    expect(parseTimestamp("2026-11-27T14:35:34.013717Z")).toBe(1795790134013717)
    expect(parseTimestamp("2026-11-27T14:35:34Z")).toBe(1795790134000000)
    expect(parseTimestamp("yesterday")).toBeUndefined()
  })

  it.effect("reject a non-timestamp when decoding", () =>
    Effect.gen(function*() {
      const result = yield* Schema.decodeUnknownEffect(TimestampMicros)("not a time").pipe(Effect.flip)
      expect(result.message).toContain("RFC 3339")
    }))
})
