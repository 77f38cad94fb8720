/**
 * The Kubernetes objects droptailer reads, decoded with effect/Schema into slim records: only the
 * fields the IP index needs are kept (a full Pod is several KB; its slim record a few hundred
 * bytes), everything else is dropped at decode time.
 */
import { Result, Schema } from "effect"
import { canonicalIp } from "./ip.ts"

const OwnerReference = Schema.Struct({
  kind: Schema.String,
  name: Schema.String,
  controller: Schema.optionalKey(Schema.Boolean)
})

const ObjectMeta = Schema.Struct({
  name: Schema.String,
  namespace: Schema.optionalKey(Schema.String),
  uid: Schema.optionalKey(Schema.String),
  resourceVersion: Schema.optionalKey(Schema.String),
  creationTimestamp: Schema.optionalKey(Schema.NullOr(Schema.String)),
  ownerReferences: Schema.optionalKey(Schema.Array(OwnerReference))
})

const IpEntry = Schema.Struct({ ip: Schema.optionalKey(Schema.String) })

export const PodJson = Schema.Struct({
  metadata: ObjectMeta,
  spec: Schema.optionalKey(Schema.Struct({
    nodeName: Schema.optionalKey(Schema.String),
    hostNetwork: Schema.optionalKey(Schema.Boolean)
  })),
  status: Schema.optionalKey(Schema.Struct({
    phase: Schema.optionalKey(Schema.String),
    podIP: Schema.optionalKey(Schema.String),
    podIPs: Schema.optionalKey(Schema.NullOr(Schema.Array(IpEntry)))
  }))
})

export const ServiceJson = Schema.Struct({
  metadata: ObjectMeta,
  spec: Schema.optionalKey(Schema.Struct({
    clusterIP: Schema.optionalKey(Schema.String),
    clusterIPs: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String))),
    externalIPs: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String)))
  })),
  status: Schema.optionalKey(Schema.Struct({
    loadBalancer: Schema.optionalKey(Schema.Struct({
      ingress: Schema.optionalKey(Schema.NullOr(Schema.Array(IpEntry)))
    }))
  }))
})

export const NodeJson = Schema.Struct({
  metadata: ObjectMeta,
  status: Schema.optionalKey(Schema.Struct({
    addresses: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.Struct({ type: Schema.String, address: Schema.String }))))
  }))
})

/** ReplicaSets and Jobs: only who controls them. */
export const OwnedJson = Schema.Struct({ metadata: ObjectMeta })

/** The resourceVersion of any object (bookmarks included). */
export const MetaOnlyJson = Schema.Struct({
  metadata: Schema.Struct({ resourceVersion: Schema.optionalKey(Schema.String) })
})

export interface OwnerRef {
  readonly kind: string
  readonly name: string
}

export interface SlimPod {
  readonly uid: string
  readonly namespace: string
  readonly name: string
  readonly node: string | undefined
  readonly hostNetwork: boolean
  readonly phase: string
  /** Canonical IPs (status.podIPs, or status.podIP for old servers). */
  readonly ips: ReadonlyArray<string>
  readonly owner: OwnerRef | undefined
  /** Epoch microseconds of metadata.creationTimestamp (0 when unknown). */
  readonly createdAt: number
}

export interface SlimService {
  readonly namespace: string
  readonly name: string
  readonly ips: ReadonlyArray<string>
}

export interface SlimNode {
  readonly name: string
  readonly ips: ReadonlyArray<string>
}

export interface SlimOwned {
  readonly kind: "ReplicaSet" | "Job"
  readonly namespace: string
  readonly name: string
  readonly owner: OwnerRef | undefined
}

const controllerOf = (refs: ReadonlyArray<typeof OwnerReference.Type> | undefined): OwnerRef | undefined => {
  if (refs === undefined || refs.length === 0) return undefined
  const ref = refs.find((r) => r.controller === true) ?? refs[0]!
  return { kind: ref.kind, name: ref.name }
}

const canonicalAll = (ips: Iterable<string | undefined>): Array<string> => {
  const out: Array<string> = []
  for (const ip of ips) {
    if (ip === undefined || ip === "" || ip === "None") continue
    const canonical = canonicalIp(ip)
    if (canonical !== undefined && !out.includes(canonical)) out.push(canonical)
  }
  return out
}

const micros = (timestamp: string | null | undefined): number => {
  if (timestamp === undefined || timestamp === null) return 0
  const ms = Date.parse(timestamp)
  return Number.isNaN(ms) ? 0 : ms * 1000
}

const decodePodJson = Schema.decodeUnknownResult(PodJson)
const decodeServiceJson = Schema.decodeUnknownResult(ServiceJson)
const decodeNodeJson = Schema.decodeUnknownResult(NodeJson)
const decodeOwnedJson = Schema.decodeUnknownResult(OwnedJson)
const decodeMetaOnly = Schema.decodeUnknownResult(MetaOnlyJson)

/** A decoded object with its resourceVersion; `undefined` when the object does not decode. */
export interface Decoded<A> {
  readonly value: A
  readonly resourceVersion: string
}

export const toSlimPod = (raw: unknown): Decoded<SlimPod> | undefined => {
  const result = decodePodJson(raw)
  if (Result.isFailure(result)) return undefined
  const pod = result.success
  const meta = pod.metadata
  const status = pod.status
  return {
    resourceVersion: meta.resourceVersion ?? "",
    value: {
      uid: meta.uid ?? `${meta.namespace ?? ""}/${meta.name}`,
      namespace: meta.namespace ?? "default",
      name: meta.name,
      node: pod.spec?.nodeName,
      hostNetwork: pod.spec?.hostNetwork === true,
      phase: status?.phase ?? "Pending",
      ips: canonicalAll([...(status?.podIPs ?? []).map((e) => e.ip), status?.podIP]),
      owner: controllerOf(meta.ownerReferences),
      createdAt: micros(meta.creationTimestamp)
    }
  }
}

export const toSlimService = (raw: unknown): Decoded<SlimService> | undefined => {
  const result = decodeServiceJson(raw)
  if (Result.isFailure(result)) return undefined
  const svc = result.success
  return {
    resourceVersion: svc.metadata.resourceVersion ?? "",
    value: {
      namespace: svc.metadata.namespace ?? "default",
      name: svc.metadata.name,
      ips: canonicalAll([
        ...(svc.spec?.clusterIPs ?? []),
        svc.spec?.clusterIP,
        ...(svc.spec?.externalIPs ?? []),
        ...(svc.status?.loadBalancer?.ingress ?? []).map((e) => e.ip)
      ])
    }
  }
}

export const toSlimNode = (raw: unknown): Decoded<SlimNode> | undefined => {
  const result = decodeNodeJson(raw)
  if (Result.isFailure(result)) return undefined
  const node = result.success
  return {
    resourceVersion: node.metadata.resourceVersion ?? "",
    value: {
      name: node.metadata.name,
      ips: canonicalAll(
        (node.status?.addresses ?? [])
          .filter((a) => a.type === "InternalIP" || a.type === "ExternalIP")
          .map((a) => a.address)
      )
    }
  }
}

export const toSlimOwned = (kind: "ReplicaSet" | "Job") => (raw: unknown): Decoded<SlimOwned> | undefined => {
  const result = decodeOwnedJson(raw)
  if (Result.isFailure(result)) return undefined
  const meta = result.success.metadata
  return {
    resourceVersion: meta.resourceVersion ?? "",
    value: { kind, namespace: meta.namespace ?? "default", name: meta.name, owner: controllerOf(meta.ownerReferences) }
  }
}

/** resourceVersion of a bookmark (or any object). */
export const resourceVersionOf = (raw: unknown): string | undefined => {
  const result = decodeMetaOnly(raw)
  return Result.isSuccess(result) ? result.success.metadata.resourceVersion : undefined
}

/** The Status inside a watch ERROR event. */
export const WatchStatusJson = Schema.Struct({
  code: Schema.optionalKey(Schema.Number),
  reason: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String)
})
export const decodeWatchStatus = Schema.decodeUnknownResult(WatchStatusJson)
