/**
 * The server (`droptailer server`): receives events over gRPC with mutual TLS, enriches them from Kubernetes,
 * prints one line per event on stdout, posts PacketDrop Events, and serves /metrics, /healthz and
 * /readyz. Every setting is read and checked before anything starts; a bad one exits 1 with a
 * message naming the variable. Logs go to stderr: stdout carries only events.
 */
import { Effect, Layer } from "effect"
import type { OutputFormat } from "../domain/Format.ts"
import { Enricher } from "../k8s/Enricher.ts"
import { kubernetesLayer } from "../k8s/Kubernetes.ts"
import { asCommand } from "./Startup.ts"
import { metricsAddressConfig, OpsServer } from "../observability/OpsServer.ts"
import { Readiness } from "../observability/Readiness.ts"
import { serverPipelineLayer } from "../server/ServerPipeline.ts"
import { outputFormatConfig, StdoutIngestHandler } from "../server/StdoutIngestHandler.ts"
import { IngestServer } from "../transport/IngestServer.ts"
import { ingestServerConfig, type IngestServerConfig } from "../transport/ServerConfig.ts"
import { loadTlsMaterial } from "../transport/Tls.ts"

/** /readyz reports whether the Kubernetes informers have synced (always true without Kubernetes). */
const kubernetesReadiness = Layer.effectDiscard(Effect.gen(function*() {
  const readiness = yield* Readiness
  const enricher = yield* Enricher
  yield* readiness.register({ name: "kubernetes", ready: enricher.synced })
}))

/**
 * The server's event path for explicit settings: the gRPC ingest server (enrich → stdout line →
 * Events) and the Kubernetes readiness check. Needs `Readiness` and the Kubernetes services; the
 * demo reuses it.
 */
export const ingestLayer = (config: IngestServerConfig, format: OutputFormat) =>
  Layer.mergeAll(
    IngestServer.layerConfig(config).pipe(Layer.provide(serverPipelineLayer(StdoutIngestHandler.layerTo(process.stdout, format)))),
    kubernetesReadiness
  )

/**
 * The Kubernetes services, built now in the current scope: reading their settings (and saying
 * once whether there is a cluster) is part of start-up.
 */
export const buildKubernetes = Layer.build(kubernetesLayer).pipe(Effect.map(Layer.succeedContext))

/** All of the server, assembled in one place; the settings were checked before. */
export const serverLayer = Effect.gen(function*() {
  const config = yield* ingestServerConfig
  yield* loadTlsMaterial(config.tls)
  const format = yield* outputFormatConfig
  const metricsAddress = yield* metricsAddressConfig(":9090")
  const kubernetes = yield* buildKubernetes
  return Layer.mergeAll(ingestLayer(config, format), OpsServer(metricsAddress)).pipe(
    Layer.provide(Readiness.layer),
    Layer.provide(kubernetes)
  )
})

export const runServer = Effect.scoped(
  Effect.gen(function*() {
    const layer = yield* serverLayer
    return yield* Layer.launch(layer)
  })
).pipe(asCommand("droptailer server cannot start"))
