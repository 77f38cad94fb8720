/**
 * Just enough of the Kubernetes API for `kubectl apply --dry-run=client` to run offline: kubectl
 * needs discovery (which kinds exist, in which group/version, namespaced or not) to map the
 * manifests to resources, and asks for each object whether it exists already. This answers
 * discovery for the built-in kinds a deployment uses and "404 Not Found" for every object, so
 * kubectl prints "created (dry run)" — or fails on a kind it cannot map, as against a real cluster.
 * OpenAPI is not served: schema validation is done by `schema.ts` instead (`--validate=false`).
 */
import { createServer, type Server } from "node:http"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

type Resource = readonly [plural: string, kind: string, namespaced: boolean]

const core: ReadonlyArray<Resource> = [
  ["namespaces", "Namespace", false],
  ["serviceaccounts", "ServiceAccount", true],
  ["services", "Service", true],
  ["secrets", "Secret", true],
  ["configmaps", "ConfigMap", true],
  ["pods", "Pod", true],
  ["nodes", "Node", false],
  ["events", "Event", true]
]

const groups: Record<string, ReadonlyArray<Resource>> = {
  "apps/v1": [
    ["deployments", "Deployment", true],
    ["daemonsets", "DaemonSet", true],
    ["statefulsets", "StatefulSet", true],
    ["replicasets", "ReplicaSet", true]
  ],
  "batch/v1": [["jobs", "Job", true]],
  "rbac.authorization.k8s.io/v1": [
    ["clusterroles", "ClusterRole", false],
    ["clusterrolebindings", "ClusterRoleBinding", false],
    ["roles", "Role", true],
    ["rolebindings", "RoleBinding", true]
  ],
  "networking.k8s.io/v1": [["networkpolicies", "NetworkPolicy", true]],
  "policy/v1": [["poddisruptionbudgets", "PodDisruptionBudget", true]],
  "events.k8s.io/v1": [["events", "Event", true]]
}

const resourceList = (groupVersion: string, resources: ReadonlyArray<Resource>) => ({
  kind: "APIResourceList",
  apiVersion: "v1",
  groupVersion,
  resources: resources.map(([name, kind, namespaced]) => ({
    name,
    singularName: kind.toLowerCase(),
    namespaced,
    kind,
    verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
  }))
})

const respond = (path: string): { readonly status: number; readonly body: unknown } => {
  if (path === "/version") return { status: 200, body: { major: "1", minor: "32", gitVersion: "v1.32.0" } }
  if (path === "/api") return { status: 200, body: { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] } }
  if (path === "/api/v1") return { status: 200, body: resourceList("v1", core) }
  if (path === "/apis") {
    return {
      status: 200,
      body: {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: Object.keys(groups).map((groupVersion) => {
          const [name = "", version = ""] = groupVersion.split("/")
          const entry = { groupVersion, version }
          return { name, versions: [entry], preferredVersion: entry }
        })
      }
    }
  }
  const group = groups[path.replace(/^\/apis\//, "")]
  if (path.startsWith("/apis/") && group !== undefined) {
    return { status: 200, body: resourceList(path.slice("/apis/".length), group) }
  }
  return {
    status: 404,
    body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `${path} not found`, reason: "NotFound", code: 404 }
  }
}

export interface Discovery {
  /** A kubeconfig file that points kubectl at this server. */
  readonly kubeconfig: string
  /** kubectl's discovery cache folder, so that nothing lands in ~/.kube. */
  readonly cacheDir: string
  /** Paths kubectl asked for, e.g. "GET /apis/apps/v1/namespaces/firewall/deployments/droptailer". */
  readonly requests: ReadonlyArray<string>
  readonly close: () => Promise<void>
}

/** Starts the server on 127.0.0.1 (a free port) and writes a throw-away kubeconfig for it. */
export const startDiscovery = async (): Promise<Discovery> => {
  const requests: Array<string> = []
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname
    requests.push(`${request.method ?? "GET"} ${path}`)
    const { status, body } = respond(path)
    response.writeHead(status, { "content-type": "application/json" })
    response.end(JSON.stringify(body))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const folder = await mkdtemp(join(tmpdir(), "droptailer-kubectl-"))
  const kubeconfig = join(folder, "kubeconfig")
  await writeFile(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "  - name: offline",
      "    cluster:",
      `      server: http://127.0.0.1:${port}`,
      "contexts:",
      "  - name: offline",
      "    context: {cluster: offline, user: offline}",
      "users:",
      "  - name: offline",
      "    user: {token: offline}",
      "current-context: offline",
      ""
    ].join("\n")
  )
  return {
    kubeconfig,
    cacheDir: join(folder, "cache"),
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await rm(folder, { recursive: true, force: true })
    }
  }
}
