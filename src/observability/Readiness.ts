/**
 * Readiness: parts of a process register a check (e.g. "informers synced"); `/readyz` is ready when
 * every check passes. Liveness (`/healthz`) only says the process serves HTTP.
 */
import { Context, Effect, Layer, Ref } from "effect"

export interface ReadinessCheck {
  readonly name: string
  readonly ready: Effect.Effect<boolean>
}

export interface ReadinessReport {
  readonly ready: boolean
  readonly checks: Record<string, boolean>
}

export class Readiness extends Context.Service<Readiness, {
  readonly register: (check: ReadinessCheck) => Effect.Effect<void>
  readonly report: Effect.Effect<ReadinessReport>
}>()("droptailer/observability/Readiness") {
  static readonly layer = Layer.effect(
    Readiness,
    Effect.gen(function*() {
      const checks = yield* Ref.make<ReadonlyArray<ReadinessCheck>>([])
      return Readiness.of({
        register: (check) => Ref.update(checks, (all) => [...all.filter((c) => c.name !== check.name), check]),
        report: Effect.gen(function*() {
          const all = yield* Ref.get(checks)
          const results: Record<string, boolean> = {}
          for (const check of all) results[check.name] = yield* check.ready
          return { ready: Object.values(results).every(Boolean), checks: results }
        })
      })
    })
  )
}
