/**
 * The server's settings: upstream's names (SERVER_PORT, SERVER_CERTIFICATE, SERVER_KEY,
 * SERVER_CA_CERTIFICATE; the defaults are where upstream's manifest mounts the
 * `droptailer-server` Secret) plus DROPTAILER_* limits, each with a default.
 */
import { Config, Schema } from "effect"
import { positiveInt } from "./Settings.ts"
import type { TlsFiles } from "./Tls.ts"
import { defaultWireLimits, type WireLimits } from "./WireDrop.ts"

export interface IngestServerConfig {
  /** 0 picks a free port (tests). */
  readonly port: number
  readonly listenHost: string
  readonly tls: TlsFiles
  /** Client certificate CNs (or full subjects) allowed to push; empty: any certificate of the CA. */
  readonly allowedClients: ReadonlyArray<string>
  readonly limits: WireLimits
  /** grpc.max_receive_message_length: larger requests get RESOURCE_EXHAUSTED from grpc. */
  readonly maxReceiveBytes: number
  /** Calls handled at once; beyond that RESOURCE_EXHAUSTED (the client backs off and retries). */
  readonly maxConcurrentCalls: number
  /** Event ids remembered per origin host for de-duplication. */
  readonly dedupWindow: number
  /** Where the recent ids are kept across restarts (DedupLog); undefined: in memory only. */
  readonly dedupFile?: string | undefined
  readonly shutdownTimeoutMillis: number
}

const list = (name: string) =>
  Config.String(name).pipe(
    Config.map((value) => value.split(",").map((s) => s.trim()).filter((s) => s.length > 0)),
    Config.withDefault([] as ReadonlyArray<string>)
  )

export const ingestServerConfig: Config.Config<IngestServerConfig> = Config.all({
  port: Config.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 })), "SERVER_PORT").pipe(Config.withDefault(50051)),
  listenHost: Config.String("DROPTAILER_LISTEN_ADDRESS").pipe(Config.withDefault("0.0.0.0")),
  cert: Config.String("SERVER_CERTIFICATE").pipe(Config.withDefault("/certificates/tls.crt")),
  key: Config.String("SERVER_KEY").pipe(Config.withDefault("/certificates/tls.key")),
  ca: Config.String("SERVER_CA_CERTIFICATE").pipe(Config.withDefault("/certificates/ca.crt")),
  allowedClients: list("DROPTAILER_ALLOWED_CLIENTS"),
  maxBatchEvents: positiveInt("DROPTAILER_MAX_BATCH_EVENTS", defaultWireLimits.maxBatchEvents),
  maxFields: positiveInt("DROPTAILER_MAX_FIELDS", defaultWireLimits.maxFields),
  maxReceiveBytes: positiveInt("DROPTAILER_MAX_MESSAGE_BYTES", 8 * 1024 * 1024),
  maxConcurrentCalls: positiveInt("DROPTAILER_MAX_CONCURRENT_CALLS", 256),
  dedupWindow: positiveInt("DROPTAILER_DEDUP_WINDOW", 100_000),
  dedupFile: Config.String("DROPTAILER_DEDUP_FILE").pipe(Config.withDefault("")),
  shutdownTimeoutMillis: positiveInt("DROPTAILER_SHUTDOWN_TIMEOUT_MS", 10_000)
}).pipe(
  Config.map((c) => ({
    port: c.port,
    listenHost: c.listenHost,
    tls: {
      ca: { variable: "SERVER_CA_CERTIFICATE", path: c.ca },
      cert: { variable: "SERVER_CERTIFICATE", path: c.cert },
      key: { variable: "SERVER_KEY", path: c.key }
    },
    allowedClients: c.allowedClients,
    limits: { ...defaultWireLimits, maxBatchEvents: c.maxBatchEvents, maxFields: c.maxFields },
    maxReceiveBytes: c.maxReceiveBytes,
    maxConcurrentCalls: c.maxConcurrentCalls,
    dedupWindow: c.dedupWindow,
    dedupFile: c.dedupFile.trim() === "" ? undefined : c.dedupFile,
    shutdownTimeoutMillis: c.shutdownTimeoutMillis
  }))
)
