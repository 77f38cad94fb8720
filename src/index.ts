/**
 * droptailer as a library: every stage of the pipeline, usable on its own or composed.
 *
 *   journal ─▶ JournalSource ─▶ parseLine ─▶ ClientPipeline ─▶ EventSink (Shipper | StdoutSink)
 *   IngestServer ─▶ IngestHandler (Enricher ─▶ stdout ─▶ EventsSink)
 *
 * The pure core (`parseLine`, `classify`, `canonicalIp`, the formats, the `DropEvent` schema) needs
 * no Effect runtime at all; the stages are Effect services, each with a `layer`.
 */

// domain: pure, no I/O
export {
  Action,
  DropEvent,
  type DropEventJson,
  decodeDropEventJson,
  encodeDropEventJson,
  Endpoint,
  EndpointKind,
  formatTimestamp,
  parseTimestamp,
  WorkloadRef
} from "./domain/DropEvent.ts"
export { formatJsonLine, formatLine, formatUpstreamLine, OutputFormat } from "./domain/Format.ts"
export { canonicalIp } from "./domain/Ip.ts"
export {
  type Classified,
  classify,
  defaultAcceptPrefixes,
  defaultDropPrefixes,
  defaultPrefixes,
  eventFromFields,
  type LineContext,
  type ParseResult,
  parseLine,
  parsePrefixList,
  type Prefixes
} from "./domain/Parser.ts"

// client: journal source, checkpoints, the pipeline and its sinks
export { CheckpointStore, type CheckpointOptions } from "./journal/CheckpointStore.ts"
export { entryId, type JournalEntry } from "./journal/JournalEntry.ts"
export { type JournalOptions, JournalSource, type StartPosition } from "./journal/JournalSource.ts"
export { ClientPipeline, type PipelineOptions } from "./client/ClientPipeline.ts"
export { EventSink, type OutgoingEvent } from "./client/EventSink.ts"
export { StdoutSink } from "./client/StdoutSink.ts"
export { Shipper } from "./transport/Shipper.ts"

// server: ingest, enrichment, outputs
export { IngestServer } from "./transport/IngestServer.ts"
export { IngestHandler } from "./server/IngestHandler.ts"
export { serverPipelineLayer } from "./server/ServerPipeline.ts"
export { StdoutIngestHandler } from "./server/StdoutIngestHandler.ts"
export { Enricher } from "./k8s/Enricher.ts"
export { EventsSink } from "./k8s/EventsSink.ts"
export { IpIndex } from "./k8s/IpIndex.ts"
export { kubernetesLayer, kubernetesLayerNoop } from "./k8s/Kubernetes.ts"

// certificates for mutual TLS
export { createCa, issueCertificate, makeCertSet, writeCertSet } from "./transport/Certs.ts"

// operations
export { logThrottled } from "./observability/LogThrottle.ts"
export { OpsServer } from "./observability/OpsServer.ts"
export { Readiness } from "./observability/Readiness.ts"
