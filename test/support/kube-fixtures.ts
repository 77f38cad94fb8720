/**
 * Builders for the Kubernetes objects and drop events the k8s tests use, and a scoped test
 * server + Kubernetes layer for @effect/vitest.
 */
import { Effect, Layer, type Scope } from "effect"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { KubeClient } from "../../src/k8s/KubeClient.ts"
import { defaultKubeSettings, type KubeSettingsShape } from "../../src/k8s/KubeSettings.ts"
import { kubernetesLayerWith } from "../../src/k8s/Kubernetes.ts"
import type { KubeApiServerOptions, KubeObject } from "./kube-api-server.ts"
import { KubeApiServer } from "./kube-api-server.ts"

export const pod = (options: {
  name: string
  namespace?: string
  ips?: ReadonlyArray<string>
  node?: string
  hostNetwork?: boolean
  phase?: string
  owner?: { kind: string; name: string }
  uid?: string
  created?: string
}): KubeObject => ({
  metadata: {
    name: options.name,
    namespace: options.namespace ?? "default",
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.created === undefined ? {} : { creationTimestamp: options.created }),
    ...(options.owner === undefined
      ? {}
      : { ownerReferences: [{ apiVersion: "v1", kind: options.owner.kind, name: options.owner.name, uid: "x", controller: true }] }),
    labels: { app: options.name }
  },
  spec: {
    nodeName: options.node ?? "node-1",
    ...(options.hostNetwork === undefined ? {} : { hostNetwork: options.hostNetwork }),
    containers: [{ name: "main", image: "registry.example/app:1" }]
  },
  status: {
    phase: options.phase ?? "Running",
    ...(options.ips === undefined || options.ips.length === 0
      ? {}
      : { podIP: options.ips[0], podIPs: options.ips.map((ip) => ({ ip })) })
  }
})

export const service = (options: {
  name: string
  namespace?: string
  clusterIPs?: ReadonlyArray<string>
  externalIPs?: ReadonlyArray<string>
  loadBalancer?: ReadonlyArray<string>
}): KubeObject => ({
  metadata: { name: options.name, namespace: options.namespace ?? "default" },
  spec: {
    ...(options.clusterIPs === undefined ? {} : { clusterIP: options.clusterIPs[0], clusterIPs: options.clusterIPs }),
    ...(options.externalIPs === undefined ? {} : { externalIPs: options.externalIPs }),
    ports: [{ port: 80, protocol: "TCP" }]
  },
  status: { loadBalancer: options.loadBalancer === undefined ? {} : { ingress: options.loadBalancer.map((ip) => ({ ip })) } }
})

export const node = (name: string, internal: string, external?: string): KubeObject => ({
  metadata: { name },
  status: {
    addresses: [
      { type: "InternalIP", address: internal },
      ...(external === undefined ? [] : [{ type: "ExternalIP", address: external }]),
      { type: "Hostname", address: name }
    ]
  }
})

export const owned = (name: string, namespace: string, owner?: { kind: string; name: string }): KubeObject => ({
  metadata: {
    name,
    namespace,
    ...(owner === undefined ? {} : { ownerReferences: [{ apiVersion: "apps/v1", kind: owner.kind, name: owner.name, uid: "y", controller: true }] })
  },
  spec: {}
})

/** Epoch microseconds of now (+ offset ms). */
export const nowMicros = (offsetMillis = 0) => (Date.now() + offsetMillis) * 1000

export const drop = (options: {
  src: string
  dst: string
  sport?: number
  dport?: number
  protocol?: string
  timestamp?: number
  action?: "drop" | "accept"
  host?: string
}): DropEvent => ({
  timestamp: options.timestamp ?? nowMicros(),
  action: options.action ?? "drop",
  host: options.host ?? "fw-1",
  protocol: options.protocol ?? "TCP",
  src: { ip: options.src, port: options.sport ?? 40000 },
  dst: { ip: options.dst, port: options.dport ?? 443 },
  in: "vrf09",
  out: "",
  fields: {}
})

/** A started test API server, stopped when the scope closes. */
export const kubeApiServer = (options: KubeApiServerOptions = {}): Effect.Effect<KubeApiServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const server = new KubeApiServer(options)
      await server.start()
      return server
    }),
    (server) => Effect.promise(() => server.stop())
  )

/** Builds the real Kubernetes layer against the server in the current scope. */
export const kubernetesFor = (server: KubeApiServer, settings: Partial<KubeSettingsShape> = {}) =>
  Layer.build(
    kubernetesLayerWith(KubeClient.layerUrl(server.url), {
      ...defaultKubeSettings,
      backoffBaseMillis: 100,
      backoffMaxMillis: 1000,
      eventsFlushMillis: 500,
      ...settings
    })
  )

/** Polls `check` until it returns true (or fails after `timeoutMillis`). */
export const eventually = (check: () => boolean | Effect.Effect<boolean>, timeoutMillis = 10_000, what = "condition") =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const result = check()
      const ok = typeof result === "boolean" ? result : yield* result
      if (ok) return
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out after ${timeoutMillis}ms waiting for ${what}`))
      yield* Effect.sleep("25 millis")
    }
  })
