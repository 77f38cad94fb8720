/**
 * `droptailer demo` (`npm start`): server and client in ONE process on this machine, over loopback
 * gRPC with mutual TLS, so a newcomer sees a drop within seconds.
 *
 * - Certificates are made fresh in memory and written (the TLS loaders read files) into a private
 *   temp dir (0700), together with the client's checkpoint; the dir is removed on exit.
 * - The server listens on 127.0.0.1, an ephemeral port, and prints the enriched events as JSON lines
 *   on stdout (DROPTAILER_OUTPUT_FORMAT is honoured). With a KUBECONFIG (or in a cluster) it enriches
 *   from that cluster; without one it says so once.
 * - The client follows this machine's journal (SYSLOG_IDENTIFIER=kernel) from now on (`new`: no
 *   replay of old lines) and ships through the Shipper. Without journald (no
 *   /run/systemd/journal/socket, or journalctl missing or failing) — or with
 *   DROPTAILER_DEMO_INPUT=stdin — it reads kernel lines from stdin instead (one message per line,
 *   timestamp now, host os.hostname()) and ships them the same way; at the end of input it stops.
 * - One ops endpoint (/metrics of both sides, /healthz, /readyz) on DROPTAILER_METRICS_ADDRESS,
 *   default 127.0.0.1:9090 (when that is taken: a free port, said in a warning).
 * SIGINT / SIGTERM stop it cleanly (exit 0): the client flushes, then the server drains.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Config, Context, Effect, Layer, Stream } from "effect"
import { loadClientConfig } from "../client/ClientConfig.ts"
import { ClientPipeline } from "../client/ClientPipeline.ts"
import { EventSink, type OutgoingEvent } from "../client/EventSink.ts"
import { parseLine, type Prefixes } from "../domain/Parser.ts"
import { asCommand } from "./Startup.ts"
import { logThrottled } from "../observability/LogThrottle.ts"
import { type ListenAddress, metricsAddressConfig, OpsServer } from "../observability/OpsServer.ts"
import { Readiness } from "../observability/Readiness.ts"
import { outputFormatConfig } from "../server/StdoutIngestHandler.ts"
import { makeCertSet, writeCertSet } from "../transport/Certs.ts"
import { shipperConfig } from "../transport/ClientConfig.ts"
import { IngestServer } from "../transport/IngestServer.ts"
import { ingestServerConfig } from "../transport/ServerConfig.ts"
import { Shipper } from "../transport/Shipper.ts"
import { clientLayer } from "./Client.ts"
import { buildKubernetes, ingestLayer } from "./Server.ts"

/** `auto` (the journal when journald is there, else stdin), `journal`, or `stdin`. */
const demoInputConfig = Config.Literals(["auto", "journal", "stdin"], "DROPTAILER_DEMO_INPUT").pipe(
  Config.withDefault("auto" as const)
)

const exampleLine =
  "nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=59265 DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0"

/** Why this machine's journal cannot be followed; undefined when it can. */
const journaldMissing = (journalctl: string): string | undefined => {
  if (!existsSync("/run/systemd/journal/socket")) return "no systemd-journald here (/run/systemd/journal/socket is missing)"
  const probe = spawnSync(journalctl, ["-n", "0", "-q", "--no-pager"], { stdio: "ignore", timeout: 10_000 })
  if (probe.error !== undefined) return `${journalctl} cannot run (${probe.error.message})`
  if (probe.status !== 0) return `${journalctl} fails (exit ${probe.status ?? probe.signal})`
  return undefined
}

/** A private directory (0700) for the certificates and the checkpoint, removed when the scope closes. */
const privateTempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "droptailer-demo-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Kernel lines from stdin (one message per line) → events shipped through `sink`, until end of input. */
const shipStdin = (prefixes: Prefixes, sink: EventSink["Service"]) => {
  const host = hostname()
  const run = `${process.pid.toString(36)}-${Date.now().toString(36)}`
  let n = 0
  return NodeStream.fromReadable({ evaluate: () => process.stdin, closeOnDone: false }).pipe(
    Stream.decodeText(),
    Stream.splitLines,
    Stream.mapEffect((line): Effect.Effect<ReadonlyArray<OutgoingEvent>> => {
      const message = line.endsWith("\r") ? line.slice(0, -1) : line
      if (message.trim() === "") return Effect.succeed<ReadonlyArray<OutgoingEvent>>([])
      const result = parseLine(message, prefixes, { timestamp: Date.now() * 1000, host })
      switch (result._tag) {
        case "Event":
          return Effect.succeed([{ id: `demo-${run}-${++n}`, message, event: result.event }])
        case "Skipped":
          return Effect.as(logThrottled("Info", "demo.stdin-skipped", `not a drop/accept line: ${result.reason}`), [])
        case "Malformed":
          return Effect.as(logThrottled("Warning", "demo.stdin-malformed", `malformed firewall log line: ${result.reason}`), [])
      }
    }),
    Stream.flattenIterable,
    Stream.groupedWithin(500, 100),
    Stream.runForEach((batch) => sink.deliver(batch)),
    Effect.catch((error) => Effect.logWarning(`reading stdin failed: ${String(error)}`)),
    Effect.andThen(Effect.logInfo("end of input"))
  )
}

export const runDemo = Effect.scoped(Effect.gen(function*() {
  const input = yield* demoInputConfig
  const client = yield* loadClientConfig
  const format = yield* outputFormatConfig
  const metricsAddress = yield* metricsAddressConfig("127.0.0.1:9090")
  const journalctl = client.journal.journalctl ?? "journalctl"
  let useStdin = input === "stdin"
  if (input !== "stdin") {
    const missing = journaldMissing(journalctl)
    if (missing !== undefined && input === "journal") {
      return yield* Effect.fail(new Error(`DROPTAILER_DEMO_INPUT=journal, but ${missing}`))
    }
    if (missing !== undefined) {
      yield* Effect.logWarning(`${missing}: reading kernel log lines from stdin instead`)
      useStdin = true
    }
  }

  const dir = yield* privateTempDir
  const certs = yield* makeCertSet({ serverDns: ["droptailer"], serverIps: ["127.0.0.1"] })
  const written = yield* writeCertSet(join(dir, "certs"), certs)

  // the server: ingest on loopback, an ephemeral port, and the one ops endpoint of the process
  const kubernetes = yield* buildKubernetes
  const readiness = yield* Layer.build(Readiness.layer).pipe(Effect.map(Layer.succeedContext))
  const server = yield* Layer.build(
    ingestLayer({
      ...(yield* ingestServerConfig),
      port: 0,
      listenHost: "127.0.0.1",
      shutdownTimeoutMillis: 3000,
      tls: {
        ca: { variable: "SERVER_CA_CERTIFICATE", path: join(written.serverDir, "ca.crt") },
        cert: { variable: "SERVER_CERTIFICATE", path: join(written.serverDir, "tls.crt") },
        key: { variable: "SERVER_KEY", path: join(written.serverDir, "tls.key") }
      }
    }, format).pipe(Layer.provide(readiness), Layer.provide(kubernetes))
  )
  const port = Context.get(server, IngestServer).port
  const ops = (address: ListenAddress) => Layer.build(OpsServer(address).pipe(Layer.provide(readiness)))
  // a newcomer may well run Prometheus on 9090: take a free port rather than give up
  yield* ops(metricsAddress).pipe(
    Effect.catchTag("OpsServerError", (error) =>
      Effect.andThen(
        Effect.logWarning(`${error.message}; using a free port instead`),
        ops({ _tag: "Listen", host: "127.0.0.1", port: 0 })
      ))
  )

  // the client: the Shipper to that port (built after the server, so it stops first)
  const sink = yield* Layer.build(Shipper.layerConfig({
    ...(yield* shipperConfig),
    address: `127.0.0.1:${port}`,
    serverName: "droptailer",
    tls: {
      ca: { variable: "DROPTAILER_CA_CERTIFICATE", path: join(written.clientDir, "ca.crt") },
      cert: { variable: "DROPTAILER_CLIENT_CERTIFICATE", path: join(written.clientDir, "tls.crt") },
      key: { variable: "DROPTAILER_CLIENT_KEY", path: join(written.clientDir, "tls.key") }
    }
  }))

  if (useStdin) {
    yield* Effect.logInfo(
      `demo ready: server on 127.0.0.1:${port}; paste kernel log lines on stdin (Ctrl-D ends), e.g.\n  ${exampleLine}`
    )
    return yield* shipStdin(client.prefixes, Context.get(sink, EventSink))
  }
  yield* Effect.logInfo(
    `demo ready: server on 127.0.0.1:${port}, following this machine's journal (SYSLOG_IDENTIFIER=kernel, new entries); try\n  logger -t kernel "${exampleLine}"`
  )
  const pipeline = clientLayer(
    {
      ...client,
      start: { _tag: "New" },
      stateDirectory: join(dir, "state"),
      journal: { ...client.journal, matches: ["SYSLOG_IDENTIFIER=kernel"] }
    },
    Layer.succeedContext(sink)
  )
  yield* Effect.gen(function*() {
    const running = yield* ClientPipeline
    yield* running.run
  }).pipe(Effect.provide(pipeline))
})).pipe(asCommand("droptailer demo cannot start"))
