/**
 * /metrics of the real processes: valid Prometheus text whose counters match what the test sent.
 * - `droptailer server` (certificates from `droptailer certs`): events with a mix of actions,
 *   protocols and hosts through the Shipper, a duplicate resend, a rejected request.
 * - `droptailer client --stdout` on the real journal: drops, accepts, malformed and other entries
 *   under a unique SYSLOG_IDENTIFIER, so the counts are exactly the test's own.
 */
import * as grpc from "@grpc/grpc-js"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { OutgoingEvent } from "../../src/client/EventSink.ts"
import { parseLine } from "../../src/domain/Parser.ts"
import { describeWith } from "../support/environment.ts"
import { dropLine, makeStateDirectory, uniqueMarker, waitFor, writeViaLogger } from "../support/journal.ts"
import { freePort } from "../support/net.ts"
import { get, killAll, startDroptailer } from "../support/process.ts"
import { parsePrometheus, type Sample, sampleSum, sampleValue } from "../support/prometheus.ts"
import { commandCerts, rawCall, serverTlsEnv, shipper, shipperConfigFor } from "../transport/support.ts"

afterEach(killAll)

const dropPrefix = "nftables-metal-dropped: "
const acceptPrefix = "nftables-metal-accepted: "
const prefixes = { drop: [dropPrefix], accept: [acceptPrefix] }

const packet = (protocol: string, n: number): string => {
  const head = `IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=10.1.${(n >> 8) & 255}.${n & 255} DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=${n}`
  switch (protocol) {
    case "TCP":
      return `${head} PROTO=TCP SPT=${1024 + n} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0`
    case "UDP":
      return `${head} PROTO=UDP SPT=${1024 + n} DPT=53 LEN=20`
    default:
      return `${head} PROTO=ICMP TYPE=8 CODE=0 ID=${n} SEQ=1`
  }
}

/** An event as the client makes it: the journal line, parsed; id unique per n. */
const outgoing = (n: number, action: "drop" | "accept", protocol: string, host: string): OutgoingEvent => {
  const message = `${action === "drop" ? dropPrefix : acceptPrefix}${packet(protocol, n)}`
  const parsed = parseLine(message, prefixes, { timestamp: Date.now() * 1000, host })
  if (parsed._tag !== "Event") throw new Error(`test line did not parse: ${JSON.stringify(parsed)}`)
  return { id: `metrics-test-${n}`, message, event: parsed.event }
}

const scrape = async (base: string): Promise<Array<Sample>> => {
  const response = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) })
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type") ?? "").toMatch(/^text\/plain/)
  return parsePrometheus(await response.text())
}

describe("droptailer server /metrics", () => {
  it("counts received events by action, protocol and host, duplicates and rejected requests", async () => {
    const certs = commandCerts()
    const metricsPort = await freePort()
    const server = startDroptailer(["server"], {
      ...serverTlsEnv(certs),
      SERVER_PORT: "0",
      DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
      DROPTAILER_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      DROPTAILER_KUBERNETES: "false"
    })
    const port = Number((await server.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/))[1])
    const base = `http://127.0.0.1:${metricsPort}`

    // 3 hosts × 2 actions × 3 protocols, a different number of events for each combination
    const plan: Array<{ action: "drop" | "accept"; protocol: string; host: string; count: number }> = []
    let k = 0
    for (const host of ["fw-a", "fw-b", "fw-c"]) {
      for (const action of ["drop", "accept"] as const) {
        for (const protocol of ["TCP", "UDP", "ICMP"]) plan.push({ action, protocol, host, count: 1 + (k++ % 7) })
      }
    }
    const inPlanOrder: Array<OutgoingEvent> = []
    let n = 0
    for (const p of plan) for (let i = 0; i < p.count; i++) inPlanOrder.push(outgoing(n++, p.action, p.protocol, p.host))
    // interleaved, as several firewalls would send
    const events = inPlanOrder.map((e, i) => ({ e, key: (i * 13) % 17 })).toSorted((a, b) => a.key - b.key).map(({ e }) => e)
    const resent = events.slice(0, 9)

    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const sink = yield* shipper(shipperConfigFor(certs, port))
      for (let i = 0; i < events.length; i += 25) yield* sink.deliver(events.slice(i, i + 25))
      yield* sink.deliver(resent) // a client retransmitting after a lost acknowledgement
    })))

    // a request the server rejects: PushBatch whose bytes are not a DropBatch
    const client = new grpc.Client(
      `127.0.0.1:${port}`,
      grpc.credentials.createSsl(
        readFileSync(join(certs, "client/ca.crt")),
        readFileSync(join(certs, "client/tls.key")),
        readFileSync(join(certs, "client/tls.crt"))
      ),
      { "grpc.ssl_target_name_override": "droptailer", "grpc.default_authority": "droptailer" }
    )
    try {
      const error = await Effect.runPromise(Effect.flip(rawCall(client, "PushBatch", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]))))
      expect(error.code).toBe(grpc.status.INVALID_ARGUMENT)
    } finally {
      client.close()
    }

    expect(server.lines.length).toBe(events.length) // the duplicates were not printed
    const samples = await scrape(base)
    for (const p of plan) {
      expect(
        sampleValue(samples, "droptailer_server_events_received_total", { action: p.action, protocol: p.protocol, host: p.host }),
        `${p.action} ${p.protocol} ${p.host}`
      ).toBe(p.count)
    }
    expect(sampleSum(samples, "droptailer_server_events_received_total")).toBe(events.length)
    expect(sampleSum(samples, "droptailer_server_duplicates_dropped_total")).toBe(resent.length)
    expect(sampleSum(samples, "droptailer_server_requests_rejected_total")).toBe(1)
    expect(samples.find((s) => s.name === "droptailer_server_requests_rejected_total")?.labels.reason).toBe("malformed")
    // the namespace counter of the server pipeline counts the same events (no Kubernetes: `none`)
    expect(sampleSum(samples, "droptailer_server_events_by_namespace_total", { src_namespace: "none", dst_namespace: "none" }))
      .toBe(events.length)

    expect((await get(`${base}/healthz`)).status).toBe(200)
    const ready = await get(`${base}/readyz`)
    expect(ready.status).toBe(200)
    expect(JSON.parse(ready.body)).toEqual({ ready: true, checks: { kubernetes: true } })

    expect(await server.stop("SIGTERM")).toMatchObject({ code: 0 })
  }, 120_000)
})

describeWith(["root", "journald"], "droptailer client /metrics", () => {
  it("counts the drops, accepts, malformed and other entries it read, and what the sink acknowledged", async () => {
    const marker = uniqueMarker("metrics")
    const drop = `dt-${marker}-dropped: `
    const accept = `dt-${marker}-accepted: `
    const drops = Array.from({ length: 30 }, (_, i) => dropLine(drop, i, 1000))
    const accepts = Array.from({ length: 10 }, (_, i) => dropLine(accept, 100 + i, 1001))
    const malformed = Array.from({ length: 5 }, (_, i) => `${drop}not a packet ${i}`)
    const others = Array.from({ length: 7 }, (_, i) => `something else ${marker} ${i}`)
    // interleaved; all under the test's own identifier, read from the oldest entry
    const messages = [...drops, ...accepts, ...malformed, ...others].toSorted((a, b) => (a.length % 5) - (b.length % 5))
    await writeViaLogger(marker, messages)

    const client = startDroptailer(["client", "--stdout"], {
      DROPTAILER_PREFIXES_OF_DROPS: drop,
      DROPTAILER_PREFIXES_OF_ACCEPTS: accept,
      DROPTAILER_JOURNAL_MATCH: `SYSLOG_IDENTIFIER=${marker}`,
      DROPTAILER_START: "oldest",
      DROPTAILER_STATE_DIRECTORY: makeStateDirectory(),
      DROPTAILER_METRICS_ADDRESS: "127.0.0.1:0"
    })
    const base = (await client.waitForStderr(/metrics, \/healthz and \/readyz on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
    await client.waitForLines("40 events", (lines) => lines.length >= 40)

    const total = messages.length
    const samples = await waitFor("the client's counters", async () => {
      const s = await scrape(base)
      return sampleSum(s, "droptailer_client_journal_entries_read_total") >= total &&
          sampleSum(s, "droptailer_client_batch_entries_count") >= 1 &&
          sampleSum(s, "droptailer_client_batch_entries_sum") >= total
        ? s
        : undefined
    }, 30_000, 200)
    expect(sampleValue(samples, "droptailer_client_events_total", { action: "drop" })).toBe(30)
    expect(sampleValue(samples, "droptailer_client_events_total", { action: "accept" })).toBe(10)
    expect(sampleValue(samples, "droptailer_client_malformed_lines_total")).toBe(5)
    expect(sampleValue(samples, "droptailer_client_skipped_lines_total")).toBe(7)
    expect(sampleValue(samples, "droptailer_client_events_acknowledged_total")).toBe(40)
    expect(sampleValue(samples, "droptailer_client_journal_entries_read_total")).toBe(total)
    expect(sampleValue(samples, "droptailer_client_batch_entries_sum")).toBe(total)
    expect(sampleValue(samples, "droptailer_client_cursor_lost_resets_total") ?? 0).toBe(0)
    expect(client.lines.length).toBe(40)

    expect(await client.stop("SIGTERM")).toMatchObject({ code: 0 })
  }, 120_000)
})
