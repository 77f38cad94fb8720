/**
 * Rate-limited logging for repeated errors: a flood of bad input must not flood the logs.
 * Per key, at most `burst` lines per `windowMillis`; the first line after a window in which lines
 * were held back says how many were suppressed.
 */
import { Clock, Effect } from "effect"

interface Window {
  start: number
  logged: number
  suppressed: number
}

export interface ThrottleOptions {
  readonly burst?: number
  readonly windowMillis?: number
}

const windows = new Map<string, Window>()
const maxKeys = 10_000

export type ThrottledLevel = "Debug" | "Info" | "Warning" | "Error"

/**
 * Logs `message` at `level` unless lines with the same `key` already used up this window's budget.
 * Keys should name a kind of trouble (e.g. "grpc.invalid-argument"), not carry unbounded values.
 */
export const logThrottled = (
  level: ThrottledLevel,
  key: string,
  message: string,
  annotations: Record<string, unknown> = {},
  options: ThrottleOptions = {}
): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const burst = options.burst ?? 5
    const windowMillis = options.windowMillis ?? 10_000
    let window = windows.get(key)
    let suppressedBefore = 0
    if (window === undefined || now - window.start >= windowMillis) {
      suppressedBefore = window?.suppressed ?? 0
      if (window === undefined && windows.size >= maxKeys) windows.clear()
      window = { start: now, logged: 0, suppressed: 0 }
      windows.set(key, window)
    }
    if (window.logged >= burst) {
      window.suppressed++
      return Effect.void
    }
    window.logged++
    const all = suppressedBefore > 0 ? { ...annotations, suppressed: suppressedBefore } : annotations
    const log = level === "Debug"
      ? Effect.logDebug(message)
      : level === "Info"
      ? Effect.logInfo(message)
      : level === "Warning"
      ? Effect.logWarning(message)
      : Effect.logError(message)
    return log.pipe(Effect.annotateLogs({ key, ...all }))
  })
