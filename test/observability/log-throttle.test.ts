/**
 * Repeated errors are rate-limited: a flood of identical errors logs at most the burst per window,
 * and the first line of a later window says how many were suppressed. On the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, References } from "effect"
import { TestClock } from "effect/testing"
import { logThrottled } from "../../src/observability/LogThrottle.ts"

interface Captured {
  readonly message: string
  readonly level: string
  readonly annotations: Record<string, unknown>
}

/** Runs `body` with a logger that records every line (message, level, annotations). */
const capturing = <A, E, R>(lines: Array<Captured>, body: Effect.Effect<A, E, R>) =>
  body.pipe(
    Effect.provide(Logger.layer([
      Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message.join(" ") : String(options.message)
        lines.push({
          message,
          level: options.logLevel,
          annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
        })
      })
    ]))
  )

describe("logThrottled", () => {
  it.effect("logs at most the burst of a flood of 10,000 identical errors per window, then says how many were suppressed", () =>
    Effect.gen(function*() {
      const lines: Array<Captured> = []
      const key = `test.flood.${Math.random()}`
      const options = { burst: 5, windowMillis: 10_000 }
      yield* capturing(
        lines,
        Effect.gen(function*() {
          for (let i = 0; i < 10_000; i++) yield* logThrottled("Error", key, "cannot write", { n: i }, options)
          // still inside the window: nothing more
          yield* TestClock.adjust("9 seconds")
          for (let i = 0; i < 100; i++) yield* logThrottled("Error", key, "cannot write", {}, options)
        })
      )
      expect(lines).toHaveLength(5)
      expect(lines.every((l) => l.level === "Error" && l.message === "cannot write")).toBe(true)
      expect(lines.map((l) => l.annotations.n)).toEqual([0, 1, 2, 3, 4])
      expect(lines.every((l) => l.annotations.key === key && l.annotations.suppressed === undefined)).toBe(true)

      // the next window: its first line reports the 9,995 + 100 held back
      yield* TestClock.adjust("2 seconds")
      yield* capturing(lines, Effect.gen(function*() {
        for (let i = 0; i < 1000; i++) yield* logThrottled("Error", key, "cannot write", {}, options)
      }))
      expect(lines).toHaveLength(10)
      expect(lines[5]!.annotations.suppressed).toBe(10_000 - 5 + 100)
      expect(lines.slice(6).every((l) => l.annotations.suppressed === undefined)).toBe(true)

      // a quiet window after a busy one: the report counts only what that busy window held back
      yield* TestClock.adjust("10 seconds")
      yield* capturing(lines, logThrottled("Error", key, "cannot write", {}, options))
      expect(lines).toHaveLength(11)
      expect(lines[10]!.annotations.suppressed).toBe(1000 - 5)
    }))

  it.effect("keeps separate budgets per key and uses the defaults (5 per 10 s)", () =>
    Effect.gen(function*() {
      const lines: Array<Captured> = []
      const a = `test.a.${Math.random()}`
      const b = `test.b.${Math.random()}`
      yield* capturing(lines, Effect.gen(function*() {
        for (let i = 0; i < 50; i++) {
          yield* logThrottled("Warning", a, "a")
          yield* logThrottled("Warning", b, "b")
        }
      }))
      expect(lines.filter((l) => l.message === "a")).toHaveLength(5)
      expect(lines.filter((l) => l.message === "b")).toHaveLength(5)
      expect(lines.every((l) => l.level === "Warn")).toBe(true)
    }))
})
