/**
 * The connection to the Kubernetes API server: plain JSON requests and watch streams over
 * node:http/https, with the address, TLS material and credentials from @kubernetes/client-node's
 * `KubeConfig` (in-cluster service account or KUBECONFIG; tokens are re-read per request, so
 * rotated service-account tokens keep working).
 *
 * A thin client of our own rather than client-node's generated APIs: the informers need the raw
 * list `resourceVersion`, the watch `ERROR`/410 events and bookmarks, and the Events sink needs
 * merge-patch content types — and every object is decoded into a slim record right away.
 */
import { KubeConfig } from "@kubernetes/client-node"
import { Cause, Config, Context, Effect, Layer, Option, Queue, Schema, Stream } from "effect"
import { existsSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import { delimiter } from "node:path"
import { KubeSettingsError } from "./KubeSettings.ts"

export class KubeApiError extends Schema.TaggedError<KubeApiError>()("KubeApiError", {
  method: Schema.String,
  path: Schema.String,
  /** HTTP status when the server answered; absent for connection errors and timeouts. */
  status: Schema.optionalKey(Schema.Int),
  /** The Status `reason` (e.g. `Expired`, `NotFound`, `AlreadyExists`) or the socket error code. */
  reason: Schema.String,
  message: Schema.String
}) {}

/** One line of a watch stream, decoded only as far as its type. */
export interface WatchEvent {
  readonly type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR"
  readonly object: unknown
}

export interface RequestOptions {
  readonly method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE"
  readonly path: string
  readonly body?: unknown
  readonly contentType?: string
  readonly timeoutMillis?: number
}

export interface KubeClientShape {
  /** The API server's base URL (for logs). */
  readonly server: string
  /** Where the connection came from: `in-cluster`, `kubeconfig <file>` or `url`. */
  readonly source: string
  /** One JSON request; a non-2xx answer fails with the Status reason and message. */
  readonly request: (options: RequestOptions) => Effect.Effect<unknown, KubeApiError>
  /**
   * A watch: `path` with its query (`?watch=1&resourceVersion=...`). Emits each event line; ends
   * when the server closes the stream; fails on a non-200 answer, a socket error, or when nothing
   * (not even a bookmark) arrived for `idleMillis`. Closing the stream aborts the request.
   */
  readonly watch: (path: string, idleMillis?: number) => Stream.Stream<WatchEvent, KubeApiError>
}

const statusOf = (text: string): { reason: string; message: string } => {
  try {
    const status = JSON.parse(text) as { reason?: unknown; message?: unknown }
    return {
      reason: typeof status.reason === "string" ? status.reason : "",
      message: typeof status.message === "string" ? status.message : text.slice(0, 200)
    }
  } catch {
    return { reason: "", message: text.slice(0, 200) }
  }
}

const reasonForStatus = (status: number): string =>
  status === 404
    ? "NotFound"
    : status === 409
    ? "AlreadyExists"
    : status === 410
    ? "Expired"
    : status === 401
    ? "Unauthorized"
    : status === 403
    ? "Forbidden"
    : http.STATUS_CODES[status] ?? "Unknown"

const failQueue = (queue: Queue.Enqueue<WatchEvent, KubeApiError | Cause.Done>, error: KubeApiError) =>
  Queue.failCauseUnsafe(queue, Cause.fail(error))

/**
 * client-node's agents (one per cluster and user) close the connection after each request: every
 * Event call would open a connection (and do a TLS handshake). These keep it open; idle ones close
 * after 30 s, well before the API server's idle timeout (90 s) would close them under a request.
 */
const keepAliveAgents = () => ({
  http: new http.Agent({ keepAlive: true, timeout: 30_000 }),
  https: new https.Agent({ keepAlive: true, timeout: 30_000 })
})

/**
 * Our keep-alive agent in place of client-node's plain one; a proxy agent stays. The TLS material
 * is in each request's options (re-read per request, as the credentials) and names the agent's
 * connection pool, so a rotated certificate opens a new connection.
 */
const keepingAlive = (
  agent: https.RequestOptions["agent"],
  agents: ReturnType<typeof keepAliveAgents>
): https.RequestOptions["agent"] =>
  agent?.constructor === https.Agent ? agents.https : agent?.constructor === http.Agent ? agents.http : agent

/** Builds the client over a loaded KubeConfig. */
export const makeKubeClient = (kc: KubeConfig, source: string): KubeClientShape => {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error("the kubeconfig has no current cluster")
  const server = cluster.server.replace(/\/+$/, "")
  const agents = keepAliveAgents()

  const open = (
    method: string,
    path: string,
    headers: Record<string, string>,
    onResponse: (res: http.IncomingMessage) => void,
    onError: (error: Error) => void
  ): { readonly abort: () => void; readonly ready: Promise<http.ClientRequest | undefined> } => {
    let aborted = false
    let req: http.ClientRequest | undefined
    const options: https.RequestOptions = { method, headers: { Accept: "application/json", ...headers } }
    const ready = kc.applyToHTTPSOptions(options).then(
      () => {
        if (aborted) return undefined
        const url = new URL(server + path)
        options.agent = keepingAlive(options.agent, agents)
        req = (url.protocol === "https:" ? https : http).request(url, options, onResponse)
        req.on("error", onError)
        return req
      },
      (error: unknown) => {
        onError(error instanceof Error ? error : new Error(String(error)))
        return undefined
      }
    )
    return {
      abort: () => {
        aborted = true
        req?.destroy()
      },
      ready
    }
  }

  const request = (options: RequestOptions): Effect.Effect<unknown, KubeApiError> =>
    Effect.callback<unknown, KubeApiError>((resume) => {
      const { method, path } = options
      const fail = (status: number | undefined, reason: string, message: string) =>
        resume(Effect.fail(
          new KubeApiError({ method, path, ...(status === undefined ? {} : { status }), reason, message })
        ))
      const body = options.body === undefined ? undefined : JSON.stringify(options.body)
      const headers: Record<string, string> = body === undefined
        ? {}
        : { "Content-Type": options.contentType ?? "application/json", "Content-Length": String(Buffer.byteLength(body)) }
      const call = open(method, path, headers, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("error", (error) => fail(undefined, "ConnectionError", error.message))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          const status = res.statusCode ?? 0
          if (status >= 200 && status < 300) {
            try {
              resume(Effect.succeed(text.length === 0 ? undefined : JSON.parse(text)))
            } catch (error) {
              fail(status, "BadResponse", `invalid JSON: ${String(error)}`)
            }
          } else {
            const parsed = statusOf(text)
            fail(status, parsed.reason || reasonForStatus(status), parsed.message || `HTTP ${status}`)
          }
        })
      }, (error) => fail(undefined, (error as NodeJS.ErrnoException).code ?? "ConnectionError", error.message))
      void call.ready.then((req) => {
        if (req === undefined) return
        req.setTimeout(options.timeoutMillis ?? 30_000, () => req.destroy(new Error("request timed out")))
        if (body !== undefined) req.write(body)
        req.end()
      })
      return Effect.sync(call.abort)
    })

  const watch = (path: string, idleMillis = 330_000): Stream.Stream<WatchEvent, KubeApiError> =>
    Stream.callback<WatchEvent, KubeApiError>((queue) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          let buffered = ""
          const call = open("GET", path, {}, (res) => {
            const status = res.statusCode ?? 0
            if (status !== 200) {
              const chunks: Array<Buffer> = []
              res.on("data", (chunk: Buffer) => chunks.push(chunk))
              res.on("end", () => {
                const parsed = statusOf(Buffer.concat(chunks).toString("utf8"))
                failQueue(queue, 
                  new KubeApiError({
                    method: "GET",
                    path,
                    status,
                    reason: parsed.reason || reasonForStatus(status),
                    message: parsed.message || `HTTP ${status}`
                  })
                )
              })
              return
            }
            res.setEncoding("utf8")
            res.on("data", (chunk: string) => {
              buffered += chunk
              let newline = buffered.indexOf("\n")
              while (newline >= 0) {
                const line = buffered.slice(0, newline).trim()
                buffered = buffered.slice(newline + 1)
                if (line.length > 0) {
                  try {
                    const event = JSON.parse(line) as WatchEvent
                    Queue.offerUnsafe(queue, event)
                  } catch {
                    failQueue(queue, 
                      new KubeApiError({ method: "GET", path, status, reason: "BadResponse", message: "invalid watch line" })
                    )
                  }
                }
                newline = buffered.indexOf("\n")
              }
            })
            res.on("end", () => Queue.endUnsafe(queue))
            res.on("close", () => Queue.endUnsafe(queue))
            res.on("error", (error) =>
              failQueue(queue, new KubeApiError({ method: "GET", path, reason: "ConnectionError", message: error.message }))
            )
          }, (error) =>
            failQueue(queue, 
              new KubeApiError({
                method: "GET",
                path,
                reason: (error as NodeJS.ErrnoException).code ?? "ConnectionError",
                message: error.message
              })
            ))
          void call.ready.then((req) => {
            if (req === undefined) return
            req.setTimeout(idleMillis, () => req.destroy(new Error(`watch idle for ${idleMillis}ms`)))
            req.end()
          })
          return call
        }),
        (call) => Effect.sync(call.abort)
      )
    )

  return { server, source, request, watch }
}

/** A KubeConfig for a plain URL (tests: the Kubernetes-API-compatible test server). */
export const kubeConfigForUrl = (server: string): KubeConfig => {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: "test", server, skipTLSVerify: server.startsWith("http:") }],
    users: [{ name: "test" }],
    contexts: [{ name: "test", cluster: "test", user: "test" }],
    currentContext: "test"
  })
  return kc
}

const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

const env = (name: string) =>
  Config.option(Config.String(name)).pipe(
    Effect.map((value) => Option.getOrUndefined(value)?.trim() || undefined),
    Effect.mapError((e) => new KubeSettingsError({ variable: name, message: e.message }))
  )

/**
 * Finds the connection: KUBECONFIG when set, else the in-cluster service account when running in
 * a pod, else none. Errors name the variable (a KUBECONFIG that cannot be loaded is an error, not
 * a silent fallback).
 */
export const detectKubeConfig: Effect.Effect<
  Option.Option<{ readonly kc: KubeConfig; readonly source: string }>,
  KubeSettingsError
> = Effect.gen(function*() {
  const kubeconfig = yield* env("KUBECONFIG")
  if (kubeconfig !== undefined) {
    const files = kubeconfig.split(delimiter).filter((f) => f.length > 0)
    return yield* Effect.try({
      try: () => {
        const kc = new KubeConfig()
        kc.loadFromFile(files[0]!)
        for (const file of files.slice(1)) {
          const more = new KubeConfig()
          more.loadFromFile(file)
          kc.mergeConfig(more)
        }
        if (kc.getCurrentCluster() === null) throw new Error("no current context/cluster")
        return Option.some({ kc, source: `kubeconfig ${files.join(delimiter)}` })
      },
      catch: (error) =>
        new KubeSettingsError({ variable: "KUBECONFIG", message: `KUBECONFIG=${kubeconfig}: ${String(error)}` })
    })
  }
  const host = yield* env("KUBERNETES_SERVICE_HOST")
  const port = yield* env("KUBERNETES_SERVICE_PORT")
  if (host !== undefined && port !== undefined && existsSync(serviceAccountToken)) {
    return yield* Effect.try({
      try: () => {
        const kc = new KubeConfig()
        kc.loadFromCluster()
        return Option.some({ kc, source: "in-cluster" })
      },
      catch: (error) =>
        new KubeSettingsError({
          variable: "KUBERNETES_SERVICE_HOST",
          message: `in-cluster configuration failed: ${String(error)}`
        })
    })
  }
  return Option.none()
})

export class KubeClient extends Context.Service<KubeClient, KubeClientShape>()("droptailer/k8s/KubeClient") {
  /** From a loaded KubeConfig. */
  static readonly layerKubeConfig = (kc: KubeConfig, source = "kubeconfig"): Layer.Layer<KubeClient> =>
    Layer.sync(KubeClient, () => KubeClient.of(makeKubeClient(kc, source)))

  /** Straight to a URL, no credentials (tests). */
  static readonly layerUrl = (server: string): Layer.Layer<KubeClient> =>
    KubeClient.layerKubeConfig(kubeConfigForUrl(server), "url")
}
