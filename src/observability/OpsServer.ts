/**
 * The operations endpoint of both processes: Prometheus `/metrics`, `/healthz`, `/readyz`.
 * Address from `DROPTAILER_METRICS_ADDRESS`: `host:port`, `:port`, `host:0` (a free port), or `off`.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Config, Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { Readiness } from "./Readiness.ts"

export type ListenAddress = { readonly _tag: "Off" } | { readonly _tag: "Listen"; readonly host: string; readonly port: number }

/** Parses `host:port`, `:port`, `[::1]:port` or `off`; undefined when it is none of them. */
export const parseListenAddress = (value: string): ListenAddress | undefined => {
  const text = value.trim()
  if (text === "off" || text === "false" || text === "disabled") return { _tag: "Off" }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text)
  if (match === null) return undefined
  const port = Number(match[3])
  if (port > 65535) return undefined
  const host = match[1] ?? match[2] ?? ""
  return { _tag: "Listen", host: host === "" ? "0.0.0.0" : host, port }
}

const ListenAddressString = Schema.String.check(
  Schema.makeFilter((value: string) =>
    parseListenAddress(value) !== undefined || "expected host:port, :port, host:0 (a free port) or off"
  )
)

/** `DROPTAILER_METRICS_ADDRESS`, validated at start-up. */
export const metricsAddressConfig = (defaultAddress: string): Config.Config<ListenAddress> =>
  Config.schema(ListenAddressString, "DROPTAILER_METRICS_ADDRESS").pipe(
    Config.withDefault(defaultAddress),
    Config.map((value) => parseListenAddress(value)!)
  )

const Routes = Layer.effectDiscard(Effect.gen(function*() {
  const router = yield* HttpRouter.HttpRouter
  const readiness = yield* Readiness
  yield* router.add("GET", "/healthz", HttpServerResponse.text("ok\n"))
  yield* router.add(
    "GET",
    "/readyz",
    Effect.map(readiness.report, (report) =>
      HttpServerResponse.jsonUnsafe(report, { status: report.ready ? 200 : 503 }))
  )
}))

/** The ops endpoint cannot listen (the address is taken, or not ours): start-up fails with this. */
export class OpsServerError extends Schema.TaggedError<OpsServerError>()("OpsServerError", {
  message: Schema.String
}) {}

const reason = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Serves the ops endpoints until the scope closes; logs the bound address. */
export const OpsServer = (address: ListenAddress): Layer.Layer<never, OpsServerError, Readiness> => {
  if (address._tag === "Off") return Layer.empty
  const app = Layer.mergeAll(Routes, PrometheusMetrics.layerHttp())
  const announce = Layer.effectDiscard(
    Effect.flatMap(HttpServer.HttpServer, (server) =>
      Effect.logInfo(`metrics, /healthz and /readyz on ${HttpServer.formatAddress(server.address)}`))
  )
  return Layer.mergeAll(HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }), announce).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { host: address.host, port: address.port })),
    Layer.catchTag("ServeError", (error) =>
      Layer.effectDiscard(Effect.fail(
        new OpsServerError({
          message: `DROPTAILER_METRICS_ADDRESS=${address.host}:${address.port}: cannot serve /metrics there (${reason(error.cause)})`
        })
      )))
  )
}
