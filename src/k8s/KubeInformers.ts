/**
 * The per-resource informers that feed the IP index — Pods, Services, Nodes, and what names a
 * pod's workload (ReplicaSets for their Deployment, Jobs for their CronJob; StatefulSets and
 * DaemonSets are named by the pod's own ownerReference, so they are not read) — and their sync
 * state for readiness.
 */
import { Context, Effect, Layer } from "effect"
import { type Informer, type InformerOptions, type InformerSpec, runInformer } from "./Informer.ts"
import { IpIndex, type IpIndexStore } from "./IpIndex.ts"
import { KubeClient } from "./KubeClient.ts"
import { KubeSettings } from "./KubeSettings.ts"
import {
  type SlimNode,
  type SlimOwned,
  type SlimPod,
  type SlimService,
  toSlimNode,
  toSlimOwned,
  toSlimPod,
  toSlimService
} from "./resources.ts"

const nowMicros = () => Date.now() * 1000

export const podInformer = (index: IpIndexStore): InformerSpec<SlimPod> => ({
  resource: "pods",
  path: "/api/v1/pods",
  decode: toSlimPod,
  key: (pod) => pod.uid,
  onUpsert: (pod) => index.upsertPod(pod),
  onDelete: (pod) => index.deletePod(pod, nowMicros())
})

export const serviceInformer = (index: IpIndexStore): InformerSpec<SlimService> => ({
  resource: "services",
  path: "/api/v1/services",
  decode: toSlimService,
  key: (svc) => `${svc.namespace}/${svc.name}`,
  onUpsert: (svc) => index.upsertService(svc),
  onDelete: (svc) => index.deleteService(svc)
})

export const nodeInformer = (index: IpIndexStore): InformerSpec<SlimNode> => ({
  resource: "nodes",
  path: "/api/v1/nodes",
  decode: toSlimNode,
  key: (node) => node.name,
  onUpsert: (node) => index.upsertNode(node),
  onDelete: (node) => index.deleteNode(node)
})

const ownedInformer = (index: IpIndexStore, kind: SlimOwned["kind"], resource: string, path: string): InformerSpec<SlimOwned> => ({
  resource,
  path,
  decode: toSlimOwned(kind),
  key: (owned) => `${owned.namespace}/${owned.name}`,
  onUpsert: (owned) => index.upsertOwned(owned),
  onDelete: (owned) => index.deleteOwned(owned),
  onRelisted: (keys) => index.forgetOwnedExcept(kind, keys)
})

export const replicaSetInformer = (index: IpIndexStore) =>
  ownedInformer(index, "ReplicaSet", "replicasets", "/apis/apps/v1/replicasets")

export const jobInformer = (index: IpIndexStore) => ownedInformer(index, "Job", "jobs", "/apis/batch/v1/jobs")

export interface InformerStatus {
  readonly resource: string
  readonly synced: boolean
  readonly watching: boolean
  readonly objects: number
}

export class KubeInformers extends Context.Service<KubeInformers, {
  /** True once every informer has listed once (for /readyz). */
  readonly synced: Effect.Effect<boolean>
  /** The same, synchronously (the enricher asks per event). */
  readonly isSynced: () => boolean
  /** Per resource: synced, currently watching, objects held. */
  readonly status: Effect.Effect<ReadonlyArray<InformerStatus>>
}>()("droptailer/k8s/KubeInformers") {
  /** Starts the informers in the layer's scope, feeding IpIndex. */
  static readonly layer: Layer.Layer<KubeInformers, never, KubeClient | IpIndex | KubeSettings> = Layer.effect(
    KubeInformers,
    Effect.gen(function*() {
      const index = yield* IpIndex
      const settings = yield* KubeSettings
      const options: InformerOptions = {
        backoffBaseMillis: settings.backoffBaseMillis,
        backoffMaxMillis: settings.backoffMaxMillis
      }
      const informers: ReadonlyArray<Informer> = [
        yield* runInformer(replicaSetInformer(index), options),
        yield* runInformer(jobInformer(index), options),
        yield* runInformer(nodeInformer(index), options),
        yield* runInformer(serviceInformer(index), options),
        yield* runInformer(podInformer(index), options)
      ]
      let all = false
      const isSynced = () => all || (all = informers.every((i) => i.hasSynced()))
      return KubeInformers.of({
        synced: Effect.sync(isSynced),
        isSynced,
        status: Effect.sync(() =>
          informers.map((i) => ({ resource: i.resource, synced: i.hasSynced(), watching: i.isWatching(), objects: i.size() }))
        )
      })
    })
  )

  /** No Kubernetes: nothing to sync, always ready. */
  static readonly layerNoop: Layer.Layer<KubeInformers> = Layer.succeed(
    KubeInformers,
    KubeInformers.of({ synced: Effect.succeed(true), isSynced: () => true, status: Effect.succeed([]) })
  )
}
