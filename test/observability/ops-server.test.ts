import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Metric, Ref } from "effect"
import { metricsAddressConfig, OpsServer, parseListenAddress } from "../../src/observability/OpsServer.ts"
import { Readiness } from "../../src/observability/Readiness.ts"
import { freePort } from "../support/net.ts"

describe("DROPTAILER_METRICS_ADDRESS", () => {
  it("accepts host:port, :port, [v6]:port and off", () => {
    expect(parseListenAddress(":9090")).toEqual({ _tag: "Listen", host: "0.0.0.0", port: 9090 })
    expect(parseListenAddress("127.0.0.1:0")).toEqual({ _tag: "Listen", host: "127.0.0.1", port: 0 })
    expect(parseListenAddress("[::1]:9091")).toEqual({ _tag: "Listen", host: "::1", port: 9091 })
    expect(parseListenAddress("off")).toEqual({ _tag: "Off" })
    expect(parseListenAddress("9090")).toBeUndefined()
    expect(parseListenAddress("host:99999")).toBeUndefined()
  })

  it.effect("names the variable and what is wrong when invalid", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromUnknown({ DROPTAILER_METRICS_ADDRESS: "nine-thousand" })
      const error = yield* metricsAddressConfig(":9090").parse(provider).pipe(Effect.flip)
      expect(error.message).toContain("DROPTAILER_METRICS_ADDRESS")
      expect(error.message).toContain("expected host:port")
    }))
})

describe("the ops server", () => {
  it.live("serves Prometheus text whose counters match what was counted, and readiness from checks", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const synced = yield* Ref.make(false)
      const served = OpsServer({ _tag: "Listen", host: "127.0.0.1", port })
      yield* Effect.gen(function*() {
        const readiness = yield* Readiness
        yield* readiness.register({ name: "informers", ready: Ref.get(synced) })
        const counter = Metric.counter("droptailer_test_ops_total", { description: "test counter" })
        yield* Metric.update(counter, 7)

        const get = (path: string) =>
          Effect.promise(async () => {
            const response = await fetch(`http://127.0.0.1:${port}${path}`)
            return { status: response.status, body: await response.text() }
          })

        const metrics = yield* get("/metrics")
        expect(metrics.status).toBe(200)
        expect(metrics.body).toMatch(/^droptailer_test_ops_total 7$/m)
        expect(metrics.body).toContain("# TYPE droptailer_test_ops_total counter")

        expect((yield* get("/healthz")).status).toBe(200)
        const notReady = yield* get("/readyz")
        expect(notReady.status).toBe(503)
        expect(JSON.parse(notReady.body)).toEqual({ ready: false, checks: { informers: false } })

        yield* Ref.set(synced, true)
        const ready = yield* get("/readyz")
        expect(ready.status).toBe(200)
        expect(JSON.parse(ready.body).ready).toBe(true)
      }).pipe(Effect.provide(Layer.provideMerge(served, Readiness.layer)))
    }))
})
