/**
 * deploy/kubernetes, checked offline: `kubectl kustomize` renders it, `kubectl apply
 * --dry-run=client -k` accepts it (against a discovery-only stand-in for the API server, since
 * there is no cluster), every field exists in the Kubernetes API types, and the parts fit together:
 * selectors, ports, probes, the ServiceAccount and its RBAC binding, the certificate Secret, the
 * security settings and the NetworkPolicy.
 */
import { afterAll, beforeAll, expect, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describeWith, inCI } from "../support/environment.ts"
import { type Discovery, startDiscovery } from "./discovery.ts"
import { parseDockerfile } from "./dockerfile.ts"
import { repoPath, run } from "./repo.ts"
import { type KubernetesObject, objectErrors } from "./schema.ts"

const kustomizeDir = repoPath("deploy", "kubernetes")
const rbacPresent = existsSync(join(kustomizeDir, "rbac.yaml"))

/** The resources listed in kustomization.yaml (a flat list of file names). */
const kustomizationResources = (): Array<string> => {
  const text = readFileSync(join(kustomizeDir, "kustomization.yaml"), "utf8")
  const block = /^resources:\n((?:[ \t]+-.*\n|[ \t]*#.*\n)+)/m.exec(text)
  return (block?.[1] ?? "")
    .split("\n")
    .map((line) => /^\s+-\s+(\S+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined)
}

/**
 * Until deploy/kubernetes/rbac.yaml lands (another part of issue 6), the rendering uses a copy of
 * the folder with a stand-in of the agreed RBAC, written only to a temporary folder.
 */
const standInRbac = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: droptailer
rules:
  - apiGroups: [""]
    resources: [pods, services, nodes]
    verbs: [get, list, watch]
  - apiGroups: [apps]
    resources: [replicasets]
    verbs: [get, list, watch]
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: droptailer
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: droptailer
subjects:
  - kind: ServiceAccount
    name: droptailer
    namespace: firewall
`

interface Port {
  readonly name?: string
  readonly containerPort: number
}
interface Probe {
  readonly httpGet?: { readonly path?: string; readonly port: number | string }
}
interface Container {
  readonly name: string
  readonly image: string
  readonly env?: ReadonlyArray<{ readonly name: string; readonly value?: string }>
  readonly ports?: ReadonlyArray<Port>
  readonly livenessProbe?: Probe
  readonly readinessProbe?: Probe
  readonly startupProbe?: Probe
  readonly resources?: {
    readonly requests?: Record<string, string>
    readonly limits?: Record<string, string>
  }
  readonly securityContext?: {
    readonly runAsNonRoot?: boolean
    readonly runAsUser?: number
    readonly readOnlyRootFilesystem?: boolean
    readonly allowPrivilegeEscalation?: boolean
    readonly privileged?: boolean
    readonly capabilities?: { readonly drop?: ReadonlyArray<string>; readonly add?: ReadonlyArray<string> }
  }
  readonly volumeMounts?: ReadonlyArray<{ readonly name: string; readonly mountPath: string; readonly readOnly?: boolean }>
}
interface PodSpec {
  readonly serviceAccountName?: string
  readonly automountServiceAccountToken?: boolean
  readonly securityContext?: {
    readonly runAsNonRoot?: boolean
    readonly runAsUser?: number
    readonly seccompProfile?: { readonly type: string }
  }
  readonly containers: ReadonlyArray<Container>
  readonly volumes?: ReadonlyArray<{
    readonly name: string
    readonly secret?: { readonly secretName?: string; readonly items?: ReadonlyArray<{ readonly key: string; readonly path: string }> }
  }>
}
interface Deployment extends KubernetesObject {
  readonly spec: {
    readonly selector: { readonly matchLabels?: Record<string, string> }
    readonly template: { readonly metadata: { readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> }; readonly spec: PodSpec }
  }
}
interface Service extends KubernetesObject {
  readonly spec: {
    readonly selector?: Record<string, string>
    readonly ports: ReadonlyArray<{ readonly name?: string; readonly port: number; readonly targetPort?: number | string }>
  }
}
interface NetworkPolicyPort {
  readonly protocol?: string
  readonly port?: number | string
}
interface NetworkPolicy extends KubernetesObject {
  readonly spec: {
    readonly podSelector: { readonly matchLabels?: Record<string, string> }
    readonly policyTypes?: ReadonlyArray<string>
    readonly ingress?: ReadonlyArray<{ readonly from?: ReadonlyArray<unknown>; readonly ports?: ReadonlyArray<NetworkPolicyPort> }>
    readonly egress?: ReadonlyArray<{ readonly to?: ReadonlyArray<unknown>; readonly ports?: ReadonlyArray<NetworkPolicyPort> }>
  }
}
interface ClusterRoleBinding extends KubernetesObject {
  readonly roleRef: { readonly kind: string; readonly name: string }
  readonly subjects?: ReadonlyArray<{ readonly kind: string; readonly name: string; readonly namespace?: string }>
}
interface Secret extends KubernetesObject {
  readonly data?: Record<string, string>
  readonly stringData?: Record<string, string>
}

/** The keys `droptailer certs --kubernetes-secrets` writes into each Secret. */
const certificateKeys = ["ca.crt", "tls.crt", "tls.key"]

const subsetOf = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels?.[key] === value)

/** A probe's or a Service's port, by number or by name, resolved to the container's port number. */
const containerPort = (container: Container, port: number | string | undefined): number | undefined =>
  typeof port === "number"
    ? container.ports?.find((candidate) => candidate.containerPort === port)?.containerPort
    : container.ports?.find((candidate) => candidate.name === port)?.containerPort

describeWith(["kubectl"], "deploy/kubernetes", () => {
  let folder = ""
  let renderDir = kustomizeDir
  let discovery: Discovery | undefined
  let objects: ReadonlyArray<KubernetesObject> = []

  const kubectl = (args: ReadonlyArray<string>) => {
    if (discovery === undefined) throw new Error("the discovery server is not running")
    return run("kubectl", ["--kubeconfig", discovery.kubeconfig, "--cache-dir", discovery.cacheDir, ...args], {
      env: { ...process.env, KUBECONFIG: discovery.kubeconfig }
    })
  }

  const find = <A extends KubernetesObject>(kind: string, name: string): A => {
    const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name)
    if (object === undefined) throw new Error(`${kind}/${name} is not in the rendering`)
    return object as A
  }

  const server = (): { readonly deployment: Deployment; readonly pod: PodSpec; readonly container: Container } => {
    const deployment = find<Deployment>("Deployment", "droptailer")
    const pod = deployment.spec.template.spec
    const container = pod.containers[0]
    if (container === undefined) throw new Error("the Deployment has no container")
    return { deployment, pod, container }
  }

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "droptailer-deploy-"))
    if (!rbacPresent) {
      renderDir = join(folder, "kubernetes")
      await cp(kustomizeDir, renderDir, { recursive: true })
      await writeFile(join(renderDir, "rbac.yaml"), standInRbac)
    }
    discovery = await startDiscovery()
    const rendered = await kubectl(["apply", "--dry-run=client", "--validate=false", "-k", renderDir, "-o", "json"])
    if (rendered.code !== 0) throw new Error(`kubectl apply --dry-run=client -o json failed:\n${rendered.stderr}`)
    const list = JSON.parse(rendered.stdout) as { readonly kind: string; readonly items?: ReadonlyArray<KubernetesObject> }
    objects = list.kind === "List" ? (list.items ?? []) : [list as unknown as KubernetesObject]
  })

  afterAll(async () => {
    await discovery?.close()
    if (folder !== "") await rm(folder, { recursive: true, force: true })
  })

  it.skipIf(!rbacPresent && !inCI)("every resource that kustomization.yaml lists is in the folder (rbac.yaml too)", () => {
    const resources = kustomizationResources()
    expect(resources).toContain("rbac.yaml")
    expect(resources.filter((name) => !existsSync(join(kustomizeDir, name)))).toEqual([])
  })

  it("keeps the example Secret out of the kustomization", () => {
    const resources = kustomizationResources()
    expect(resources).toEqual(
      expect.arrayContaining(["namespace.yaml", "serviceaccount.yaml", "deployment.yaml", "service.yaml", "networkpolicy.yaml"])
    )
    expect(resources).not.toContain("secret.example.yaml")
    expect(objects.filter((object) => object.kind === "Secret")).toEqual([])
  })

  it("renders with kubectl kustomize", async () => {
    const result = await run("kubectl", ["kustomize", renderDir])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    for (const kind of ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "NetworkPolicy"]) {
      expect(result.stdout).toMatch(new RegExp(`^kind: ${kind}$`, "m"))
    }
  })

  it("passes kubectl apply --dry-run=client -k", async () => {
    const result = await kubectl(["apply", "--dry-run=client", "--validate=false", "-k", renderDir])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const lines = result.stdout.trim().split("\n")
    expect(lines.filter((line) => !/^\S+ created \(dry run\)$/.test(line))).toEqual([])
    expect(lines).toEqual(
      expect.arrayContaining([
        "deployment.apps/droptailer created (dry run)",
        "namespace/firewall created (dry run)",
        "networkpolicy.networking.k8s.io/droptailer created (dry run)",
        "service/droptailer created (dry run)",
        "serviceaccount/droptailer created (dry run)"
      ])
    )
    // The RBAC (rbac.yaml) is another engineer's: its names may differ, its kinds may not.
    expect(lines.some((line) => line.startsWith("clusterrole.rbac.authorization.k8s.io/"))).toBe(true)
    expect(lines.some((line) => line.startsWith("clusterrolebinding.rbac.authorization.k8s.io/"))).toBe(true)
    // kubectl really asked whether each object exists, in the namespace firewall.
    expect(discovery?.requests).toContain("GET /apis/apps/v1/namespaces/firewall/deployments/droptailer")
  })

  it("has only fields the Kubernetes API knows, with their types", () => {
    expect(objects.length).toBeGreaterThanOrEqual(7)
    expect(objects.flatMap(objectErrors)).toEqual([])
  })

  it("the schema check catches a misspelt field (control)", () => {
    const { deployment } = server()
    const broken = JSON.parse(JSON.stringify(deployment).replace('"readinessProbe"', '"readinesProbe"')) as KubernetesObject
    expect(objectErrors(broken)).toEqual([
      "Deployment/droptailer: spec.template.spec.containers[0].readinesProbe: unknown field of V1Container"
    ])
  })

  it("puts everything in the namespace firewall, which it creates", () => {
    const clusterScoped = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding"])
    expect(find("Namespace", "firewall").metadata.name).toBe("firewall")
    for (const object of objects) {
      expect([`${object.kind}/${object.metadata.name}`, object.metadata.namespace]).toEqual([
        `${object.kind}/${object.metadata.name}`,
        clusterScoped.has(object.kind) ? undefined : "firewall"
      ])
    }
  })

  it("runs the server under the ServiceAccount droptailer, bound to the RBAC ClusterRole", () => {
    const { pod } = server()
    expect(pod.serviceAccountName).toBe("droptailer")
    expect(pod.automountServiceAccountToken).not.toBe(false)
    find("ServiceAccount", "droptailer")
    const bindings = objects.filter((object): object is ClusterRoleBinding => object.kind === "ClusterRoleBinding")
    const binding = bindings.find((candidate) =>
      candidate.subjects?.some((subject) =>
        subject.kind === "ServiceAccount" && subject.name === "droptailer" && subject.namespace === "firewall"
      )
    )
    expect(binding, "a ClusterRoleBinding for ServiceAccount firewall/droptailer").toBeDefined()
    expect(binding?.roleRef.kind).toBe("ClusterRole")
    find("ClusterRole", binding?.roleRef.name ?? "")
  })

  it("selects its own pods: Deployment selector, Service selector and NetworkPolicy podSelector", () => {
    const { deployment } = server()
    const podLabels = deployment.spec.template.metadata.labels
    expect(subsetOf(deployment.spec.selector.matchLabels, podLabels)).toBe(true)
    expect(subsetOf(find<Service>("Service", "droptailer").spec.selector, podLabels)).toBe(true)
    expect(subsetOf(find<NetworkPolicy>("NetworkPolicy", "droptailer").spec.podSelector.matchLabels, podLabels)).toBe(true)
  })

  it("serves gRPC on 50051 and metrics on 9090, with the probes and Prometheus annotations on the metrics port", () => {
    const { deployment, container } = server()
    expect(containerPort(container, "grpc")).toBe(50051)
    expect(containerPort(container, "metrics")).toBe(9090)
    const env = new Map(container.env?.map((variable) => [variable.name, variable.value]))
    expect(env.get("SERVER_PORT") ?? "50051").toBe("50051")
    expect(env.get("DROPTAILER_METRICS_ADDRESS") ?? ":9090").toMatch(/:9090$/)

    expect(container.livenessProbe?.httpGet?.path).toBe("/healthz")
    expect(containerPort(container, container.livenessProbe?.httpGet?.port)).toBe(9090)
    expect(container.readinessProbe?.httpGet?.path).toBe("/readyz")
    expect(containerPort(container, container.readinessProbe?.httpGet?.port)).toBe(9090)
    if (container.startupProbe !== undefined) {
      expect(containerPort(container, container.startupProbe.httpGet?.port)).toBe(9090)
    }

    const annotations = deployment.spec.template.metadata.annotations ?? {}
    expect(annotations["prometheus.io/scrape"]).toBe("true")
    expect(annotations["prometheus.io/port"]).toBe("9090")
    expect(annotations["prometheus.io/path"]).toBe("/metrics")
  })

  it("exposes both ports in the Service, each targeting a container port", () => {
    const { container } = server()
    const service = find<Service>("Service", "droptailer")
    const byName = new Map(service.spec.ports.map((port) => [port.name, port]))
    expect(byName.get("grpc")?.port).toBe(50051)
    expect(byName.get("metrics")?.port).toBe(9090)
    for (const port of service.spec.ports) {
      expect([port.name, containerPort(container, port.targetPort ?? port.port)]).toEqual([port.name, port.port])
    }
  })

  it("mounts the Secret droptailer-server, as droptailer certs writes it, where SERVER_* point", () => {
    const { pod, container } = server()
    const mount = container.volumeMounts?.find((candidate) => candidate.mountPath === "/etc/droptailer-server")
    expect(mount?.readOnly).toBe(true)
    const volume = pod.volumes?.find((candidate) => candidate.name === mount?.name)
    expect(volume?.secret?.secretName).toBe("droptailer-server")
    // Without `items` every key of the Secret becomes a file of its name.
    const files = volume?.secret?.items?.map((item) => item.path) ?? certificateKeys
    expect([...files].toSorted()).toEqual(certificateKeys)
    const env = new Map(container.env?.map((variable) => [variable.name, variable.value]))
    expect(env.get("SERVER_CERTIFICATE")).toBe("/etc/droptailer-server/tls.crt")
    expect(env.get("SERVER_KEY")).toBe("/etc/droptailer-server/tls.key")
    expect(env.get("SERVER_CA_CERTIFICATE")).toBe("/etc/droptailer-server/ca.crt")
  })

  it("runs locked down: non-root (the image's uid), read-only root, no capabilities, limits", () => {
    const { pod, container } = server()
    expect(pod.securityContext?.runAsNonRoot).toBe(true)
    expect(pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault")
    const security = container.securityContext
    expect(security?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot).toBe(true)
    expect(security?.readOnlyRootFilesystem).toBe(true)
    expect(security?.allowPrivilegeEscalation).toBe(false)
    expect(security?.privileged ?? false).toBe(false)
    expect(security?.capabilities?.drop).toEqual(["ALL"])
    expect(security?.capabilities?.add ?? []).toEqual([])

    // The uid the pod runs as is the one the server image's USER names.
    const image = parseDockerfile(readFileSync(repoPath("Dockerfile"), "utf8"))
    const user = image.stages.at(-1)?.instructions.findLast((instruction) => instruction.keyword === "USER")?.args
    const uid = security?.runAsUser ?? pod.securityContext?.runAsUser
    expect(uid).toBeGreaterThan(0)
    expect(user?.split(":")[0]).toBe(String(uid))

    for (const kind of ["requests", "limits"] as const) {
      expect(Object.keys(container.resources?.[kind] ?? {}).toSorted()).toEqual(["cpu", "memory"])
    }
    expect(container.image).toMatch(/^[^:@]+(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/)
    expect(container.image).not.toMatch(/:latest$/)
  })

  it("lets gRPC and metrics in from anywhere, and out only to the API server and DNS", () => {
    const policy = find<NetworkPolicy>("NetworkPolicy", "droptailer")
    expect([...(policy.spec.policyTypes ?? [])].toSorted()).toEqual(["Egress", "Ingress"])
    const ingress = policy.spec.ingress ?? []
    for (const port of [50051, 9090]) {
      expect(
        ingress.some((rule) => rule.from === undefined && rule.ports?.some((allowed) => allowed.port === port && (allowed.protocol ?? "TCP") === "TCP")),
        `ingress on TCP ${port} from anywhere`
      ).toBe(true)
    }
    const egress = policy.spec.egress ?? []
    // A rule without ports would open every port.
    expect(egress.every((rule) => (rule.ports ?? []).length > 0)).toBe(true)
    const allowed = egress.flatMap((rule) => (rule.ports ?? []).map((port) => `${port.protocol ?? "TCP"}/${port.port}`))
    expect([...new Set(allowed)].toSorted()).toEqual(["TCP/443", "TCP/53", "TCP/6443", "UDP/53"])
  })

  it("mounts the Secret that droptailer certs --kubernetes-secrets writes, for kubectl apply -f certs/", async () => {
    const out = join(folder, "certs")
    const certs = await run(process.execPath, [repoPath("src", "main", "bin.ts"), "certs", "--out", out, "--kubernetes-secrets"])
    expect(certs.code, certs.stderr).toBe(0)
    const result = await kubectl(["apply", "--dry-run=client", "--validate=false", "-f", out, "-o", "json"])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const list = JSON.parse(result.stdout) as { readonly items: ReadonlyArray<Secret> }
    expect(list.items.flatMap(objectErrors)).toEqual([])
    expect(list.items.map((secret) => `${secret.kind} ${secret.metadata.namespace}/${secret.metadata.name}`).toSorted()).toEqual([
      "Secret firewall/droptailer-client",
      "Secret firewall/droptailer-server"
    ])
    for (const secret of list.items) {
      expect(Object.keys({ ...secret.data, ...secret.stringData }).toSorted()).toEqual(certificateKeys)
    }
    const { pod } = server()
    expect(pod.volumes?.map((volume) => volume.secret?.secretName)).toContain("droptailer-server")
  })

  it("documents the Secrets in secret.example.yaml with the names and keys the Deployment uses", async () => {
    const result = await kubectl(["apply", "--dry-run=client", "--validate=false", "-f", join(kustomizeDir, "secret.example.yaml"), "-o", "json"])
    expect(result.stderr).toBe("")
    const list = JSON.parse(result.stdout) as { readonly items: ReadonlyArray<Secret> }
    expect(list.items.flatMap(objectErrors)).toEqual([])
    expect(list.items.map((secret) => `${secret.metadata.namespace}/${secret.metadata.name}`).toSorted()).toEqual([
      "firewall/droptailer-client",
      "firewall/droptailer-server"
    ])
    for (const secret of list.items) {
      expect(Object.keys({ ...secret.data, ...secret.stringData }).toSorted()).toEqual(certificateKeys)
    }
  })
})
