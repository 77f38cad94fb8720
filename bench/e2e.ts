/**
 * End-to-end benchmark (root, systemd-journald running):
 *
 *   npx node bench/e2e.ts [N]            N drops (default 100,000), then the latency phase
 *   npx node bench/e2e.ts --soak SECONDS  2k events/s for SECONDS, RSS of client and server every 10 s
 *
 * Real parts only: certificates from `droptailer certs`, `droptailer server` (a child process,
 * enriching from the Kubernetes test API server that runs in this process, where a pod owns
 * 127.0.0.1, the destination of every entry), `droptailer client` (a child process reading the real
 * journal), gRPC with mutual TLS on 127.0.0.1.
 *
 * Default run, in this order, over the same entries:
 * 1. N entries are written to the journal through logger under a unique SYSLOG_IDENTIFIER (the
 *    client matches it: DROPTAILER_JOURNAL_MATCH=SYSLOG_IDENTIFIER=<id>, DROPTAILER_START=oldest,
 *    so it reads exactly those entries), until journald has stored all of them;
 * 2. raw `journalctl` read of those entries with the client's exact arguments and output mode
 *    (`-o export --output-fields=...`, JournalSource.journalctlArgs), stdout counted, best of 3;
 * 3. the client is started: events/s from its start (and from the first line) to the N-th line on
 *    the server's stdout; CPU seconds (utime+stime, /proc/PID/stat) and peak RSS (VmHWM) of both;
 * 4. upstream-style: one unary Push per event, each awaited before the next (the Go client's way;
 *    the Shipper has no setting that forces it, so a plain grpc-js client loop as in
 *    bench/transport.ts) against the same server — an upper bound for that design, as it does not
 *    even read the journal;
 * 5. latency: the client keeps following; entries are written at a steady 1,000/s (10 every 10 ms)
 *    for 20 s, then for 1 s more that is not measured (see the phase); for each line of the 20 s,
 *    arrival on the server's stdout minus the entry's realtime timestamp (the line's `timestamp`):
 *    p50, p99, max.
 * BENCH_KUBERNETES=false runs the server without Kubernetes (to attribute its CPU); BENCH_PIN=1 runs
 * the server (all its threads) alone on CPU 1 and everything else (this process, the client, its
 * journalctl, logger) on CPU 0 (taskset), so the server's own CPU per event is measured without the
 * four processes taking turns on both CPUs' caches (printed as an extra figure; the pipeline is then
 * slower, as three processes share one CPU); BENCH_UNARY_EVENTS
 * (5,000) and BENCH_LATENCY_SECONDS (20) size phases 4 and 5; BENCH_CLIENT_ENV (JSON) adds client
 * settings, BENCH_CLIENT_NODE_ARGS Node options for the client process.
 * Machine facts (nproc, CPU model, load average before and after) are printed with the figures.
 */
import { execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as grpc from "@grpc/grpc-js"
import { journalctlArgs } from "../src/journal/JournalSource.ts"
import { Drop } from "../src/transport/generated/droptailer.ts"
import { wireTimestamp } from "../src/transport/WireDrop.ts"
import {
  childrenCpuSeconds,
  clientTls,
  clusterEnv,
  cpuSeconds,
  type Droptailer,
  journalCount,
  logLines,
  makeCerts,
  memoryMB,
  poll,
  removeTempDir,
  serverTls,
  sleep,
  startCluster,
  startDroptailer,
  tempDir
} from "../test/support/e2e.ts"
import { missing } from "../test/support/environment.ts"
import { childPidsOf } from "../test/support/journal.ts"

const args = process.argv.slice(2)
const soakIndex = args.indexOf("--soak")
const soakSeconds = soakIndex >= 0 ? Number(args[soakIndex + 1] ?? 1800) : 0
const total = soakIndex >= 0 ? 0 : Number(args[0] ?? 100_000)
const unaryEvents = Number(process.env.BENCH_UNARY_EVENTS ?? 5_000)
const latencySeconds = Number(process.env.BENCH_LATENCY_SECONDS ?? 20)
/** Node options for the client process, e.g. BENCH_CLIENT_NODE_ARGS="--max-semi-space-size=16" (space-separated). */
const clientNodeArgs = (process.env.BENCH_CLIENT_NODE_ARGS ?? "").split(" ").filter((a) => a.length > 0)
/** BENCH_KUBERNETES=false: the server without Kubernetes (no enrichment, no Events), to attribute its CPU. */
const withKubernetes = process.env.BENCH_KUBERNETES !== "false"
/** BENCH_PIN=1: the server alone on CPU 1, everything else on CPU 0. */
const pinned = process.env.BENCH_PIN === "1"
/** The machine's CPUs, counted before this process is pinned to one. */
const cpus = Os.availableParallelism()

/** Moves every thread of `pid` to `cpu` (processes it starts later inherit it). */
const pin = (pid: number, cpu: number): void => {
  execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" })
}

const identifier = `dte2e${process.pid.toString(36)}${Date.now().toString(36)}`
const dropPrefix = `${identifier}-dropped: `
const throughputPort = 8443
const latencyPort = 9443
const soakPort = 10443
/** The latency phase's last second (written, counted, not measured). */
const latencyTailPort = 9444

/** A drop from one of 256 sources to the pod at 127.0.0.1 (few distinct peers, as in real life). */
const line = (n: number, port: number): string =>
  `${dropPrefix}IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=10.0.0.${n & 255} DST=127.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=${
    n & 65535
  } DF PROTO=TCP SPT=${1024 + (n % 60000)} DPT=${port} WINDOW=65495 RES=0x00 SYN URGP=0`

const machine = () => {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8")
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown"
  return `${cpus} CPUs (nproc), ${model}, ${Math.round(Os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`
}
const load = () => Os.loadavg().map((l) => l.toFixed(2)).join(" ")

/** Milliseconds per event: a count over seconds, rounded. */
const rate = (n: number, seconds: number) => Math.round(n / seconds)

/** Epoch µs of the line's "timestamp" (2026-11-27T14:02:10.123456Z). */
const timestampMicros = (jsonLine: string): number => {
  const m = /"timestamp":"([^"]+)\.(\d{6})Z"/.exec(jsonLine)
  if (m === null) return NaN
  return Date.parse(`${m[1]}Z`) * 1000 + Number(m[2])
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

/** Runs journalctl with `args`, counts its stdout bytes; seconds. */
const timeJournalctl = (journalArgs: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn("journalctl", journalArgs, { stdio: ["ignore", "pipe", "inherit"] })
    let bytes = 0
    child.stdout.on("data", (chunk: Buffer) => (bytes += chunk.length))
    child.on("error", reject)
    child.on("exit", (code) =>
      code === 0 && bytes > 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`journalctl exited ${code}, ${bytes} bytes`))
    )
  })

const writeChunked = async (from: number, to: number, port: number) => {
  for (let n = from; n < to; n += 10_000) {
    await logLines(identifier, Array.from({ length: Math.min(10_000, to - n) }, (_, i) => line(n + i, port)))
  }
}

/**
 * Writes `perSecond` entries a second for `seconds`, in 10 batches a second, through ONE long-lived
 * logger process (its stdin: one entry per line), so the writer itself stays cheap and on pace;
 * `tick` after each batch.
 */
/**
 * Writes `perSecond` entries a second for `seconds` to `port`, in steps of `stepMillis` (the
 * latency phase: 10 every 10 ms, as close to steady as one logger gets; 100 every 100 ms made
 * journald's ~250 ms wake-ups lock onto the next burst), then, with `after`, more to another port
 * without a pause (not measured: see the latency phase). Returns how many went to `port`.
 */
const writeSteady = async (
  perSecond: number,
  seconds: number,
  port: number,
  options: {
    readonly first?: number
    readonly tick?: () => void
    readonly stepMillis?: number
    readonly after?: { readonly seconds: number; readonly port: number }
  } = {}
) => {
  const logger = spawn("logger", ["--socket", "/run/systemd/journal/dev-log", "-t", identifier], { stdio: ["pipe", "ignore", "inherit"] })
  const closed = new Promise<void>((resolve) => logger.on("exit", () => resolve()))
  const stepMillis = options.stepMillis ?? 100
  const batch = Math.max(1, Math.round((perSecond * stepMillis) / 1000))
  const steps = Math.round((seconds * 1000) / stepMillis)
  const tailSteps = options.after === undefined ? 0 : Math.round((options.after.seconds * 1000) / stepMillis)
  const first = options.first ?? 0
  const started = Date.now()
  let n = first
  let tail = 0
  for (let i = 0; i < steps + tailSteps; i++) {
    const to = i < steps ? port : options.after!.port
    let text = ""
    for (let j = 0; j < batch; j++) text += `${line(i < steps ? n + j : tail + j, to)}\n`
    if (i < steps) n += batch
    else tail += batch
    if (!logger.stdin.write(text)) await new Promise((resolve) => logger.stdin.once("drain", resolve))
    options.tick?.()
    const wait = started + (i + 1) * stepMillis - Date.now()
    if (wait > 0) await sleep(wait)
  }
  logger.stdin.end()
  await closed
  return n - first
}

const main = async () => {
  const lacking = missing(["root", "journald"])
  if (lacking.length > 0) throw new Error(`bench/e2e.ts needs ${lacking.join("; ")}`)
  console.log(`machine: ${machine()}`)
  console.log(`load average before: ${load()}`)
  const certs = makeCerts()
  const state = tempDir("bench-state")
  const cluster = await startCluster("127.0.0.1")
  const processes: Array<Droptailer> = []
  try {
    // ---- the server: counts lines by destination port; in the latency phase, parses timestamps ----
    const linesByPort = new Map<number, number>()
    let lastLineAt = 0
    let firstLineAt = 0
    const latencies: Array<number> = []
    const onLine = (text: string) => {
      const now = Date.now()
      // by the destination port, from the upstream fields map (the source port can take any value)
      const port = text.includes(`"DPT":"${throughputPort}"`)
        ? throughputPort
        : text.includes(`"DPT":"${latencyPort}"`)
        ? latencyPort
        : text.includes(`"DPT":"${soakPort}"`)
        ? soakPort
        : 0
      linesByPort.set(port, (linesByPort.get(port) ?? 0) + 1)
      if (port === throughputPort) {
        if (firstLineAt === 0) firstLineAt = now
        lastLineAt = now
      } else if (port === latencyPort) {
        latencies.push(now * 1000 - timestampMicros(text))
      }
    }
    const count = (port: number) => linesByPort.get(port) ?? 0
    const kubernetes: Record<string, string> = withKubernetes ? clusterEnv(cluster) : { DROPTAILER_KUBERNETES: "false" }
    console.log(`server: ${withKubernetes ? "enriching from the test API server, Events on" : "without Kubernetes (BENCH_KUBERNETES=false)"}`)
    const server = await startDroptailer("server", { ...serverTls(certs), ...kubernetes }, { onLine })
    processes.push(server)
    if (pinned) {
      pin(server.pid, 1)
      pin(process.pid, 0)
      console.log("BENCH_PIN=1: the server alone on CPU 1, this process, the client and journalctl on CPU 0")
    }
    await poll("the server's informers to sync", () => server.ready(), 30_000, 100)
    const clientEnv = {
      ...clientTls(certs),
      DROPTAILER_SERVER_ADDRESS: `127.0.0.1:${server.grpcPort}`,
      DROPTAILER_STATE_DIRECTORY: state,
      DROPTAILER_START: "oldest",
      DROPTAILER_JOURNAL_MATCH: `SYSLOG_IDENTIFIER=${identifier}`,
      DROPTAILER_PREFIXES_OF_DROPS: dropPrefix,
      DROPTAILER_PREFIXES_OF_ACCEPTS: `${identifier}-accepted: `,
      // client settings to try, e.g. BENCH_CLIENT_ENV='{"DROPTAILER_IN_FLIGHT":"16"}'
      ...(JSON.parse(process.env.BENCH_CLIENT_ENV ?? "{}") as Record<string, string>)
    }

    if (soakSeconds > 0) {
      await soak(server, clientEnv, processes, count)
      return
    }

    // ---- 1. inject ----
    console.log(`writing ${total} entries (SYSLOG_IDENTIFIER=${identifier}) ...`)
    const injectStart = Date.now()
    await writeChunked(0, total, throughputPort)
    await poll("journald to store every entry", () => journalCount(identifier) >= total, 300_000, 500)
    const injectSeconds = (Date.now() - injectStart) / 1000
    console.log(`  stored in ${injectSeconds.toFixed(1)} s (${rate(total, injectSeconds)} entries/s through logger + journald)`)

    // ---- 2. raw journalctl, the client's arguments and output mode ----
    const rawArgs = journalctlArgs({ matches: [`SYSLOG_IDENTIFIER=${identifier}`] }, { _tag: "Oldest" }, false)
    const raws: Array<number> = []
    for (let i = 0; i < 3; i++) raws.push(await timeJournalctl(rawArgs))
    const rawSeconds = Math.min(...raws)

    // ---- 3. the client, started after the injection ----
    const serverCpu0 = cpuSeconds(server.pid)
    const benchCpu0 = process.cpuUsage()
    const clientStart = Date.now()
    const client = await startDroptailer("client", clientEnv, { nodeArgs: clientNodeArgs })
    processes.push(client)
    if (pinned) {
      pin(client.pid, 0)
      for (const pid of childPidsOf(client.pid, "journalctl")) pin(pid, 0)
    }
    const clientReady = Date.now()
    const clientCpuAtReady = cpuSeconds(client.pid)
    await poll(`${total} lines on the server's stdout`, () => count(throughputPort) >= total, 600_000, 5)
    const e2eSeconds = (lastLineAt - clientStart) / 1000
    const steadySeconds = (lastLineAt - firstLineAt) / 1000
    const injectToLastSeconds = (lastLineAt - injectStart) / 1000
    const serverCpu = cpuSeconds(server.pid) - serverCpu0
    const clientCpu = cpuSeconds(client.pid)
    const benchUsage = process.cpuUsage(benchCpu0)
    const benchCpu = (benchUsage.user + benchUsage.system) / 1e6
    // the backlog's journalctl has exited (counted in the client's children's times), the follower runs on
    const journalctlCpu = childrenCpuSeconds(client.pid) +
      childPidsOf(client.pid, "journalctl").reduce((sum, pid) => sum + cpuSeconds(pid), 0)
    const clientHwm = memoryMB(client.pid, "VmHWM")
    const serverHwm = memoryMB(server.pid, "VmHWM")
    // how the client's deliveries went: batch sizes and the time from a batch's send to its ack
    const clientMetrics = await client.metrics()
    const batches = clientMetrics.sum("droptailer_client_batch_entries_count")
    const meanBatch = clientMetrics.sum("droptailer_client_batch_entries_sum") / batches
    const meanAckMillis = (clientMetrics.sum("droptailer_client_send_latency_seconds_sum") /
      clientMetrics.sum("droptailer_client_send_latency_seconds_count")) * 1000
    await sleep(1_000)
    const extra = count(throughputPort) - total
    console.log(
      `  client start → last line: ${e2eSeconds.toFixed(2)} s (${rate(total, e2eSeconds)} events/s); ` +
        `client CPU ${clientCpu.toFixed(2)} s, server CPU ${serverCpu.toFixed(2)} s`
    )
    console.log(`  client deliveries: ${batches} batches of ${meanBatch.toFixed(0)} entries on average, ${meanAckMillis.toFixed(0)} ms from send to ack`)

    // ---- 4. upstream-style: unary Push per event, one at a time ----
    const grpcClient = new grpc.Client(
      `127.0.0.1:${server.grpcPort}`,
      grpc.credentials.createSsl(
        readFileSync(Path.join(certs, "client/ca.crt")),
        readFileSync(Path.join(certs, "client/tls.key")),
        readFileSync(Path.join(certs, "client/tls.crt"))
      ),
      { "grpc.ssl_target_name_override": "droptailer", "grpc.default_authority": "droptailer" }
    )
    const unaryPort = 7443
    const drops = Array.from({ length: unaryEvents + 200 }, (_, i) => {
      const fields: Record<string, string> = {}
      for (const pair of line(i, unaryPort).slice(dropPrefix.length).split(" ")) {
        const eq = pair.indexOf("=")
        if (eq < 0) fields[pair] = ""
        else fields[pair.slice(0, eq)] = pair.slice(eq + 1)
      }
      fields.ACTION = "drop"
      return Buffer.from(
        Drop.encode({ timestamp: wireTimestamp(Date.now() * 1000 + i), fields, eventId: "", host: "", message: "" }).finish()
      )
    })
    const push = (bytes: Buffer) =>
      new Promise<void>((resolve, reject) =>
        grpcClient.makeUnaryRequest("/proto.Droptailer/Push", (b: Buffer) => b, () => undefined, bytes, (error) =>
          error ? reject(error) : resolve())
      )
    for (const d of drops.slice(0, 200)) await push(d) // warm-up
    const unaryCpu0 = cpuSeconds(server.pid)
    const unaryStart = performance.now()
    for (const d of drops.slice(200)) await push(d)
    const unarySeconds = (performance.now() - unaryStart) / 1000
    const unaryServerCpu = cpuSeconds(server.pid) - unaryCpu0
    grpcClient.close()

    // ---- 5. latency at a steady 1,000 events/s ----
    const latencyCpu0 = { client: cpuSeconds(client.pid), server: cpuSeconds(server.pid) }
    // then 1 s more to another port, not measured: when a writer stops, journald's last wake-up of
    // its followers comes late (400-500 ms, where it is ~250-300 ms while entries keep coming), and
    // a steady stream has no last entry
    const written = await writeSteady(1_000, latencySeconds, latencyPort, { stepMillis: 10, after: { seconds: 1, port: latencyTailPort } })
    await poll("every latency-phase line", () => count(latencyPort) >= written, 60_000, 20)
    const latencyCpu = { client: cpuSeconds(client.pid) - latencyCpu0.client, server: cpuSeconds(server.pid) - latencyCpu0.server }
    /** The CPU above covers the measured seconds and the one after them. */
    const writtenSeconds = latencySeconds + 1
    const sorted = latencies.toSorted((a, b) => a - b)

    const e2eRate = rate(total, e2eSeconds)
    const unaryRate = rate(unaryEvents, unarySeconds)
    const rawRate = rate(total, rawSeconds)
    console.log("")
    console.log(`load average after: ${load()}`)
    console.log(`raw journalctl (${rawArgs.filter((a) => a.startsWith("--output")).join(" ")}): ${rawRate} entries/s (best of ${raws.map((s) => s.toFixed(2)).join(", ")} s)`)
    console.log(
      `end to end, ${total} drops: ${e2eRate} events/s from the client's start to the last line (${e2eSeconds.toFixed(2)} s; ` +
        `client up after ${((clientReady - clientStart) / 1000).toFixed(2)} s); ${rate(total, steadySeconds)} events/s first to last line; ` +
        `${rate(total, injectToLastSeconds)} events/s from the first injected entry (${injectToLastSeconds.toFixed(1)} s, includes writing through logger)` +
        (extra === 0 ? "" : `; ${extra} lines more than entries!`)
    )
    const steadyRate = rate(total, steadySeconds)
    console.log(`  vs raw journalctl read: ${(steadyRate / rawRate).toFixed(2)} first to last line, ${(e2eRate / rawRate).toFixed(2)} from the client's start`)
    console.log(
      `  client CPU ${clientCpu.toFixed(2)} s (${((clientCpu - clientCpuAtReady) * 1e6 / total).toFixed(1)} µs/event after start-up, ` +
        `${clientCpuAtReady.toFixed(2)} s start-up), peak RSS ${clientHwm.toFixed(0)} MB`
    )
    console.log(`  server CPU ${serverCpu.toFixed(2)} s (${(serverCpu * 1e6 / total).toFixed(1)} µs/event), peak RSS ${serverHwm.toFixed(0)} MB`)
    if (pinned) {
      console.log(`  server CPU per event, alone on CPU 1 (BENCH_PIN=1): ${(serverCpu * 1e6 / total).toFixed(1)} µs/event`)
    }
    // what the two CPUs were shared by: the budget that bounds the end-to-end rate on this machine
    const perEvent = (seconds: number) => (seconds * 1e6) / total
    const allMicros = perEvent(clientCpu - clientCpuAtReady + serverCpu + journalctlCpu + benchCpu)
    console.log(
      `  journalctl CPU ${perEvent(journalctlCpu).toFixed(1)} µs/event, this bench process (reads and checks every line, serves the Kubernetes API) ` +
        `${perEvent(benchCpu).toFixed(1)} µs/event; all four ${allMicros.toFixed(1)} µs/event: at most ` +
        `${rate(cpus, allMicros / 1e6)} events/s on ${cpus} CPUs`
    )
    console.log(
      `upstream-style (one unary Push per event, awaited): ${unaryRate} events/s (${unaryEvents} in ${unarySeconds.toFixed(2)} s), ` +
        `server CPU ${(unaryServerCpu * 1e6 / unaryEvents).toFixed(1)} µs/event`
    )
    // the unary loop is measured after a warm-up: compare it with the running client (first to last line)
    console.log(`  ratio end to end / upstream-style: ${(steadyRate / unaryRate).toFixed(1)}x first to last line, ${(e2eRate / unaryRate).toFixed(1)}x from the client's start`)
    console.log(
      `latency at 1,000 events/s (10 every 10 ms) for ${latencySeconds} s, then 1 s more not measured (${sorted.length} lines; journal realtime → server stdout): ` +
        `p50 ${(percentile(sorted, 50) / 1000).toFixed(0)} ms, p99 ${(percentile(sorted, 99) / 1000).toFixed(0)} ms, ` +
        `max ${(sorted[sorted.length - 1]! / 1000).toFixed(0)} ms; CPU at 1k/s: client ${(latencyCpu.client / writtenSeconds * 100).toFixed(1)}%, ` +
        `server ${(latencyCpu.server / writtenSeconds * 100).toFixed(1)}% of a core`
    )
    console.log(
      "JSON " + JSON.stringify({
        total,
        rawRate,
        e2eRate,
        steadyRate,
        injectToLastRate: rate(total, injectToLastSeconds),
        clientCpu,
        clientCpuAtReady,
        clientPeakRssMB: clientHwm,
        serverCpuMicrosPerEvent: (serverCpu * 1e6) / total,
        serverPeakRssMB: serverHwm,
        journalctlCpuMicrosPerEvent: perEvent(journalctlCpu),
        benchCpuMicrosPerEvent: perEvent(benchCpu),
        unaryRate,
        ratio: steadyRate / unaryRate,
        ratioFromStart: e2eRate / unaryRate,
        meanBatch,
        meanAckMillis,
        p50ms: percentile(sorted, 50) / 1000,
        p99ms: percentile(sorted, 99) / 1000,
        maxms: sorted[sorted.length - 1]! / 1000,
        load: Os.loadavg()
      })
    )
  } finally {
    for (const p of processes) await p.kill("SIGTERM")
    await cluster.stop()
    removeTempDir(certs)
    removeTempDir(state)
  }
}

/** Soak: 2k events/s, RSS of both processes every 10 s, the series and the slope (MB/hour). */
const soak = async (
  server: Droptailer,
  clientEnv: Record<string, string>,
  processes: Array<Droptailer>,
  count: (port: number) => number
) => {
  // nothing was written under this run's identifier before: "oldest" reads exactly the soak's entries
  const client = await startDroptailer("client", clientEnv, { nodeArgs: clientNodeArgs })
  processes.push(client)
  console.log(`soak: 2,000 events/s for ${soakSeconds} s; RSS (VmRSS) every 10 s`)
  const series: Array<{ t: number; client: number; server: number; printed: number }> = []
  const started = Date.now()
  let nextSample = started
  const sample = () => {
    if (Date.now() < nextSample) return
    nextSample += 10_000
    const s = {
      t: (Date.now() - started) / 1000,
      client: memoryMB(client.pid, "VmRSS"),
      server: memoryMB(server.pid, "VmRSS"),
      printed: count(soakPort)
    }
    series.push(s)
    console.log(`  t=${s.t.toFixed(0).padStart(5)} s  client ${s.client.toFixed(1).padStart(6)} MB  server ${s.server.toFixed(1).padStart(6)} MB  printed ${s.printed}`)
  }
  const written = await writeSteady(2_000, soakSeconds, soakPort, { tick: sample })
  await poll("every soak line", () => count(soakPort) >= written, 120_000, 50)
  /** Least squares over the samples from `from` seconds on, MB per hour. */
  const slope = (key: "client" | "server", from: number) => {
    const points = series.filter((s) => s.t >= from)
    const n = points.length
    if (n < 2) return NaN
    const mt = points.reduce((a, p) => a + p.t, 0) / n
    const mv = points.reduce((a, p) => a + p[key], 0) / n
    const num = points.reduce((a, p) => a + (p.t - mt) * (p[key] - mv), 0)
    const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0)
    return (num / den) * 3600
  }
  // V8's heap takes minutes to reach its steady size: the slope after the first minute still has
  // that growth in it; the second half of the run tells whether anything keeps growing.
  const warm = Math.min(60, soakSeconds / 4)
  const half = soakSeconds / 2
  console.log(`soak: ${written} written, ${count(soakPort)} printed; peak RSS client ${memoryMB(client.pid, "VmHWM").toFixed(0)} MB, server ${memoryMB(server.pid, "VmHWM").toFixed(0)} MB`)
  console.log(
    `soak slope (least squares): after the first ${warm.toFixed(0)} s client ${slope("client", warm).toFixed(1)} MB/hour, server ${slope("server", warm).toFixed(1)} MB/hour; ` +
      `second half client ${slope("client", half).toFixed(1)} MB/hour, server ${slope("server", half).toFixed(1)} MB/hour`
  )
  console.log("JSON " + JSON.stringify({ soakSeconds, written, printed: count(soakPort), series, slopeClient: slope("client", warm), slopeServer: slope("server", warm), slopeClientSecondHalf: slope("client", half), slopeServerSecondHalf: slope("server", half) }))
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
