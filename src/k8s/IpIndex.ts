/**
 * IP → what the cluster knows about it: pod, service or node, from plain Maps keyed by canonical
 * IP text (see ip.ts), fed by the informers and read by the enricher for every event endpoint.
 *
 * - Pods: every IP of status.podIPs (IPv4 and IPv6). Pods with hostNetwork share their node's IP
 *   and are not indexed by it: that IP resolves to the node.
 * - Services: spec.clusterIPs, spec.externalIPs, status.loadBalancer.ingress[].ip.
 * - Nodes: status.addresses of type InternalIP and ExternalIP.
 * - Precedence when an IP is known several ways: pod, then service, then node.
 * - IP reuse: a deleted pod is kept as a tombstone for the grace period and still resolves for
 *   events older than its deletion; among the pods holding an IP, one that existed at the
 *   event's timestamp wins, then a running one over a finished one (Succeeded/Failed), then the
 *   newest.
 * - Workloads: a pod's controller owner, followed one step for ReplicaSet → Deployment and
 *   Job → CronJob (StatefulSet, DaemonSet and others name the workload themselves).
 *
 * Each pod/service/node carries a prebuilt enrichment with an endpoint builder; a lookup is one
 * Map get (all kinds share one slot per IP) and allocates nothing.
 */
import { Context, Effect, Layer, Schedule } from "effect"
import type { Endpoint } from "../domain/DropEvent.ts"
import type { OwnerRef, SlimNode, SlimOwned, SlimPod, SlimService } from "./resources.ts"
import { KubeSettings } from "./KubeSettings.ts"

/** What the enricher adds to an endpoint (a subset of the DropEvent `Endpoint`). */
export interface EnrichmentData {
  readonly kind: "pod" | "service" | "node"
  readonly namespace?: string | undefined
  readonly name: string
  readonly workload?: { readonly kind: string; readonly name: string } | undefined
  readonly node?: string | undefined
}

export interface Enrichment extends EnrichmentData {
  /**
   * The enriched endpoint for an IP and port, built as an object literal of a fixed shape: about
   * six times faster than spreading the enrichment into `{ ip, port }`.
   */
  readonly endpoint: (ip: string, port: number | undefined) => Endpoint
  /** The owners version a pod's enrichment was built at (+Infinity: never stale). */
  readonly version: number
}

/** One hidden class for every enrichment (the lookup reads `version` from whatever it finds). */
class EnrichmentRecord implements Enrichment {
  readonly kind: "pod" | "service" | "node"
  readonly namespace: string | undefined
  readonly name: string
  readonly workload: { readonly kind: string; readonly name: string } | undefined
  readonly node: string | undefined
  readonly endpoint: (ip: string, port: number | undefined) => Endpoint
  readonly version: number
  constructor(data: EnrichmentData, endpoint: (ip: string, port: number | undefined) => Endpoint, version: number) {
    this.kind = data.kind
    this.namespace = data.namespace
    this.name = data.name
    this.workload = data.workload
    this.node = data.node
    this.endpoint = endpoint
    this.version = version
  }
}

/** Builds an Enrichment with its endpoint builder (one literal shape per combination of keys). */
export const makeEnrichment = (data: EnrichmentData, version = Number.POSITIVE_INFINITY): Enrichment => {
  const { kind, namespace, name, workload, node } = data
  let endpoint: (ip: string, port: number | undefined) => Endpoint
  if (namespace !== undefined && workload !== undefined && node !== undefined) {
    endpoint = (ip, port) =>
      port === undefined
        ? { ip, kind, namespace, name, workload, node }
        : { ip, port, kind, namespace, name, workload, node }
  } else if (namespace !== undefined && node !== undefined) {
    endpoint = (ip, port) =>
      port === undefined ? { ip, kind, namespace, name, node } : { ip, port, kind, namespace, name, node }
  } else if (namespace !== undefined && workload !== undefined) {
    endpoint = (ip, port) =>
      port === undefined ? { ip, kind, namespace, name, workload } : { ip, port, kind, namespace, name, workload }
  } else if (namespace !== undefined) {
    endpoint = (ip, port) => (port === undefined ? { ip, kind, namespace, name } : { ip, port, kind, namespace, name })
  } else if (node !== undefined) {
    endpoint = (ip, port) => (port === undefined ? { ip, kind, name, node } : { ip, port, kind, name, node })
  } else {
    endpoint = (ip, port) => (port === undefined ? { ip, kind, name } : { ip, port, kind, name })
  }
  return new EnrichmentRecord(data, endpoint, version)
}

interface PodEntry {
  pod: SlimPod
  /** Epoch microseconds when the informer saw it deleted; undefined while it exists. */
  deletedAt: number | undefined
  enrichment: Enrichment | undefined
  enrichmentVersion: number
}

interface ServiceEntry {
  readonly service: SlimService
  readonly enrichment: Enrichment
}

interface NodeEntry {
  readonly node: SlimNode
  readonly enrichment: Enrichment
}

/** Everything indexed under one IP. */
class IpSlot {
  pods: PodEntry | Array<PodEntry> | undefined = undefined
  services: ServiceEntry | Array<ServiceEntry> | undefined = undefined
  node: NodeEntry | undefined = undefined
  /** Always stale: an answer that is a slot means "resolve with the event's timestamp". */
  readonly version = -1
}

const finished = (phase: string) => phase === "Succeeded" || phase === "Failed"

const podKey = (namespace: string, name: string) => `${namespace}/${name}`

/** The index itself: plain data structures, synchronous, no Effect (the bench uses it directly). */
export class IpIndexStore {
  /** Deleted pods resolve for older events during this long (microseconds). */
  readonly graceMicros: number
  private readonly podsByUid = new Map<string, PodEntry>()
  private readonly podsByName = new Map<string, PodEntry>()
  /** Everything known per IP (changed by the informers). */
  private readonly byIp = new Map<string, IpSlot>()
  /**
   * What the lookup reads: per IP either the answer for any timestamp (one live pod, or no pod:
   * its service or node) — one Map get, one field read — or the slot when the answer depends on
   * the event's timestamp (IP reuse, tombstones) or is not computed yet.
   */
  private readonly answers = new Map<string, Enrichment | IpSlot>()
  private readonly services = new Map<string, ServiceEntry>()
  private readonly nodes = new Map<string, NodeEntry>()
  private readonly owners = new Map<string, OwnerRef | undefined>()
  /** Bumped when owners change: cached pod enrichments are rebuilt lazily. */
  private ownersVersion = 0

  constructor(options: { readonly graceMillis: number }) {
    this.graceMicros = options.graceMillis * 1000
  }

  // ---- lookups (hot path) ------------------------------------------------------------------

  /** What `ip` (canonical) was at `timestamp` (epoch microseconds), or undefined. */
  lookup(ip: string, timestamp: number): Enrichment | undefined {
    const answer = this.answers.get(ip)
    if (answer === undefined) return undefined
    if (answer.version >= this.ownersVersion) return answer as Enrichment
    return this.resolve(ip, timestamp)
  }

  private resolve(ip: string, timestamp: number): Enrichment | undefined {
    const slot = this.byIp.get(ip)
    if (slot === undefined) return undefined
    const pods = slot.pods
    if (pods !== undefined) {
      if (!Array.isArray(pods) && pods.deletedAt === undefined) {
        const enrichment = this.podEnrichment(pods)
        this.answers.set(ip, enrichment)
        return enrichment
      }
      // (the answer for this IP is the slot already: every change that made it so put it there)
      const entry = Array.isArray(pods) ? this.choose(pods, timestamp) : this.single(pods, timestamp)
      if (entry !== undefined) return this.podEnrichment(entry)
    }
    const services = slot.services
    const found = services !== undefined
      ? Array.isArray(services) ? services[0]!.enrichment : services.enrichment
      : slot.node === undefined
      ? undefined
      : slot.node.enrichment
    if (pods === undefined && found !== undefined) this.answers.set(ip, found)
    return found
  }

  /** The uid of a pod that exists (for Events' involvedObject). */
  podUid(namespace: string, name: string): string | undefined {
    const entry = this.podsByName.get(podKey(namespace, name))
    return entry === undefined ? undefined : entry.pod.uid
  }

  private single(entry: PodEntry, timestamp: number): PodEntry | undefined {
    return entry.deletedAt === undefined || timestamp < entry.deletedAt ? entry : undefined
  }

  private choose(entries: ReadonlyArray<PodEntry>, timestamp: number): PodEntry | undefined {
    let best: PodEntry | undefined
    let bestScore = -1
    for (const entry of entries) {
      if (entry.deletedAt !== undefined && timestamp >= entry.deletedAt) continue
      const existed = entry.pod.createdAt <= timestamp ? 2 : 0
      const running = finished(entry.pod.phase) ? 0 : 1
      const score = existed + running
      if (score > bestScore || (score === bestScore && best !== undefined && entry.pod.createdAt > best.pod.createdAt)) {
        best = entry
        bestScore = score
      }
    }
    return best
  }

  private podEnrichment(entry: PodEntry): Enrichment {
    if (entry.enrichment !== undefined && entry.enrichmentVersion === this.ownersVersion) return entry.enrichment
    const pod = entry.pod
    const workload = this.workloadOf(pod)
    const enrichment = makeEnrichment({
      kind: "pod",
      namespace: pod.namespace,
      name: pod.name,
      ...(workload === undefined ? {} : { workload: { kind: workload.kind, name: workload.name } }),
      ...(pod.node === undefined ? {} : { node: pod.node })
    }, this.ownersVersion)
    entry.enrichment = enrichment
    entry.enrichmentVersion = this.ownersVersion
    return enrichment
  }

  /** The workload behind a pod: its controller, one step up for ReplicaSet and Job. */
  workloadOf(pod: SlimPod): OwnerRef | undefined {
    const owner = pod.owner
    if (owner === undefined) return undefined
    if (owner.kind === "ReplicaSet" || owner.kind === "Job") {
      const parent = this.owners.get(`${owner.kind}/${pod.namespace}/${owner.name}`)
      if (parent !== undefined && (parent.kind === "Deployment" || parent.kind === "CronJob")) return parent
    }
    return owner
  }

  // ---- updates (from informers) ------------------------------------------------------------

  upsertPod(pod: SlimPod): void {
    const existing = this.podsByUid.get(pod.uid)
    if (existing !== undefined) {
      this.unindexPod(existing)
      existing.pod = pod
      existing.deletedAt = undefined
      existing.enrichment = undefined
      this.indexPod(existing)
      return
    }
    const entry: PodEntry = { pod, deletedAt: undefined, enrichment: undefined, enrichmentVersion: -1 }
    this.podsByUid.set(pod.uid, entry)
    this.indexPod(entry)
  }

  /** Marks a pod deleted at `now` (microseconds): it keeps resolving for older events for the grace period. */
  deletePod(pod: SlimPod, now: number): void {
    const entry = this.podsByUid.get(pod.uid)
    if (entry === undefined || entry.deletedAt !== undefined) return
    entry.deletedAt = now
    for (const ip of entry.pod.ips) {
      const slot = this.byIp.get(ip)
      if (slot !== undefined) this.answers.set(ip, slot)
    }
    const key = podKey(entry.pod.namespace, entry.pod.name)
    if (this.podsByName.get(key) === entry) this.podsByName.delete(key)
    if (this.graceMicros <= 0) this.removePod(entry)
  }

  /** Drops tombstones older than the grace period. Returns how many went. */
  prune(now: number): number {
    let removed = 0
    for (const entry of this.podsByUid.values()) {
      if (entry.deletedAt !== undefined && now - entry.deletedAt >= this.graceMicros) {
        this.removePod(entry)
        removed++
      }
    }
    return removed
  }

  private removePod(entry: PodEntry): void {
    this.unindexPod(entry)
    this.podsByUid.delete(entry.pod.uid)
  }

  private indexPod(entry: PodEntry): void {
    const pod = entry.pod
    if (entry.deletedAt === undefined) this.podsByName.set(podKey(pod.namespace, pod.name), entry)
    if (pod.hostNetwork) return
    for (const ip of pod.ips) {
      const slot = this.slot(ip)
      const current = slot.pods
      if (current === undefined) slot.pods = entry
      else if (Array.isArray(current)) current.push(entry)
      else if (current !== entry) slot.pods = [current, entry]
    }
  }

  private unindexPod(entry: PodEntry): void {
    const pod = entry.pod
    const key = podKey(pod.namespace, pod.name)
    if (this.podsByName.get(key) === entry) this.podsByName.delete(key)
    for (const ip of pod.ips) {
      const slot = this.byIp.get(ip)
      if (slot === undefined) continue
      const current = slot.pods
      if (current === entry) slot.pods = undefined
      else if (Array.isArray(current)) {
        const rest = current.filter((e) => e !== entry)
        slot.pods = rest.length === 0 ? undefined : rest.length === 1 ? rest[0]! : rest
      }
      this.release(ip, slot)
    }
  }

  /** The slot of an IP, for a change: its cached answer is cleared. */
  private slot(ip: string): IpSlot {
    let slot = this.byIp.get(ip)
    if (slot === undefined) {
      slot = new IpSlot()
      this.byIp.set(ip, slot)
    }
    this.answers.set(ip, slot)
    return slot
  }

  private release(ip: string, slot: IpSlot): void {
    if (slot.pods === undefined && slot.services === undefined && slot.node === undefined) {
      this.byIp.delete(ip)
      this.answers.delete(ip)
    } else {
      this.answers.set(ip, slot)
    }
  }

  upsertService(service: SlimService): void {
    const key = `${service.namespace}/${service.name}`
    this.deleteService(service)
    const entry: ServiceEntry = {
      service,
      enrichment: makeEnrichment({ kind: "service", namespace: service.namespace, name: service.name })
    }
    this.services.set(key, entry)
    for (const ip of service.ips) {
      const slot = this.slot(ip)
      const current = slot.services
      if (current === undefined) slot.services = entry
      else if (Array.isArray(current)) current.push(entry)
      else slot.services = [current, entry]
    }
  }

  deleteService(service: Pick<SlimService, "namespace" | "name">): void {
    const key = `${service.namespace}/${service.name}`
    const entry = this.services.get(key)
    if (entry === undefined) return
    this.services.delete(key)
    for (const ip of entry.service.ips) {
      const slot = this.byIp.get(ip)
      if (slot === undefined) continue
      const current = slot.services
      if (current === entry) slot.services = undefined
      else if (Array.isArray(current)) {
        const rest = current.filter((e) => e !== entry)
        slot.services = rest.length === 0 ? undefined : rest.length === 1 ? rest[0]! : rest
      }
      this.release(ip, slot)
    }
  }

  upsertNode(node: SlimNode): void {
    this.deleteNode(node)
    const entry: NodeEntry = { node, enrichment: makeEnrichment({ kind: "node", name: node.name, node: node.name }) }
    this.nodes.set(node.name, entry)
    for (const ip of node.ips) this.slot(ip).node = entry
  }

  deleteNode(node: Pick<SlimNode, "name">): void {
    const entry = this.nodes.get(node.name)
    if (entry === undefined) return
    this.nodes.delete(node.name)
    for (const ip of entry.node.ips) {
      const slot = this.byIp.get(ip)
      if (slot === undefined || slot.node !== entry) continue
      slot.node = undefined
      this.release(ip, slot)
    }
  }

  upsertOwned(owned: SlimOwned): void {
    const key = `${owned.kind}/${owned.namespace}/${owned.name}`
    const existed = this.owners.has(key)
    const before = this.owners.get(key)
    this.owners.set(key, owned.owner)
    // ReplicaSets and Jobs change often (status); their controller almost never: only a new
    // parent invalidates the cached pod enrichments.
    if (!existed || before?.kind !== owned.owner?.kind || before?.name !== owned.owner?.name) {
      this.ownersVersion++
    }
  }

  deleteOwned(owned: Pick<SlimOwned, "kind" | "namespace" | "name">): void {
    // Pods of a deleted ReplicaSet/Job (normally deleted with it) fall back to naming it.
    if (this.owners.delete(`${owned.kind}/${owned.namespace}/${owned.name}`)) this.ownersVersion++
  }

  /** Replaces the owner map (after a re-list). */
  forgetOwnedExcept(kind: SlimOwned["kind"], keep: ReadonlySet<string>): void {
    for (const key of this.owners.keys()) {
      if (key.startsWith(`${kind}/`) && !keep.has(key.slice(kind.length + 1))) this.owners.delete(key)
    }
    this.ownersVersion++
  }

  get sizes(): { pods: number; tombstones: number; ips: number; services: number; nodes: number; owners: number } {
    let tombstones = 0
    for (const entry of this.podsByUid.values()) if (entry.deletedAt !== undefined) tombstones++
    return {
      pods: this.podsByUid.size - tombstones,
      tombstones,
      ips: this.byIp.size,
      services: this.services.size,
      nodes: this.nodes.size,
      owners: this.owners.size
    }
  }
}

export class IpIndex extends Context.Service<IpIndex, IpIndexStore>()("droptailer/k8s/IpIndex") {
  /** An empty index with the grace period from KubeSettings; tombstones pruned every 10 s. */
  static readonly layer: Layer.Layer<IpIndex, never, KubeSettings> = Layer.effect(
    IpIndex,
    Effect.gen(function*() {
      const settings = yield* KubeSettings
      const store = new IpIndexStore({ graceMillis: settings.podGracePeriodMillis })
      yield* Effect.sync(() => store.prune(Date.now() * 1000)).pipe(
        Effect.repeat(Schedule.spaced("10 seconds")),
        Effect.forkScoped
      )
      return store
    })
  )
}
