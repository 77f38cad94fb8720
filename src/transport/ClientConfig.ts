/**
 * The client's transport settings: upstream's names (DROPTAILER_SERVER_ADDRESS,
 * DROPTAILER_CA_CERTIFICATE, DROPTAILER_CLIENT_CERTIFICATE, DROPTAILER_CLIENT_KEY, defaults under
 * /etc/droptailer-client) plus DROPTAILER_* settings, each with a default.
 */
import { Config } from "effect"
import { positiveInt } from "./Settings.ts"
import type { TlsFiles } from "./Tls.ts"

export interface ShipperConfig {
  /** `host:port`, or `dns:///host:port` to balance over every address the name resolves to. */
  readonly address: string
  /** The name the server certificate must carry (DNS SAN). */
  readonly serverName: string
  readonly tls: TlsFiles
  /** Events per PushBatch call (the server accepts up to 10,000 by default). */
  readonly maxBatchEvents: number
  /** Encoded bytes per PushBatch call (the server accepts 8 MiB by default). */
  readonly maxBatchBytes: number
  /** An event larger than this (encoded) is not sent: it is counted and logged as invalid. */
  readonly maxEventBytes: number
  /** Deadline of one call; a call that misses it is retried (the server drops the duplicates). */
  readonly callTimeoutMillis: number
  readonly initialBackoffMillis: number
  readonly maxBackoffMillis: number
}

export const shipperConfig: Config.Config<ShipperConfig> = Config.all({
  address: Config.NonEmptyString("DROPTAILER_SERVER_ADDRESS").pipe(Config.withDefault("localhost:50051")),
  serverName: Config.NonEmptyString("DROPTAILER_SERVER_NAME").pipe(Config.withDefault("droptailer")),
  ca: Config.String("DROPTAILER_CA_CERTIFICATE").pipe(Config.withDefault("/etc/droptailer-client/ca.crt")),
  cert: Config.String("DROPTAILER_CLIENT_CERTIFICATE").pipe(Config.withDefault("/etc/droptailer-client/tls.crt")),
  key: Config.String("DROPTAILER_CLIENT_KEY").pipe(Config.withDefault("/etc/droptailer-client/tls.key")),
  maxBatchEvents: positiveInt("DROPTAILER_BATCH_MAX_EVENTS", 2000),
  maxBatchBytes: positiveInt("DROPTAILER_BATCH_MAX_BYTES", 4 * 1024 * 1024),
  maxEventBytes: positiveInt("DROPTAILER_EVENT_MAX_BYTES", 256 * 1024),
  callTimeoutMillis: positiveInt("DROPTAILER_CALL_TIMEOUT_MS", 30_000),
  initialBackoffMillis: positiveInt("DROPTAILER_RETRY_INITIAL_MS", 100),
  maxBackoffMillis: positiveInt("DROPTAILER_RETRY_MAX_MS", 30_000)
}).pipe(
  Config.map((c): ShipperConfig => ({
    address: c.address,
    serverName: c.serverName,
    tls: {
      ca: { variable: "DROPTAILER_CA_CERTIFICATE", path: c.ca },
      cert: { variable: "DROPTAILER_CLIENT_CERTIFICATE", path: c.cert },
      key: { variable: "DROPTAILER_CLIENT_KEY", path: c.key }
    },
    maxBatchEvents: c.maxBatchEvents,
    maxBatchBytes: c.maxBatchBytes,
    maxEventBytes: c.maxEventBytes,
    callTimeoutMillis: c.callTimeoutMillis,
    initialBackoffMillis: c.initialBackoffMillis,
    maxBackoffMillis: c.maxBackoffMillis
  }))
)
