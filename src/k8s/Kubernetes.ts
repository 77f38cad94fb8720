/**
 * The Kubernetes side of the server as one layer: IpIndex fed by the informers, the Enricher,
 * the Events sink, and the informers' readiness — or, when there is no cluster to talk to, the
 * no-op versions, said ONCE at start-up.
 *
 * Picks: DROPTAILER_KUBERNETES=false → off. Otherwise KUBECONFIG when set, else the in-cluster
 * service account (KUBERNETES_SERVICE_HOST/PORT + token file). Neither: off with one warning
 * (or a start-up error naming DROPTAILER_KUBERNETES when it is `true`).
 */
import { Effect, Layer, Option } from "effect"
import { Enricher } from "./Enricher.ts"
import { EventsSink } from "./EventsSink.ts"
import { IpIndex } from "./IpIndex.ts"
import { detectKubeConfig, KubeClient } from "./KubeClient.ts"
import { KubeInformers } from "./KubeInformers.ts"
import { KubeSettings, KubeSettingsError, type KubeSettingsShape, loadKubeSettings } from "./KubeSettings.ts"

export type KubernetesServices = Enricher | EventsSink | KubeInformers

/** The real services over a given client (tests pass `KubeClient.layerUrl(...)`). */
export const kubernetesLayerWith = (
  client: Layer.Layer<KubeClient>,
  settings: KubeSettingsShape
): Layer.Layer<KubernetesServices | IpIndex> => {
  const base = Layer.mergeAll(Layer.succeed(KubeSettings, KubeSettings.of(settings)), client)
  const core = Layer.mergeAll(KubeInformers.layer, EventsSink.layer).pipe(
    Layer.provideMerge(IpIndex.layer),
    Layer.provide(base)
  )
  return Enricher.layer.pipe(Layer.provideMerge(core))
}

/** Without Kubernetes: events pass unchanged, no Events, always ready. */
export const kubernetesLayerNoop: Layer.Layer<KubernetesServices> = Layer.mergeAll(
  Enricher.layerNoop,
  EventsSink.layerNoop,
  KubeInformers.layerNoop
)

/** From the environment: real when a cluster is configured, no-op (said once) when not. */
export const kubernetesLayer: Layer.Layer<KubernetesServices, KubeSettingsError> = Layer.unwrap(
  Effect.gen(function*() {
    const settings = yield* loadKubeSettings
    if (settings.mode === "false") {
      yield* Effect.logInfo("Kubernetes enrichment and Events are off (DROPTAILER_KUBERNETES=false)")
      return kubernetesLayerNoop
    }
    const detected = yield* detectKubeConfig
    if (Option.isNone(detected)) {
      if (settings.mode === "true") {
        return yield* new KubeSettingsError({
          variable: "DROPTAILER_KUBERNETES",
          message: "DROPTAILER_KUBERNETES=true, but there is neither an in-cluster service account nor KUBECONFIG"
        })
      }
      yield* Effect.logWarning(
        "no in-cluster Kubernetes config and no KUBECONFIG: running without Kubernetes enrichment and Events"
      )
      return kubernetesLayerNoop
    }
    const { kc, source } = detected.value
    yield* Effect.logInfo(`Kubernetes enrichment and Events via ${kc.getCurrentCluster()?.server} (${source})`).pipe(
      Effect.annotateLogs({ events: settings.events, eventsForAccepts: settings.eventsForAccepts })
    )
    return kubernetesLayerWith(KubeClient.layerKubeConfig(kc, source), settings)
  })
)
