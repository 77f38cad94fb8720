/**
 * Test support for the transport: certificates on disk (made by the real `droptailer certs`
 * command), the server as a real child process (`node src/main/bin.ts server`) whose stdout lines
 * are collected, and generated outgoing events carrying a sequence number (field SEQ).
 */
import * as grpc from "@grpc/grpc-js"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { Context, Effect, Layer, Scope } from "effect"
import { EventSink } from "../../src/client/EventSink.ts"
import { Shipper } from "../../src/transport/Shipper.ts"
import type { OutgoingEvent } from "../../src/client/EventSink.ts"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import type { ShipperConfig } from "../../src/transport/ClientConfig.ts"
import { IngestHandler } from "../../src/server/IngestHandler.ts"
import { IngestServer } from "../../src/transport/IngestServer.ts"
import type { IngestServerConfig } from "../../src/transport/ServerConfig.ts"
import { defaultWireLimits } from "../../src/transport/WireDrop.ts"
import { type CertSet, writeCertSet } from "../../src/transport/Certs.ts"

export const repo = resolve(import.meta.dirname, "../..")
export const nodeBin = join(repo, "node_modules/.bin/node")
export const binTs = join(repo, "src/main/bin.ts")

let certDir: string | undefined

/** Certificates from the real `droptailer certs` command, made once per test file. */
export const commandCerts = (): string => {
  if (certDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "droptailer-certs-"))
    execFileSync(nodeBin, [binTs, "certs", "--out", dir, "--server-dns", "droptailer", "--client-name", "fw-test-client"], {
      stdio: "pipe"
    })
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }))
    certDir = dir
  }
  return certDir
}

export const serverTlsEnv = (dir: string): Record<string, string> => ({
  SERVER_CERTIFICATE: join(dir, "server/tls.crt"),
  SERVER_KEY: join(dir, "server/tls.key"),
  SERVER_CA_CERTIFICATE: join(dir, "server/ca.crt")
})

export const shipperConfigFor = (dir: string, port: number, overrides: Partial<ShipperConfig> = {}): ShipperConfig => ({
  address: `127.0.0.1:${port}`,
  serverName: "droptailer",
  tls: {
    ca: { variable: "DROPTAILER_CA_CERTIFICATE", path: join(dir, "client/ca.crt") },
    cert: { variable: "DROPTAILER_CLIENT_CERTIFICATE", path: join(dir, "client/tls.crt") },
    key: { variable: "DROPTAILER_CLIENT_KEY", path: join(dir, "client/tls.key") }
  },
  maxBatchEvents: 2000,
  maxBatchBytes: 4 * 1024 * 1024,
  maxEventBytes: 256 * 1024,
  callTimeoutMillis: 10_000,
  initialBackoffMillis: 50,
  maxBackoffMillis: 1000,
  ...overrides
})

export interface ServerProcess {
  readonly port: number
  readonly child: ChildProcess
  /** Every complete stdout line so far. */
  readonly lines: Array<string>
  readonly stderr: () => string
  /** Resolves when at least `n` lines arrived (or rejects after `timeoutMs`). */
  readonly waitForLines: (n: number, timeoutMs?: number) => Effect.Effect<void, Error>
  readonly exited: Promise<number | null>
}

/** Starts `droptailer server` on 127.0.0.1 with an ephemeral port; killed when the scope closes. */
export const startServer = (
  env: Record<string, string>,
  options: { readonly port?: number; readonly lines?: Array<string> } = {}
): Effect.Effect<ServerProcess, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<ServerProcess, Error>((resume) => {
      const child = spawn(nodeBin, [binTs, "server"], {
        cwd: repo,
        env: {
          PATH: process.env.PATH ?? "",
          SERVER_PORT: String(options.port ?? 0),
          DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
          ...env
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines = options.lines ?? []
      let partial = ""
      let stderr = ""
      let settled = false
      child.stdout.setEncoding("utf8")
      child.stdout.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n")
        partial = parts.pop() ?? ""
        for (const line of parts) lines.push(line)
      })
      const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)))
      child.stderr.setEncoding("utf8")
      child.stderr.on("data", (chunk: string) => {
        stderr += chunk
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr)
        if (match && !settled) {
          settled = true
          resume(Effect.succeed({
            port: Number(match[1]),
            child,
            lines,
            stderr: () => stderr,
            exited,
            waitForLines: (n, timeoutMs = 60_000) =>
              Effect.callback<void, Error>((resumeWait) => {
                const deadline = Date.now() + timeoutMs
                const timer = setInterval(() => {
                  if (lines.length >= n) {
                    clearInterval(timer)
                    resumeWait(Effect.void)
                  } else if (Date.now() > deadline) {
                    clearInterval(timer)
                    resumeWait(Effect.fail(new Error(`only ${lines.length} of ${n} lines`)))
                  }
                }, 20)
                return Effect.sync(() => clearInterval(timer))
              })
          }))
        }
      })
      void exited.then((code) => {
        if (!settled) {
          settled = true
          resume(Effect.fail(new Error(`server exited with ${code} before listening: ${stderr}`)))
        }
      })
    }),
    (server) =>
      Effect.promise(async () => {
        if (server.child.exitCode === null && server.child.signalCode === null) {
          server.child.kill("SIGTERM")
          const timer = setTimeout(() => server.child.kill("SIGKILL"), 5000)
          await server.exited
          clearTimeout(timer)
        }
      })
  )

/** Runs `droptailer server` expecting it to fail at start-up: its exit code and stderr. */
export const serverStartFailure = (env: Record<string, string>): { code: number | null; stderr: string } => {
  try {
    execFileSync(nodeBin, [binTs, "server"], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? "", SERVER_PORT: "0", DROPTAILER_LISTEN_ADDRESS: "127.0.0.1", ...env },
      stdio: "pipe",
      timeout: 20_000
    })
    return { code: 0, stderr: "" }
  } catch (error) {
    const e = error as { status: number | null; stderr: Buffer }
    return { code: e.status, stderr: e.stderr.toString() }
  }
}

const baseMicros = Date.UTC(2026, 10, 27, 14, 2, 10) * 1000

/** An outgoing event with sequence number `seq` (in fields.SEQ and the message). */
export const outgoing = (seq: number, host = "fw-1"): OutgoingEvent => {
  const spt = 1024 + (seq % 60000)
  const message =
    `nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=${spt} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0`
  const fields: Record<string, string> = {
    IN: "vrf09",
    OUT: "",
    MAC: "12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00",
    SRC: "1.2.3.4",
    DST: "4.3.2.1",
    LEN: "40",
    TOS: "0x00",
    PREC: "0x00",
    TTL: "238",
    ID: "46474",
    PROTO: "TCP",
    SPT: String(spt),
    DPT: "445",
    WINDOW: "1024",
    RES: "0x00",
    SYN: "",
    URGP: "0",
    ACTION: "drop",
    SEQ: String(seq)
  }
  const event: DropEvent = {
    timestamp: baseMicros + seq,
    action: "drop",
    host,
    protocol: "TCP",
    src: { ip: "1.2.3.4", port: spt },
    dst: { ip: "4.3.2.1", port: 445 },
    in: "vrf09",
    out: "",
    fields
  }
  return { id: `s=test;h=${host};i=${seq}`, message, event }
}

export const outgoingRange = (from: number, count: number, host = "fw-1"): Array<OutgoingEvent> =>
  Array.from({ length: count }, (_, i) => outgoing(from + i, host))

/** SEQ numbers of the JSON lines (per host), in stdout order. */
export const sequences = (lines: ReadonlyArray<string>, host?: string): Array<number> => {
  const out: Array<number> = []
  for (const line of lines) {
    if (line === "") continue
    const parsed = JSON.parse(line) as { host: string; fields: Record<string, string> }
    if (host !== undefined && parsed.host !== host) continue
    out.push(Number(parsed.fields.SEQ))
  }
  return out
}

/** How often each sequence number appears. */
export const counts = (seqs: ReadonlyArray<number>): { missing: Array<number>; duplicated: number; distinct: number } =>
  countsUpTo(seqs, seqs.length === 0 ? 0 : Math.max(...seqs) + 1)

export const countsUpTo = (seqs: ReadonlyArray<number>, total: number) => {
  const seen = new Uint32Array(total)
  let duplicated = 0
  for (const s of seqs) {
    if (s < total) {
      if (seen[s]! > 0) duplicated++
      seen[s]!++
    }
  }
  const missing: Array<number> = []
  for (let i = 0; i < total; i++) if (seen[i] === 0) missing.push(i)
  return { missing, duplicated, distinct: total - missing.length }
}

/** A Shipper (EventSink) living as long as the test's scope. */
export const shipper = (config: ShipperConfig) =>
  Effect.map(Layer.build(Shipper.layerConfig(config)), (context) => Context.get(context, EventSink))

/** Writes an in-memory CertSet as `droptailer certs` lays it out, in a temp dir removed at exit. */
export const writeTempCerts = (set: CertSet) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "droptailer-certs-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    yield* writeCertSet(dir, set)
    return dir
  })

/** A raw gRPC client: requests are the bytes given (hand-built frames), responses ignored. */
export const rawCall = (client: grpc.Client, method: "Push" | "PushBatch" | string, bytes: Buffer, timeoutMs = 20_000) =>
  Effect.callback<void, grpc.ServiceError>((resume) => {
    client.makeUnaryRequest(
      method.startsWith("/") ? method : `/proto.Droptailer/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error) => resume(error ? Effect.fail(error) : Effect.void)
    )
  })

/** A protobuf varint's bytes (hand-built requests). */
export const varint = (n: number): Array<number> => {
  const out: Array<number> = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

/** The IngestServer in this process (127.0.0.1, ephemeral port) with a recording IngestHandler. */
export const inProcessServer = (set: CertSet, overrides: Partial<IngestServerConfig> = {}) =>
  Effect.gen(function*() {
    const dir = yield* writeTempCerts(set)
    const received: Array<DropEvent> = []
    const handler = Layer.succeed(IngestHandler, IngestHandler.of({ handle: (events) => Effect.sync(() => void received.push(...events)) }))
    const config: IngestServerConfig = { ...serverConfigFor(dir), ...overrides }
    const context = yield* Layer.build(IngestServer.layerConfig(config).pipe(Layer.provide(handler)))
    return { port: Context.get(context, IngestServer).port, received }
  })


/** Server settings for certificates laid out by writeCertSet in `dir` (127.0.0.1, ephemeral port). */
export const serverConfigFor = (dir: string): IngestServerConfig => ({
  port: 0,
  listenHost: "127.0.0.1",
  tls: {
    ca: { variable: "SERVER_CA_CERTIFICATE", path: join(dir, "server/ca.crt") },
    cert: { variable: "SERVER_CERTIFICATE", path: join(dir, "server/tls.crt") },
    key: { variable: "SERVER_KEY", path: join(dir, "server/tls.key") }
  },
  allowedClients: [],
  limits: defaultWireLimits,
  maxReceiveBytes: 8 * 1024 * 1024,
  maxConcurrentCalls: 64,
  dedupWindow: 1000,
  shutdownTimeoutMillis: 2000
})
