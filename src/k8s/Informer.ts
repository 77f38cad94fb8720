/**
 * A generic informer: list + watch of one Kubernetes resource, keeping a local copy in sync.
 *
 * - List (paged, `limit=500` + `continue`) gives the objects and a resourceVersion; the store is
 *   replaced (objects gone since the last list are reported deleted).
 * - Watch from that resourceVersion with `allowWatchBookmarks=true`; every event and bookmark
 *   advances the resourceVersion, so a watch that ends (server timeout, cut connection) resumes
 *   where it stopped without a re-list.
 * - 410 Gone (an ERROR event with a Status of code 410, or an HTTP 410) means the history was
 *   compacted: re-list at once.
 * - Any other failure (connection refused, 5xx, timeouts): retry with capped exponential backoff
 *   with jitter; the backoff starts over after a watch that worked.
 * Objects are decoded into slim records by the spec; ones that do not decode are skipped (and
 * counted in the logs), never fatal.
 */
import { Effect, Metric, Result, Schedule, Schema, Stream } from "effect"
import { logThrottled } from "../observability/LogThrottle.ts"
import { KubeApiError, KubeClient } from "./KubeClient.ts"
import { apiErrors, informerObjects, informerRelists, informerSynced } from "./metrics.ts"
import { decodeWatchStatus, type Decoded, resourceVersionOf } from "./resources.ts"

export interface InformerSpec<A> {
  /** Resource name for logs and metrics, e.g. `pods`. */
  readonly resource: string
  /** Cluster-wide list path, e.g. `/api/v1/pods` or `/apis/apps/v1/replicasets`. */
  readonly path: string
  readonly decode: (raw: unknown) => Decoded<A> | undefined
  readonly key: (a: A) => string
  readonly onUpsert: (a: A) => void
  readonly onDelete: (a: A) => void
  /** Called after each (re-)list with the keys now present. */
  readonly onRelisted?: (keys: ReadonlySet<string>) => void
}

export interface InformerOptions {
  readonly backoffBaseMillis: number
  readonly backoffMaxMillis: number
  /** List page size (default 500). */
  readonly pageSize?: number
  /** Server-side watch timeout range in seconds (default 300..600, like client-go). */
  readonly watchTimeoutSeconds?: readonly [number, number]
}

export interface Informer {
  readonly resource: string
  /** True once the first list has been applied (stays true while later watches fail). */
  readonly hasSynced: () => boolean
  /** True while the informer is listed and watching; false while it is in backoff or re-listing. */
  readonly isWatching: () => boolean
  readonly size: () => number
  readonly resourceVersion: () => string | undefined
}

/** The watch history was compacted: re-list. */
export class WatchGone extends Schema.TaggedError<WatchGone>()("WatchGone", {
  resource: Schema.String,
  message: Schema.String
}) {}

/** A watch ERROR event other than 410. */
export class WatchFailed extends Schema.TaggedError<WatchFailed>()("WatchFailed", {
  resource: Schema.String,
  code: Schema.optionalKey(Schema.Number),
  message: Schema.String
}) {}

const ListJson = Schema.Struct({
  metadata: Schema.Struct({
    resourceVersion: Schema.optionalKey(Schema.String),
    continue: Schema.optionalKey(Schema.String)
  }),
  items: Schema.NullOr(Schema.Array(Schema.Unknown))
})
const decodeList = Schema.decodeUnknownEffect(ListJson)

export class ListDecodeError extends Schema.TaggedError<ListDecodeError>()("ListDecodeError", {
  resource: Schema.String,
  message: Schema.String
}) {}

/** The backoff between failed attempts: exponential from base, capped, with jitter. */
export const backoffSchedule = (options: Pick<InformerOptions, "backoffBaseMillis" | "backoffMaxMillis">) =>
  Schedule.min([
    Schedule.exponential(`${options.backoffBaseMillis} millis`),
    Schedule.spaced(`${options.backoffMaxMillis} millis`)
  ]).pipe(Schedule.jittered)

/**
 * Starts the informer in the current scope (its fiber stops when the scope closes) and returns
 * its handle at once; `hasSynced` turns true after the first list.
 */
export const runInformer = Effect.fn("Informer.run")(function*<A>(spec: InformerSpec<A>, options: InformerOptions) {
  const client = yield* KubeClient
  const store = new Map<string, { readonly rv: string; readonly value: A }>()
  let resourceVersion: string | undefined
  let synced = false
  let watching = false
  let needList = true
  const pageSize = options.pageSize ?? 500
  const [minTimeout, maxTimeout] = options.watchTimeoutSeconds ?? [300, 600]
  const attributes = { resource: spec.resource }
  const syncedGauge = Metric.withAttributes(informerSynced, attributes)
  const objectsGauge = Metric.withAttributes(informerObjects, attributes)

  const setWatching = (value: boolean) =>
    Effect.suspend(() => {
      watching = value
      return Metric.update(syncedGauge, value ? 1 : 0)
    })

  const upsert = (raw: unknown): void => {
    const decoded = spec.decode(raw)
    if (decoded === undefined) return
    const key = spec.key(decoded.value)
    store.set(key, { rv: decoded.resourceVersion, value: decoded.value })
    spec.onUpsert(decoded.value)
  }

  const remove = (raw: unknown): void => {
    const decoded = spec.decode(raw)
    if (decoded === undefined) return
    const key = spec.key(decoded.value)
    const existing = store.get(key)
    store.delete(key)
    spec.onDelete(existing?.value ?? decoded.value)
  }

  const relist = Effect.fn("Informer.relist")(function*(reason: string) {
    yield* setWatching(false)
    yield* Metric.update(Metric.withAttributes(informerRelists, { resource: spec.resource, reason }), 1)
    const items: Array<unknown> = []
    let listRv: string | undefined
    let token: string | undefined
    do {
      const query = `?limit=${pageSize}${token === undefined ? "" : `&continue=${encodeURIComponent(token)}`}`
      const page = yield* client.request({ method: "GET", path: `${spec.path}${query}`, timeoutMillis: 60_000 }).pipe(
        Effect.flatMap((body) => decodeList(body)),
        Effect.mapError((error) =>
          error instanceof KubeApiError ? error : new ListDecodeError({ resource: spec.resource, message: error.message })
        )
      )
      for (const item of page.items ?? []) items.push(item)
      listRv = listRv ?? page.metadata.resourceVersion
      token = page.metadata.continue || undefined
    } while (token !== undefined)
    // Apply: upsert what is there (changed only), report deleted what is gone.
    const seen = new Set<string>()
    for (const raw of items) {
      const decoded = spec.decode(raw)
      if (decoded === undefined) continue
      const key = spec.key(decoded.value)
      seen.add(key)
      const existing = store.get(key)
      if (existing !== undefined && existing.rv === decoded.resourceVersion && decoded.resourceVersion !== "") continue
      store.set(key, { rv: decoded.resourceVersion, value: decoded.value })
      spec.onUpsert(decoded.value)
    }
    for (const [key, entry] of store) {
      if (!seen.has(key)) {
        store.delete(key)
        spec.onDelete(entry.value)
      }
    }
    spec.onRelisted?.(seen)
    resourceVersion = listRv
    needList = false
    synced = true
    yield* Metric.update(objectsGauge, store.size)
    yield* Effect.logDebug(`listed ${spec.resource}`).pipe(
      Effect.annotateLogs({ resource: spec.resource, objects: store.size, resourceVersion: listRv ?? "" })
    )
  })

  const handle = (event: { readonly type: string; readonly object: unknown }): Effect.Effect<void, WatchGone | WatchFailed> => {
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
        upsert(event.object)
        break
      case "DELETED":
        remove(event.object)
        break
      case "BOOKMARK":
        break
      case "ERROR": {
        const status = decodeWatchStatus(event.object)
        const code = Result.isSuccess(status) ? status.success.code : undefined
        const message = Result.isSuccess(status) ? status.success.message ?? "" : "watch error"
        return code === 410
          ? Effect.fail(new WatchGone({ resource: spec.resource, message }))
          : Effect.fail(new WatchFailed({ resource: spec.resource, ...(code === undefined ? {} : { code }), message }))
      }
      default:
        return Effect.void
    }
    const rv = resourceVersionOf(event.object)
    if (rv !== undefined && rv !== "") resourceVersion = rv
    return Effect.void
  }

  const watchOnce = Effect.suspend(() => {
    const timeout = minTimeout + Math.floor(Math.random() * (maxTimeout - minTimeout + 1))
    const path = `${spec.path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=${timeout}` +
      `&resourceVersion=${encodeURIComponent(resourceVersion ?? "")}`
    return client.watch(path, (timeout + 30) * 1000).pipe(
      Stream.tap((event) => handle(event)),
      Stream.runDrain,
      Effect.mapError((error): KubeApiError | WatchGone | WatchFailed =>
        error instanceof KubeApiError && error.status === 410
          ? new WatchGone({ resource: spec.resource, message: error.message })
          : error
      ),
      Effect.ensuring(Effect.suspend(() => Metric.update(objectsGauge, store.size)))
    )
  })

  /** One session: (re-)list when needed, then watch until the stream ends. */
  const session = Effect.gen(function*() {
    if (needList) yield* relist(synced ? "resync" : "start")
    yield* setWatching(true)
    const started = Date.now()
    yield* watchOnce
    // A server that ends watches at once must not make us spin.
    if (Date.now() - started < 1000) yield* Effect.sleep(`${options.backoffBaseMillis} millis`)
  })

  const loop = session.pipe(
    Effect.catchTag("WatchGone", (gone) =>
      Effect.gen(function*() {
        needList = true
        yield* Effect.logInfo(`watch of ${spec.resource} expired (410 Gone): re-listing`).pipe(
          Effect.annotateLogs({ resource: spec.resource, message: gone.message })
        )
      })),
    Effect.tapError((error) =>
      Effect.gen(function*() {
        yield* setWatching(false)
        yield* Metric.update(
          Metric.withAttributes(apiErrors, { operation: needList ? "list" : "watch", resource: spec.resource }),
          1
        )
        yield* logThrottled(
          "Warning",
          `k8s.informer.${spec.resource}`,
          `Kubernetes ${needList ? "list" : "watch"} of ${spec.resource} failed; retrying with backoff`,
          { resource: spec.resource, error: error.message }
        )
      })
    ),
    Effect.retry(backoffSchedule(options)),
    Effect.forever
  )

  yield* Metric.update(syncedGauge, 0)
  yield* Effect.forkScoped(loop)

  const informer: Informer = {
    resource: spec.resource,
    hasSynced: () => synced,
    isWatching: () => watching,
    size: () => store.size,
    resourceVersion: () => resourceVersion
  }
  return informer
})
