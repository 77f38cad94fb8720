/**
 * Picking real vs no-op Kubernetes from the environment: KUBECONFIG (here: a kubeconfig file for
 * the test server), none at all (no-op, said once), and configuration errors naming the variable.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Enricher } from "../../src/k8s/Enricher.ts"
import { EventsSink } from "../../src/k8s/EventsSink.ts"
import { kubernetesLayer } from "../../src/k8s/Kubernetes.ts"
import { drop, eventually, kubeApiServer, pod } from "../support/kube-fixtures.ts"

const build = (env: Record<string, string>) =>
  Layer.build(kubernetesLayer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))))

describe("the Kubernetes layer picks real or no-op from the environment", () => {
  it.live("KUBECONFIG → real informers and Events against that cluster", () =>
    Effect.gen(function*() {
      const server = yield* kubeApiServer()
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "droptailer-kubeconfig-"))),
        (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
      )
      server.add("pods", pod({ name: "web-1", namespace: "shop", ips: ["10.2.0.5"] }))
      const kubeconfig = server.writeKubeconfig(join(dir, "config"))
      const context = yield* build({ KUBECONFIG: kubeconfig, DROPTAILER_EVENTS_FLUSH_INTERVAL: "200ms" })
      const enricher = Context.get(context, Enricher)
      yield* eventually(() => enricher.synced, 10_000, "synced")
      const event = enricher.enrich(drop({ src: "10.2.0.5", dst: "1.1.1.1" }))
      expect(event.src.name).toBe("web-1")
      yield* Context.get(context, EventsSink).offer(event)
      yield* eventually(() => server.list("events").length === 1, 5000, "an Event")
    }))

  it.live("neither in-cluster config nor KUBECONFIG → events pass unchanged, no Events, ready", () =>
    Effect.gen(function*() {
      const context = yield* build({})
      const enricher = Context.get(context, Enricher)
      const event = drop({ src: "10.2.0.5", dst: "1.1.1.1" })
      expect(enricher.enrich(event)).toBe(event)
      expect(yield* enricher.synced).toBe(true)
      expect((yield* Context.get(context, EventsSink).stats).offered).toBe(0)
    }))

  it.live("configuration errors name the variable", () =>
    Effect.gen(function*() {
      const required = yield* build({ DROPTAILER_KUBERNETES: "true" }).pipe(Effect.flip)
      expect(required.variable).toBe("DROPTAILER_KUBERNETES")
      const missingFile = yield* build({ KUBECONFIG: "/nonexistent/kubeconfig" }).pipe(Effect.flip)
      expect(missingFile.variable).toBe("KUBECONFIG")
      expect(missingFile.message).toContain("/nonexistent/kubeconfig")
      const badQps = yield* build({ DROPTAILER_EVENTS_QPS: "-1" }).pipe(Effect.flip)
      expect(badQps.variable).toBe("DROPTAILER_EVENTS_QPS")
      const off = yield* build({ DROPTAILER_KUBERNETES: "false", KUBECONFIG: "/nonexistent/kubeconfig" })
      const event = drop({ src: "10.2.0.5", dst: "1.1.1.1" })
      expect(Context.get(off, Enricher).enrich(event)).toBe(event)
    }))
})
