/**
 * Settings of the Kubernetes side of the server, from `DROPTAILER_*` environment variables, each
 * with a default, validated at start-up with an error that names the variable.
 *
 * | variable                           | default | meaning                                          |
 * |------------------------------------|---------|--------------------------------------------------|
 * | DROPTAILER_KUBERNETES              | auto    | auto: use in-cluster config or KUBECONFIG when    |
 * |                                    |         | present; false: never; true: fail without one     |
 * | DROPTAILER_POD_GRACE_PERIOD        | 5m      | a deleted pod still resolves for older events     |
 * | DROPTAILER_KUBERNETES_BACKOFF_MAX  | 30s     | cap of the jittered re-list/re-watch backoff      |
 * | DROPTAILER_EVENTS                  | true    | post Kubernetes Events on pods                    |
 * | DROPTAILER_EVENTS_FOR_ACCEPTS      | false   | also post Events for accepted packets             |
 * | DROPTAILER_EVENTS_INTERVAL         | 2m      | repeats within it raise one Event's count         |
 * | DROPTAILER_EVENTS_FLUSH_INTERVAL   | 10s     | how often aggregated counts are PATCHed           |
 * | DROPTAILER_EVENTS_QPS              | 5       | API calls per second for Events (token bucket)    |
 * | DROPTAILER_EVENTS_BURST            | 20      | bucket size                                       |
 * | DROPTAILER_EVENTS_QUEUE_SIZE       | 10000   | Kinds of Event (pod, peer, port, protocol) pending at once; beyond that, drops of new kinds get no Event (counted) |
 *
 * Durations: `300ms`, `30s`, `5m`, `1h`, combinations like `2m30s`, or plain seconds (`120`).
 */
import { Config, Context, Effect, Layer, Option, Schema } from "effect"

export class KubeSettingsError extends Schema.TaggedError<KubeSettingsError>()("KubeSettingsError", {
  variable: Schema.String,
  message: Schema.String
}) {}

export type KubernetesMode = "auto" | "true" | "false"

export interface KubeSettingsShape {
  readonly mode: KubernetesMode
  readonly podGracePeriodMillis: number
  readonly backoffBaseMillis: number
  readonly backoffMaxMillis: number
  readonly events: boolean
  readonly eventsForAccepts: boolean
  readonly eventsIntervalMillis: number
  readonly eventsFlushMillis: number
  readonly eventsQps: number
  readonly eventsBurst: number
  readonly eventsQueueSize: number
}

export const defaultKubeSettings: KubeSettingsShape = {
  mode: "auto",
  podGracePeriodMillis: 5 * 60_000,
  backoffBaseMillis: 250,
  backoffMaxMillis: 30_000,
  events: true,
  eventsForAccepts: false,
  eventsIntervalMillis: 2 * 60_000,
  eventsFlushMillis: 10_000,
  eventsQps: 5,
  eventsBurst: 20,
  eventsQueueSize: 10_000
}

const unitMillis: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `2m30s` → 150000; `undefined` when the text is not a duration. */
export const parseDurationMillis = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y
  let total = 0
  let index = 0
  while (index < trimmed.length) {
    part.lastIndex = index
    const m = part.exec(trimmed)
    if (m === null) return undefined
    total += Number(m[1]) * unitMillis[m[2]!]!
    index = part.lastIndex
  }
  return trimmed.length === 0 ? undefined : total
}

const raw = (variable: string): Effect.Effect<string | undefined, KubeSettingsError> =>
  Config.option(Config.String(variable)).pipe(
    Effect.map((value) => Option.getOrUndefined(value)),
    Effect.mapError((e) => new KubeSettingsError({ variable, message: e.message }))
  )

const fail = (variable: string, value: string, expected: string) =>
  Effect.fail(new KubeSettingsError({ variable, message: `${variable}=${JSON.stringify(value)}: expected ${expected}` }))

const duration = (variable: string, fallback: number, minimum = 1) =>
  Effect.flatMap(raw(variable), (text) => {
    if (text === undefined || text.trim() === "") return Effect.succeed(fallback)
    const millis = parseDurationMillis(text)
    return millis === undefined || millis < minimum
      ? fail(variable, text, `a duration of at least ${minimum}ms like 30s, 5m or 2m30s`)
      : Effect.succeed(millis)
  })

const boolean = (variable: string, fallback: boolean) =>
  Effect.flatMap(raw(variable), (text) => {
    if (text === undefined || text.trim() === "") return Effect.succeed(fallback)
    const value = text.trim().toLowerCase()
    if (value === "true" || value === "1" || value === "yes") return Effect.succeed(true)
    if (value === "false" || value === "0" || value === "no") return Effect.succeed(false)
    return fail(variable, text, "true or false")
  })

const number = (variable: string, fallback: number, check: (n: number) => boolean, expected: string) =>
  Effect.flatMap(raw(variable), (text) => {
    if (text === undefined || text.trim() === "") return Effect.succeed(fallback)
    const value = Number(text.trim())
    return Number.isFinite(value) && check(value) ? Effect.succeed(value) : fail(variable, text, expected)
  })

const mode = Effect.flatMap(raw("DROPTAILER_KUBERNETES"), (text) => {
  const value = (text ?? "").trim().toLowerCase()
  if (value === "" || value === "auto") return Effect.succeed<KubernetesMode>("auto")
  if (value === "true" || value === "false") return Effect.succeed<KubernetesMode>(value)
  return fail("DROPTAILER_KUBERNETES", text ?? "", "auto, true or false")
})

/** Reads and validates the settings from the environment (the current ConfigProvider). */
export const loadKubeSettings: Effect.Effect<KubeSettingsShape, KubeSettingsError> = Effect.gen(function*() {
  const d = defaultKubeSettings
  return {
    mode: yield* mode,
    podGracePeriodMillis: yield* duration("DROPTAILER_POD_GRACE_PERIOD", d.podGracePeriodMillis, 0),
    backoffBaseMillis: d.backoffBaseMillis,
    backoffMaxMillis: yield* duration("DROPTAILER_KUBERNETES_BACKOFF_MAX", d.backoffMaxMillis, 100),
    events: yield* boolean("DROPTAILER_EVENTS", d.events),
    eventsForAccepts: yield* boolean("DROPTAILER_EVENTS_FOR_ACCEPTS", d.eventsForAccepts),
    eventsIntervalMillis: yield* duration("DROPTAILER_EVENTS_INTERVAL", d.eventsIntervalMillis, 1000),
    eventsFlushMillis: yield* duration("DROPTAILER_EVENTS_FLUSH_INTERVAL", d.eventsFlushMillis, 100),
    eventsQps: yield* number("DROPTAILER_EVENTS_QPS", d.eventsQps, (n) => n > 0, "a number above 0"),
    eventsBurst: yield* number(
      "DROPTAILER_EVENTS_BURST",
      d.eventsBurst,
      (n) => Number.isInteger(n) && n >= 1,
      "an integer of at least 1"
    ),
    eventsQueueSize: yield* number(
      "DROPTAILER_EVENTS_QUEUE_SIZE",
      d.eventsQueueSize,
      (n) => Number.isInteger(n) && n >= 1,
      "an integer of at least 1"
    )
  }
})

export class KubeSettings extends Context.Service<KubeSettings, KubeSettingsShape>()("droptailer/k8s/KubeSettings") {
  /** From the environment; fails with an error naming the variable. */
  static readonly layer: Layer.Layer<KubeSettings, KubeSettingsError> = Layer.effect(KubeSettings, loadKubeSettings)

  /** Defaults with overrides, for tests and embedding. */
  static readonly layerWith = (overrides: Partial<KubeSettingsShape> = {}): Layer.Layer<KubeSettings> =>
    Layer.succeed(KubeSettings, KubeSettings.of({ ...defaultKubeSettings, ...overrides }))
}
