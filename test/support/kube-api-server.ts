/**
 * A Kubernetes-API-compatible HTTP server for tests (no API server binary can be installed here).
 *
 * Real HTTP on 127.0.0.1 (ephemeral port, or the same port again after `stop()`/`start()`), speaking
 * the wire protocol the informers, the Events sink and `kubectl` use:
 * - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`;
 * - list: `/api/v1/pods`, `/api/v1/namespaces/{ns}/pods`, services, nodes, events, namespaces,
 *   `/apis/apps/v1/replicasets`, `/apis/batch/v1/jobs` — with `metadata.resourceVersion`, `limit`
 *   and `continue`;
 * - get one object: `.../{resource}/{name}`;
 * - watch: `?watch=1&resourceVersion=..&allowWatchBookmarks=true&timeoutSeconds=..`, streaming
 *   ADDED/MODIFIED/DELETED/BOOKMARK events as JSON lines; a resourceVersion older than the
 *   compacted history answers with an ERROR event carrying a Status with code 410 (Expired);
 * - create (POST) and patch (PATCH with merge-patch, strategic-merge-patch or json-patch) of any
 *   namespaced resource, used for `/api/v1/namespaces/{ns}/events`.
 * Controls for tests: add/modify/remove objects, compact history, cut all watches, stop and
 * restart on the same port, request counting, and a kubeconfig file for kubectl.
 */
import { randomUUID } from "node:crypto"
import { writeFileSync } from "node:fs"
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"

export interface ResourceInfo {
  readonly group: string // "" for core
  readonly version: string
  readonly name: string // plural
  readonly singularName: string
  readonly kind: string
  readonly namespaced: boolean
  readonly shortNames?: ReadonlyArray<string>
}

export const resources: ReadonlyArray<ResourceInfo> = [
  { group: "", version: "v1", name: "pods", singularName: "pod", kind: "Pod", namespaced: true, shortNames: ["po"] },
  { group: "", version: "v1", name: "services", singularName: "service", kind: "Service", namespaced: true, shortNames: ["svc"] },
  { group: "", version: "v1", name: "nodes", singularName: "node", kind: "Node", namespaced: false, shortNames: ["no"] },
  { group: "", version: "v1", name: "events", singularName: "event", kind: "Event", namespaced: true, shortNames: ["ev"] },
  { group: "", version: "v1", name: "namespaces", singularName: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"] },
  { group: "apps", version: "v1", name: "replicasets", singularName: "replicaset", kind: "ReplicaSet", namespaced: true, shortNames: ["rs"] },
  { group: "apps", version: "v1", name: "deployments", singularName: "deployment", kind: "Deployment", namespaced: true, shortNames: ["deploy"] },
  { group: "batch", version: "v1", name: "jobs", singularName: "job", kind: "Job", namespaced: true }
]

export type ResourceName = "pods" | "services" | "nodes" | "events" | "namespaces" | "replicasets" | "deployments" | "jobs"

export type KubeObject = {
  apiVersion?: string
  kind?: string
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; [key: string]: unknown }
  [key: string]: unknown
}

interface HistoryEntry {
  readonly rv: number
  readonly resource: string
  readonly namespace: string | undefined
  readonly type: "ADDED" | "MODIFIED" | "DELETED"
  readonly object: KubeObject
}

interface Watcher {
  readonly resource: string
  readonly namespace: string | undefined
  readonly res: http.ServerResponse
  readonly bookmarks: boolean
  readonly info: ResourceInfo
  timer?: NodeJS.Timeout
}

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly query: string
  readonly contentType: string | undefined
  readonly at: number
}

export interface KubeApiServerOptions {
  /** Interval of BOOKMARK events on watches that asked for them (default 1000 ms). */
  readonly bookmarkIntervalMillis?: number
}

const apiVersionOf = (info: ResourceInfo) => (info.group === "" ? info.version : `${info.group}/${info.version}`)

const clone = <A>(value: A): A => structuredClone(value)

/** RFC 7386 JSON merge patch (also what a strategic merge patch does for Events' scalar fields). */
const mergePatch = (target: unknown, patch: unknown): unknown => {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch
  const out: Record<string, unknown> = target !== null && typeof target === "object" && !Array.isArray(target)
    ? { ...(target as Record<string, unknown>) }
    : {}
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete out[key]
    else out[key] = mergePatch(out[key], value)
  }
  return out
}

/** RFC 6902 JSON patch, the operations kubectl and clients send (add/replace/remove/test). */
const jsonPatch = (target: unknown, ops: ReadonlyArray<{ op: string; path: string; value?: unknown }>): unknown => {
  const doc = clone(target) as Record<string, unknown>
  for (const op of ops) {
    const parts = op.path.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    const last = parts.pop()
    if (last === undefined) throw new Error("empty path")
    let node: Record<string, unknown> = doc
    for (const part of parts) node = node[part] as Record<string, unknown>
    if (op.op === "add" || op.op === "replace") node[last] = op.value
    else if (op.op === "remove") delete node[last]
    else if (op.op === "test") {
      if (JSON.stringify(node[last]) !== JSON.stringify(op.value)) throw new Error(`test failed at ${op.path}`)
    } else throw new Error(`unsupported op ${op.op}`)
  }
  return doc
}

/** `involvedObject.name=web-1,involvedObject.uid=...` (equality, `=`/`==`/`!=`), as kubectl describe sends it. */
const fieldSelector = (selector: string | null): (object: KubeObject) => boolean => {
  if (selector === null || selector.trim() === "") return () => true
  const terms = selector.split(",").map((term) => {
    const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term.trim())
    if (m === null) throw new Error(`invalid field selector term ${term}`)
    return { path: m[1]!.split("."), negate: m[2] === "!=", value: m[3]! }
  })
  return (object) =>
    terms.every((term) => {
      let node: unknown = object
      for (const part of term.path) node = node !== null && typeof node === "object" ? (node as Record<string, unknown>)[part] : undefined
      const actual = node === undefined || node === null ? "" : String(node)
      return term.negate ? actual !== term.value : actual === term.value
    })
}

/** `5s`, `3m`, `2h`, `4d` like kubectl's ages. */
const age = (timestamp: unknown): string => {
  const ms = typeof timestamp === "string" ? Date.now() - Date.parse(timestamp) : NaN
  if (Number.isNaN(ms)) return "<unknown>"
  const seconds = Math.max(0, Math.floor(ms / 1000))
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86_400)}d`
}

const column = (name: string, type = "string", format = "", priority = 0) => ({ name, type, format, description: name, priority })

/** Server-side printing (what `kubectl get` shows) for pods and events; name + age otherwise. */
const table = (info: ResourceInfo, objects: ReadonlyArray<KubeObject>) => {
  const row = (object: KubeObject, cells: Array<unknown>) => ({
    cells,
    object: { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: object.metadata }
  })
  if (info.name === "pods") {
    return {
      columnDefinitions: [
        column("Name", "string", "name"),
        column("Ready"),
        column("Status"),
        column("Restarts", "string"),
        column("Age"),
        column("IP", "string", "", 1),
        column("Node", "string", "", 1)
      ],
      rows: objects.map((o) => {
        const spec = o.spec as { containers?: Array<unknown>; nodeName?: string } | undefined
        const status = o.status as { phase?: string; podIP?: string } | undefined
        const containers = spec?.containers?.length ?? 1
        const running = status?.phase === "Running"
        return row(o, [
          o.metadata.name,
          `${running ? containers : 0}/${containers}`,
          status?.phase ?? "Pending",
          "0",
          age(o.metadata.creationTimestamp),
          status?.podIP ?? "<none>",
          spec?.nodeName ?? "<none>"
        ])
      })
    }
  }
  if (info.name === "events") {
    return {
      columnDefinitions: [
        column("Last Seen"),
        column("Type"),
        column("Reason"),
        column("Object"),
        column("Message"),
        column("Name", "string", "name", 1),
        column("Count", "integer", "", 1)
      ],
      rows: objects.map((o) => {
        const involved = o.involvedObject as { kind?: string; name?: string } | undefined
        return row(o, [
          age(o.lastTimestamp ?? o.metadata.creationTimestamp),
          o.type ?? "",
          o.reason ?? "",
          `${(involved?.kind ?? "").toLowerCase()}/${involved?.name ?? ""}`,
          o.message ?? "",
          o.metadata.name,
          o.count ?? 1
        ])
      })
    }
  }
  return {
    columnDefinitions: [column("Name", "string", "name"), column("Age")],
    rows: objects.map((o) => row(o, [o.metadata.name, age(o.metadata.creationTimestamp)]))
  }
}

export class KubeApiServer {
  private server: http.Server | undefined
  private readonly sockets = new Set<Socket>()
  private readonly watchers = new Set<Watcher>()
  private readonly store = new Map<string, Map<string, KubeObject>>()
  private readonly history: Array<HistoryEntry> = []
  private rv = 100
  private compactedRv = 0
  private portNumber = 0
  private readonly bookmarkIntervalMillis: number
  /** Accept header of the request being routed (kubectl asks for server-side Tables). */
  private accept = ""
  /** Every request served, in order. */
  readonly requests: Array<RecordedRequest> = []

  constructor(options: KubeApiServerOptions = {}) {
    this.bookmarkIntervalMillis = options.bookmarkIntervalMillis ?? 1000
    for (const info of resources) this.store.set(info.name, new Map())
    this.add("namespaces", { metadata: { name: "default" } })
    this.add("namespaces", { metadata: { name: "kube-system" } })
  }

  /** Starts listening (again: on the same port as before). */
  async start(): Promise<void> {
    if (this.server !== undefined) return
    const server = http.createServer((req, res) => this.handle(req, res))
    server.on("connection", (socket) => {
      this.sockets.add(socket)
      socket.on("close", () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(this.portNumber, "127.0.0.1", () => resolve())
    })
    this.portNumber = (server.address() as AddressInfo).port
    this.server = server
  }

  /** Stops listening and drops every connection (watches included): the API server is gone. */
  async stop(): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    this.cutWatches()
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const socket of this.sockets) socket.destroy()
    await closed
  }

  get port(): number {
    return this.portNumber
  }

  get url(): string {
    return `http://127.0.0.1:${this.portNumber}`
  }

  get resourceVersion(): string {
    return String(this.rv)
  }

  /** Writes a kubeconfig for kubectl (and KubeConfig.loadFromFile) pointing at this server. */
  writeKubeconfig(file: string): string {
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: test",
        "  cluster:",
        `    server: ${this.url}`,
        "    insecure-skip-tls-verify: true",
        "users:",
        "- name: test",
        "  user: {}",
        "contexts:",
        "- name: test",
        "  context:",
        "    cluster: test",
        "    user: test",
        "current-context: test",
        ""
      ].join("\n")
    )
    return file
  }

  // ---- controls for tests --------------------------------------------------------------------

  add(resource: ResourceName, object: KubeObject): KubeObject {
    return this.write(resource, "ADDED", object)
  }

  modify(resource: ResourceName, object: KubeObject): KubeObject {
    return this.write(resource, "MODIFIED", object)
  }

  /** Adds or modifies. */
  apply(resource: ResourceName, object: KubeObject): KubeObject {
    const exists = this.get(resource, object.metadata.namespace, object.metadata.name) !== undefined
    return this.write(resource, exists ? "MODIFIED" : "ADDED", object)
  }

  remove(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined {
    const map = this.store.get(resource)!
    const key = `${namespace ?? ""}/${name}`
    const existing = map.get(key)
    if (existing === undefined) return undefined
    map.delete(key)
    const object = clone(existing)
    object.metadata.resourceVersion = String(++this.rv)
    this.record(resource, "DELETED", object)
    return object
  }

  get(resource: ResourceName, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.store.get(resource)!.get(`${namespace ?? ""}/${name}`)
    return found === undefined ? undefined : clone(found)
  }

  list(resource: ResourceName, namespace?: string): Array<KubeObject> {
    return [...this.store.get(resource)!.values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .map(clone)
  }

  /** Forgets history: watches from any resourceVersion before now get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv
    this.history.length = 0
  }

  /** Ends every open watch (as an API server restart or a load balancer would). */
  cutWatches(): void {
    for (const watcher of this.watchers) this.closeWatcher(watcher, true)
  }

  get watchCount(): number {
    return this.watchers.size
  }

  /** Requests matching a method and a path pattern (watches included). */
  countRequests(filter: { method?: string; path?: RegExp; watch?: boolean } = {}): number {
    return this.requests.filter((r) =>
      (filter.method === undefined || r.method === filter.method) &&
      (filter.path === undefined || filter.path.test(r.path)) &&
      (filter.watch === undefined || /(^|&)watch=(1|true)/.test(r.query) === filter.watch)
    ).length
  }

  // ---- storage -------------------------------------------------------------------------------

  private info(resource: string): ResourceInfo {
    return resources.find((r) => r.name === resource)!
  }

  private write(resource: string, type: "ADDED" | "MODIFIED", input: KubeObject): KubeObject {
    const info = this.info(resource)
    const object = clone(input)
    object.apiVersion = apiVersionOf(info)
    object.kind = info.kind
    const key = `${info.namespaced ? object.metadata.namespace ?? "default" : ""}/${object.metadata.name}`
    if (info.namespaced) object.metadata.namespace = object.metadata.namespace ?? "default"
    const existing = this.store.get(resource)!.get(key)
    object.metadata.uid = object.metadata.uid ?? existing?.metadata.uid ?? randomUUID()
    object.metadata.creationTimestamp = object.metadata.creationTimestamp ?? existing?.metadata.creationTimestamp ??
      new Date().toISOString().replace(/\.\d+Z$/, "Z")
    object.metadata.resourceVersion = String(++this.rv)
    this.store.get(resource)!.set(key, object)
    this.record(resource, existing === undefined ? "ADDED" : type === "ADDED" ? "MODIFIED" : type, object)
    return clone(object)
  }

  private record(resource: string, type: HistoryEntry["type"], object: KubeObject): void {
    const entry: HistoryEntry = { rv: this.rv, resource, namespace: object.metadata.namespace, type, object: clone(object) }
    this.history.push(entry)
    for (const watcher of this.watchers) {
      if (watcher.resource === resource && (watcher.namespace === undefined || watcher.namespace === entry.namespace)) {
        this.send(watcher, { type, object: entry.object })
      }
    }
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    this.requests.push({
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.search.slice(1),
      contentType: req.headers["content-type"],
      at: Date.now()
    })
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      try {
        this.accept = req.headers.accept ?? ""
        this.route(req.method ?? "GET", url, req.headers["content-type"], Buffer.concat(chunks).toString("utf8"), res)
      } catch (error) {
        this.status(res, 500, "InternalError", String(error))
      }
    })
  }

  private json(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body)
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) })
    res.end(text)
  }

  private statusBody(code: number, reason: string, message: string) {
    return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code }
  }

  private status(res: http.ServerResponse, code: number, reason: string, message: string): void {
    this.json(res, code, this.statusBody(code, reason, message))
  }

  private route(method: string, url: URL, contentType: string | undefined, body: string, res: http.ServerResponse): void {
    const path = url.pathname.replace(/\/+$/, "")
    if (path === "/version") {
      return this.json(res, 200, {
        major: "1",
        minor: "31",
        gitVersion: "v1.31.0-droptailer-test",
        gitCommit: "0000000",
        gitTreeState: "clean",
        buildDate: "2026-01-01T00:00:00Z",
        goVersion: "go1.22",
        compiler: "gc",
        platform: "linux/amd64"
      })
    }
    if (path === "/api") {
      return this.json(res, 200, {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${this.portNumber}` }]
      })
    }
    if (path === "/apis") {
      const groups = [...new Set(resources.filter((r) => r.group !== "").map((r) => r.group))]
      return this.json(res, 200, {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: groups.map((name) => ({
          name,
          versions: [{ groupVersion: `${name}/v1`, version: "v1" }],
          preferredVersion: { groupVersion: `${name}/v1`, version: "v1" }
        }))
      })
    }
    const segments = path.split("/").filter((s) => s.length > 0)
    let group: string
    let rest: Array<string>
    if (segments[0] === "api" && segments[1] === "v1") {
      group = ""
      rest = segments.slice(2)
    } else if (segments[0] === "apis" && segments.length >= 3 && segments[2] === "v1") {
      group = segments[1]!
      rest = segments.slice(3)
    } else {
      return this.status(res, 404, "NotFound", `the server could not find the requested resource (${path})`)
    }
    if (rest.length === 0) {
      return this.json(res, 200, {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: group === "" ? "v1" : `${group}/v1`,
        resources: resources.filter((r) => r.group === group).map((r) => ({
          name: r.name,
          singularName: r.singularName,
          namespaced: r.namespaced,
          kind: r.kind,
          verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
          ...(r.shortNames === undefined ? {} : { shortNames: r.shortNames })
        }))
      })
    }
    let namespace: string | undefined
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1]
      rest = rest.slice(2)
    }
    const info = resources.find((r) => r.group === group && r.name === rest[0])
    if (info === undefined || rest.length > 2) {
      return this.status(res, 404, "NotFound", `the server could not find the requested resource (${path})`)
    }
    const name = rest[1]
    const query = url.searchParams
    if (method === "GET" && name === undefined) {
      const watch = query.get("watch")
      if (watch === "1" || watch === "true") return this.watch(info, namespace, query, res)
      return this.listResponse(info, namespace, query, res)
    }
    if (method === "GET" && name !== undefined) {
      const found = this.store.get(info.name)!.get(`${info.namespaced ? namespace ?? "" : ""}/${name}`)
      return found === undefined
        ? this.status(res, 404, "NotFound", `${info.name} "${name}" not found`)
        : this.json(res, 200, found)
    }
    if (method === "POST" && name === undefined) {
      let object: KubeObject
      try {
        object = JSON.parse(body) as KubeObject
      } catch {
        return this.status(res, 400, "BadRequest", "invalid JSON body")
      }
      object.metadata = object.metadata ?? ({} as KubeObject["metadata"])
      if (!object.metadata.name && typeof object.metadata.generateName === "string") {
        object.metadata.name = `${object.metadata.generateName}${randomUUID().slice(0, 5)}`
      }
      if (!object.metadata.name) return this.status(res, 422, "Invalid", "metadata.name: Required value")
      if (info.namespaced) {
        if (object.metadata.namespace !== undefined && object.metadata.namespace !== namespace) {
          return this.status(res, 400, "BadRequest", "the namespace of the object does not match the namespace on the request")
        }
        object.metadata.namespace = namespace ?? "default"
      }
      if (this.store.get(info.name)!.has(`${object.metadata.namespace ?? ""}/${object.metadata.name}`)) {
        return this.status(res, 409, "AlreadyExists", `${info.name} "${object.metadata.name}" already exists`)
      }
      return this.json(res, 201, this.write(info.name, "ADDED", object))
    }
    if (method === "PATCH" && name !== undefined) {
      const key = `${info.namespaced ? namespace ?? "" : ""}/${name}`
      const existing = this.store.get(info.name)!.get(key)
      if (existing === undefined) return this.status(res, 404, "NotFound", `${info.name} "${name}" not found`)
      const type = (contentType ?? "").split(";")[0]!.trim()
      let patched: unknown
      try {
        const patch = JSON.parse(body) as unknown
        if (type === "application/merge-patch+json" || type === "application/strategic-merge-patch+json") {
          patched = mergePatch(existing, patch)
        } else if (type === "application/json-patch+json") {
          patched = jsonPatch(existing, patch as ReadonlyArray<{ op: string; path: string; value?: unknown }>)
        } else {
          return this.status(res, 415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`)
        }
      } catch (error) {
        return this.status(res, 422, "Invalid", String(error))
      }
      const object = patched as KubeObject
      object.metadata = { ...existing.metadata, ...object.metadata, name: existing.metadata.name }
      if (existing.metadata.namespace !== undefined) object.metadata.namespace = existing.metadata.namespace
      return this.json(res, 200, this.write(info.name, "MODIFIED", object))
    }
    if (method === "DELETE" && name !== undefined) {
      const removed = this.remove(info.name as ResourceName, info.namespaced ? namespace : undefined, name)
      return removed === undefined
        ? this.status(res, 404, "NotFound", `${info.name} "${name}" not found`)
        : this.json(res, 200, removed)
    }
    return this.status(res, 405, "MethodNotAllowed", `${method} is not supported on ${path}`)
  }

  private listResponse(info: ResourceInfo, namespace: string | undefined, query: URLSearchParams, res: http.ServerResponse): void {
    const selected = fieldSelector(query.get("fieldSelector"))
    const all = [...this.store.get(info.name)!.values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .filter(selected)
      .toSorted((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`))
    // continue token: "<listRv>:<offset>"; the list stays consistent only as far as this fake goes
    const limit = Number(query.get("limit") ?? "0")
    const token = query.get("continue")
    let offset = 0
    let listRv = String(this.rv)
    if (token) {
      const [rv, off] = token.split(":")
      listRv = rv ?? listRv
      offset = Number(off ?? "0")
    }
    const page = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset)
    const more = limit > 0 && offset + limit < all.length
    if (this.accept.includes("as=Table")) {
      return this.json(res, 200, {
        kind: "Table",
        apiVersion: "meta.k8s.io/v1",
        metadata: {
          resourceVersion: listRv,
          ...(more ? { continue: `${listRv}:${offset + limit}` } : {})
        },
        ...table(info, page)
      })
    }
    this.json(res, 200, {
      kind: `${info.kind}List`,
      apiVersion: apiVersionOf(info),
      metadata: {
        resourceVersion: listRv,
        ...(more ? { continue: `${listRv}:${offset + limit}`, remainingItemCount: all.length - offset - limit } : {})
      },
      items: page
    })
  }

  private watch(info: ResourceInfo, namespace: string | undefined, query: URLSearchParams, res: http.ServerResponse): void {
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
    res.flushHeaders()
    const watcher: Watcher = {
      resource: info.name,
      namespace,
      res,
      bookmarks: query.get("allowWatchBookmarks") === "true" || query.get("allowWatchBookmarks") === "1",
      info
    }
    const from = query.get("resourceVersion")
    const matches = (e: HistoryEntry) =>
      e.resource === info.name && (namespace === undefined || e.namespace === namespace)
    if (from === null || from === "" || from === "0") {
      // "any": synthetic ADDED for the current state, then changes
      for (const object of this.store.get(info.name)!.values()) {
        if (namespace === undefined || object.metadata.namespace === namespace) this.send(watcher, { type: "ADDED", object })
      }
    } else {
      const rv = Number(from)
      if (!Number.isFinite(rv) || rv < this.compactedRv) {
        this.send(watcher, {
          type: "ERROR",
          object: this.statusBody(410, "Expired", `too old resource version: ${from} (${this.compactedRv})`)
        })
        res.end()
        return
      }
      for (const entry of this.history) if (entry.rv > rv && matches(entry)) this.send(watcher, entry)
    }
    this.watchers.add(watcher)
    res.on("close", () => this.closeWatcher(watcher, false))
    if (watcher.bookmarks) {
      watcher.timer = setInterval(() => {
        this.send(watcher, {
          type: "BOOKMARK",
          object: { kind: info.kind, apiVersion: apiVersionOf(info), metadata: { resourceVersion: String(this.rv) } }
        })
      }, this.bookmarkIntervalMillis)
    }
    const timeoutSeconds = Number(query.get("timeoutSeconds") ?? "0")
    if (timeoutSeconds > 0) {
      const timeout = setTimeout(() => this.closeWatcher(watcher, true), timeoutSeconds * 1000)
      res.on("close", () => clearTimeout(timeout))
    }
  }

  private send(watcher: Watcher, event: { type: string; object: unknown }): void {
    if (!watcher.res.writableEnded) watcher.res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`)
  }

  private closeWatcher(watcher: Watcher, end: boolean): void {
    if (watcher.timer !== undefined) clearInterval(watcher.timer)
    this.watchers.delete(watcher)
    if (end && !watcher.res.writableEnded) watcher.res.end()
  }
}

/** Starts a server; the caller must `stop()` it. */
export const startKubeApiServer = async (options: KubeApiServerOptions = {}): Promise<KubeApiServer> => {
  const server = new KubeApiServer(options)
  await server.start()
  return server
}
