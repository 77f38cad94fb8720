/**
 * Server load benchmark: `npx node bench/server-load.ts [eventsPerRun]` (default 100,000).
 *
 * Measures the server's own CPU per event for several batch sizes, with a load generator that costs
 * as little CPU as possible, so that the client side does not compete with the server for the CPUs
 * (bench/transport.ts runs the real Shipper, whose CPU grows as batches shrink). The requests are
 * `PushBatch` calls encoded once, up front, as our client encodes them (ACTION-only maps, the raw
 * line); before each send only the event ids are rewritten in place (the server drops repeated
 * ids), and they are sent as raw bytes through a plain @grpc/grpc-js client with mutual TLS.
 *
 * Runs the real server (`node src/main/bin.ts server`, without Kubernetes unless BENCH_KUBERNETES=1)
 * of one or two variants, A and B, and alternates them run by run (the machine may be shared: only
 * runs made side by side compare). Per run: server CPU per event (utime+stime of the process from
 * /proc/PID/stat) and per thread group (/proc/PID/task/x/stat: the main thread, V8's workers (GC),
 * libuv's pool, the rest), and its garbage collections per 1,000 events with their main-thread
 * pauses (a PerformanceObserver loaded with --import reports them on SIGUSR2). The server's stdout
 * goes to `cat > /dev/null` (BENCH_DRAIN: another shell command, e.g. "grep -a Mark-Compact" with
 * --trace-gc; BENCH_COUNT_LINES=1: read and counted here, at a cost to this process).
 *
 * Settings (environment):
 * - BENCH_SIZES: batch sizes, default "250,500,1000,2000";
 * - BENCH_RATE: events per second, 0 (default) = full speed; paced runs start a call every
 *   size/rate seconds (calls still in flight are not waited for, up to BENCH_IN_FLIGHT);
 * - BENCH_IN_FLIGHT: calls in flight at most, default 4;
 * - BENCH_ROUNDS: rounds over sizes × variants, default 3;
 * - BENCH_A_NODE_ARGS / BENCH_B_NODE_ARGS: Node options of each server (B only runs when one of
 *   BENCH_B_NODE_ARGS, BENCH_B_REPO, BENCH_B_ENV, BENCH_B_RATE is set), e.g. "--max-semi-space-size=32" or
 *   "--cpu-prof --cpu-prof-dir=/tmp/prof" (written when the server exits);
 * - BENCH_A_REPO / BENCH_B_REPO: the checkout each server runs from (default this one), to compare
 *   code: e.g. a clone of HEAD against the working tree;
 * - BENCH_A_RATE / BENCH_B_RATE: each server's own BENCH_RATE (the same code at two rates, alternated);
 * - BENCH_A_ENV / BENCH_B_ENV: extra server settings as JSON, e.g. '{"DROPTAILER_DEDUP_FILE":"/tmp/x"}';
 * - BENCH_KUBERNETES: "1" gives the servers the Kubernetes test API server (in this process, as
 *   bench/e2e.ts does), where a Deployment's pod owns 4.3.2.1, every event's destination; the
 *   events come from 256 sources (256 kinds of PacketDrop Event);
 * - BENCH_REALTIME: "1" runs each server under `chrt -f 10` (root; SCHED_FIFO): no other process
 *   of the machine preempts it, so what other load costs it (preemptions, caches refilled after
 *   them) is left out;
 * - BENCH_PIN: "1" runs each server on CPU 1 and this process on CPU 0 (taskset), so the server's
 *   CPU is measured without the load generator taking its CPU.
 * Per run it also prints the server's system CPU, minor page faults and context switches (all
 * threads; involuntary = preempted) per 1,000 events, and this process's own CPU per event.
 * Prints one line per run, then per size and variant the best and median µs/event and, with B, the
 * B/A ratio of the median of pairs.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { makeCertSet, writeCertSet } from "../src/transport/Certs.ts"
import { DropBatchWriter } from "../src/transport/DropEncoder.ts"
import { BatchAck } from "../src/transport/generated/droptailer.ts"
import { wireTimestamp } from "../src/transport/WireDrop.ts"
import { type Cluster, clusterEnv, startCluster } from "../test/support/e2e.ts"

const repo = resolve(import.meta.dirname, "..")
const eventsPerRun = Number(process.argv[2] ?? 100_000)
// e.g. the same code at 15,000 events/s and at full speed, alternated, at two batch sizes:
//   BENCH_SIZES=500,2000 BENCH_A_RATE=15000 BENCH_B_RATE=0 npx node bench/server-load.ts 60000
const sizes = (process.env.BENCH_SIZES ?? "250,500,1000,2000").split(",").map(Number)
const rate = Number(process.env.BENCH_RATE ?? 0)
const inFlight = Number(process.env.BENCH_IN_FLIGHT ?? 4)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const pin = process.env.BENCH_PIN === "1"
const kubernetes = process.env.BENCH_KUBERNETES === "1"
const realtime = process.env.BENCH_REALTIME === "1"
const ticks = 100 // USER_HZ
const words = (s: string | undefined) => (s ?? "").split(" ").filter((a) => a !== "")

interface Variant {
  readonly name: string
  readonly repo: string
  readonly nodeArgs: ReadonlyArray<string>
  readonly env: Record<string, string>
  /** Events per second (0: full speed). */
  readonly rate: number
}
const variant = (name: "A" | "B"): Variant => ({
  name,
  repo: resolve(process.env[`BENCH_${name}_REPO`] ?? repo),
  nodeArgs: words(process.env[`BENCH_${name}_NODE_ARGS`]),
  env: JSON.parse(process.env[`BENCH_${name}_ENV`] ?? "{}") as Record<string, string>,
  rate: Number(process.env[`BENCH_${name}_RATE`] ?? rate)
})
const variants: Array<Variant> = [variant("A")]
if (["NODE_ARGS", "REPO", "ENV", "RATE"].some((k) => process.env[`BENCH_B_${k}`] !== undefined)) {
  variants.push(variant("B"))
}

// ---- /proc ----

/** utime + stime in µs of a /proc stat line. */
const statMicros = (stat: string): number => {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) / ticks) * 1_000_000
}
const cpuMicros = (pid: number): number => statMicros(readFileSync(`/proc/${pid}/stat`, "utf8"))
/** stime alone, µs: the kernel's part (system calls: the stdout pipe, the TLS socket). */
const systemMicros = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[12]) / ticks) * 1_000_000
}

/** Minor page faults of the process, and context switches (voluntary, involuntary) summed over its threads. */
const faultsAndSwitches = (pid: number): { faults: number; voluntary: number; involuntary: number } => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const out = { faults: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]), voluntary: 0, involuntary: 0 }
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8")
      out.voluntary += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0)
      out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0)
    } catch {
      // the thread ended
    }
  }
  return out
}

/** The server's CPU per thread group: main (the JS thread), v8 (V8's workers: GC, compiler), uv (libuv pool), other. */
type Threads = Record<"main" | "v8" | "uv" | "other", number>
const threadMicros = (pid: number): Threads => {
  const out: Threads = { main: 0, v8: 0, uv: 0, other: 0 }
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
    } catch {
      continue // the thread ended
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
    const group = tid === String(pid) ? "main" : comm.startsWith("V8") || comm.startsWith("DelayedTask") ? "v8" : comm.startsWith("libuv") ? "uv" : "other"
    out[group] += statMicros(stat)
  }
  return out
}

// ---- requests ----

/** Event ids are `s=load;i=` and this many digits, rewritten in place before each send. */
const idDigits = 12
const idPrefix = "s=load;i="

/** One call's bytes, with where each event's id digits are. */
interface Request {
  readonly bytes: Buffer
  readonly idAt: Array<number>
}

/** A PushBatch of `size` drop lines (ports and timestamps vary, as a scan's would), as our client encodes it. */
const makeRequest = (size: number): Request => {
  const writer = new DropBatchWriter(size * 400)
  const now = Date.now() * 1000
  for (let i = 0; i < size; i++) {
    const spt = 1024 + ((i * 7919) % 60000)
    const { seconds, nanos } = wireTimestamp(now + i * 37)
    writer.encode({
      seconds,
      nanos,
      fields: { ACTION: "drop" },
      eventId: idPrefix + "0".repeat(idDigits),
      host: "fw-load",
      message: `nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=10.1.0.${i & 255} `
        + `DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=${46474 + i} PROTO=TCP SPT=${spt} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0`
    })
    writer.commit()
  }
  const bytes = Buffer.from(writer.bytes)
  const idAt: Array<number> = []
  for (let at = bytes.indexOf(idPrefix); at !== -1; at = bytes.indexOf(idPrefix, at + 1)) idAt.push(at + idPrefix.length)
  if (idAt.length !== size) throw new Error(`expected ${size} ids, found ${idAt.length}`)
  return { bytes, idAt }
}

/** Gives the request's events the ids next, next + 1, ... */
const renumber = (request: Request, next: number): void => {
  const { bytes, idAt } = request
  for (let i = 0; i < idAt.length; i++) {
    let n = next + i
    for (let d = idAt[i]! + idDigits - 1; d >= idAt[i]!; d--) {
      bytes[d] = 48 + (n % 10)
      n = Math.floor(n / 10)
    }
  }
}

// ---- a server ----

interface Server {
  readonly variant: Variant
  readonly pid: number
  readonly client: grpc.Client
  /** Event lines read from its stdout (BENCH_COUNT_LINES=1), else stdout goes to `cat > /dev/null`. */
  readonly counts: { lines: number }
  /** Its garbage collections so far (gcProbe). */
  readonly gcStats: () => Promise<GcStats>
  readonly stop: () => Promise<void>
}

/**
 * Loaded into each server with --import: on SIGUSR2 it writes `gc-stats <json>` to stderr, the
 * number and main-thread milliseconds of its garbage collections so far, by kind.
 */
const gcProbe = `import { PerformanceObserver, constants as c } from "node:perf_hooks"
const s = { minor: 0, minorMs: 0, major: 0, majorMs: 0, other: 0, otherMs: 0 }
new PerformanceObserver((list) => { for (const e of list.getEntries()) {
  const k = e.detail.kind === c.NODE_PERFORMANCE_GC_MINOR ? "minor" : e.detail.kind === c.NODE_PERFORMANCE_GC_MAJOR ? "major" : "other"
  s[k]++; s[k + "Ms"] += e.duration } }).observe({ entryTypes: ["gc"] })
process.on("SIGUSR2", () => process.stderr.write("gc-stats " + JSON.stringify(s) + "\\n"))`

interface GcStats {
  minor: number
  minorMs: number
  major: number
  majorMs: number
  other: number
  otherMs: number
}

const countLines = process.env.BENCH_COUNT_LINES === "1"
/** What reads the server's stdout otherwise: e.g. "grep -a Mark-Compact" with --trace-gc in the node arguments. */
const drainCommand = process.env.BENCH_DRAIN ?? "cat > /dev/null"

const startServer = (v: Variant, certs: string, cluster: Cluster | undefined): Promise<Server> =>
  new Promise((resolvePromise, reject) => {
    const node = join(v.repo, "node_modules/.bin/node")
    const wrappers = [...(realtime ? ["chrt", "-f", "10"] : []), ...(pin ? ["taskset", "-c", "1"] : [])]
    const command = wrappers.length > 0 ? wrappers[0]! : node
    const args = [
      ...(wrappers.length > 0 ? [...wrappers.slice(1), node] : []),
      `--import=data:text/javascript,${encodeURIComponent(gcProbe)}`,
      ...v.nodeArgs,
      join(v.repo, "src/main/bin.ts"),
      "server"
    ]
    const drain = countLines ? undefined : spawn("sh", ["-c", drainCommand], { stdio: ["pipe", "inherit", "inherit"] })
    const child = spawn(command, args, {
      cwd: v.repo,
      env: {
        PATH: process.env.PATH ?? "",
        SERVER_PORT: "0",
        DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
        DROPTAILER_METRICS_ADDRESS: "127.0.0.1:0", // another server may hold :9090
        SERVER_CERTIFICATE: join(certs, "server/tls.crt"),
        SERVER_KEY: join(certs, "server/tls.key"),
        SERVER_CA_CERTIFICATE: join(certs, "server/ca.crt"),
        ...(cluster === undefined ? {} : clusterEnv(cluster)),
        ...v.env
      },
      stdio: ["ignore", drain === undefined ? "pipe" : drain.stdin!, "pipe"]
    })
    const counts = { lines: 0 }
    child.stdout?.on("data", (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) counts.lines++
    })
    let stderr = ""
    let listening = false
    let onStats: ((s: GcStats) => void) | undefined
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString()
      const stats = /gc-stats (\{.*\})\n/.exec(stderr)
      if (stats !== null) {
        stderr = stderr.slice(stats.index + stats[0].length)
        onStats?.(JSON.parse(stats[1]!) as GcStats)
      }
      const m = listening ? null : /listening on 127\.0\.0\.1:(\d+)/.exec(stderr)
      if (m !== null) {
        listening = true
        stderr = ""
        const client = new grpc.Client(
          `127.0.0.1:${m[1]}`,
          grpc.credentials.createSsl(
            readFileSync(join(certs, "client/ca.crt")),
            readFileSync(join(certs, "client/tls.key")),
            readFileSync(join(certs, "client/tls.crt"))
          ),
          { "grpc.ssl_target_name_override": "droptailer", "grpc.default_authority": "droptailer", "grpc.max_send_message_length": 64 << 20, "grpc.enable_channelz": 0, "grpc.enable_retries": 0 }
        )
        const stop = () =>
          new Promise<void>((done) => {
            client.close()
            child.once("exit", () => done())
            child.kill("SIGTERM") // the server drains and exits (and writes a --cpu-prof profile)
          })
        const gcStats = () =>
          new Promise<GcStats>((done) => {
            onStats = done
            child.kill("SIGUSR2")
          })
        // (behind taskset and chrt, which exec, the pid is the server's)
        resolvePromise({ variant: v, pid: child.pid!, client, counts, stop, gcStats })
      }
    })
    child.once("exit", (code) => {
      drain?.stdin?.end()
      if (!listening) reject(new Error(`server ${v.name} exited (${code}): ${stderr}`))
    })
  })

// ---- a run ----

const identity = (b: Buffer): Buffer => b
let nextId = 0

/** One PushBatch; fails unless the server accepted every event (a refused or de-duplicated one would make the CPU per event meaningless). */
const call = (server: Server, request: Request): Promise<void> =>
  new Promise((done, fail) => {
    renumber(request, nextId)
    nextId += request.idAt.length
    server.client.makeUnaryRequest("/proto.Droptailer/PushBatch", identity, BatchAck.decode, request.bytes, (error, ack) => {
      if (error) fail(error)
      else if (ack?.accepted !== request.idAt.length) fail(new Error(`the server accepted ${ack?.accepted} of ${request.idAt.length} events`))
      else done()
    })
  })

/** Sends `events` in calls of `size` (paced at `rate` events/s, or as fast as acknowledged), up to `inFlight` at once. */
const load = async (server: Server, size: number, events: number): Promise<void> => {
  // one request per slot: a slot's bytes are renumbered only once its previous call completed
  const slots = Array.from({ length: inFlight }, () => makeRequest(size))
  const calls = Math.ceil(events / size)
  const t0 = performance.now()
  let started = 0
  const worker = async (slot: Request) => {
    while (started < calls) {
      const k = started++
      if (server.variant.rate > 0) {
        const due = t0 + (k * size * 1000) / server.variant.rate
        const wait = due - performance.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      }
      await call(server, slot)
    }
  }
  await Promise.all(slots.map(worker))
}

interface Result {
  readonly variant: string
  readonly size: number
  readonly micros: number
  readonly systemMicros: number
  /** Per 1,000 events: minor page faults, context switches (all, and the involuntary ones). */
  readonly faults: number
  readonly switches: number
  readonly involuntary: number
  readonly threads: Threads
  /** Per 1,000 events, and their main-thread pause in µs per event. */
  readonly scavenges: number
  readonly scavengeMicros: number
  readonly markCompacts: number
  readonly markCompactMicros: number
  readonly seconds: number
  /** This process's CPU per event (the load generator). */
  readonly generator: number
}

const run = async (server: Server, size: number): Promise<Result> => {
  const events = Math.ceil(eventsPerRun / size) * size
  const lines0 = server.counts.lines
  const gc0 = await server.gcStats()
  const cpu0 = cpuMicros(server.pid)
  const sys0 = systemMicros(server.pid)
  const th0 = threadMicros(server.pid)
  const fs0 = faultsAndSwitches(server.pid)
  const own0 = process.cpuUsage()
  const t0 = performance.now()
  await load(server, size, events)
  // acknowledged means written; when counting, wait until this process has read them too
  while (countLines && server.counts.lines < lines0 + events) await new Promise((r) => setTimeout(r, 5))
  const seconds = (performance.now() - t0) / 1000
  const cpu = cpuMicros(server.pid) - cpu0
  const sys = systemMicros(server.pid) - sys0
  const own = process.cpuUsage(own0)
  const gc1 = await server.gcStats()
  const th1 = threadMicros(server.pid)
  const fs1 = faultsAndSwitches(server.pid)
  const threads: Threads = { main: 0, v8: 0, uv: 0, other: 0 }
  for (const k of Object.keys(threads) as Array<keyof Threads>) threads[k] = (th1[k] - th0[k]) / events
  return {
    variant: server.variant.name,
    size,
    micros: cpu / events,
    systemMicros: sys / events,
    faults: ((fs1.faults - fs0.faults) * 1000) / events,
    switches: ((fs1.voluntary - fs0.voluntary + fs1.involuntary - fs0.involuntary) * 1000) / events,
    involuntary: ((fs1.involuntary - fs0.involuntary) * 1000) / events,
    threads,
    scavenges: ((gc1.minor - gc0.minor) * 1000) / events,
    scavengeMicros: ((gc1.minorMs - gc0.minorMs) * 1000) / events,
    markCompacts: ((gc1.major - gc0.major) * 1000) / events,
    markCompactMicros: ((gc1.majorMs - gc0.majorMs) * 1000) / events,
    seconds,
    generator: (own.user + own.system) / events
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = xs.toSorted((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const main = async () => {
  if (pin) spawn("taskset", ["-p", "-c", "0", String(process.pid)], { stdio: "ignore" })
  const certs = mkdtempSync(join(tmpdir(), "droptailer-load-"))
  try {
    await Effect.runPromise(Effect.flatMap(makeCertSet(), (set) => writeCertSet(certs, set)))
    const servers: Array<Server> = []
    const cluster = kubernetes ? await startCluster("4.3.2.1") : undefined
    for (const v of variants) servers.push(await startServer(v, certs, cluster))
    console.log(
      `server load: ${eventsPerRun} events per run, sizes ${sizes.join("/")}, ${rate > 0 ? `${rate} events/s` : "full speed"}, ${inFlight} in flight, `
        + `${rounds} rounds${pin ? ", server pinned to CPU 1, load generator to CPU 0" : ""}${kubernetes ? ", Kubernetes on" : ""}${realtime ? ", servers SCHED_FIFO" : ""}; load average ${loadavg()[0]!.toFixed(2)}`
    )
    for (const s of servers) {
      const v = s.variant
      console.log(`  ${v.name} (pid ${s.pid}): ${v.repo} ${v.nodeArgs.join(" ")} ${JSON.stringify(v.env)} ${v.rate > 0 ? `${v.rate} events/s` : "full speed"}`)
    }
    // warm-up: every size on every server
    for (const s of servers) for (const size of sizes) await load(s, size, Math.max(20_000, size * 10))
    const results: Array<Result> = []
    for (let round = 0; round < rounds; round++) {
      for (const size of sizes) {
        // alternate which variant goes first
        const order = round % 2 === 0 ? servers : servers.toReversed()
        for (const s of order) {
          const r = await run(s, size)
          results.push(r)
          const t = r.threads
          console.log(
            `  round ${round} ${r.variant} size ${String(size).padStart(5)}: ${r.micros.toFixed(2).padStart(6)} µs/event `
              + `(system ${r.systemMicros.toFixed(2)}; main ${t.main.toFixed(2)}, v8 ${t.v8.toFixed(2)}, uv ${t.uv.toFixed(2)}, other ${t.other.toFixed(2)}) `
              + `${(events(r) / r.seconds / 1000).toFixed(1)}k events/s, generator ${r.generator.toFixed(2)} µs/event`
              + `, per 1k events ${r.faults.toFixed(0)} page faults, ${r.switches.toFixed(0)} context switches (${r.involuntary.toFixed(0)} involuntary), ${r.scavenges.toFixed(2)} scavenges (${r.scavengeMicros.toFixed(2)} µs/event) ${r.markCompacts.toFixed(3)} mark-compacts (${r.markCompactMicros.toFixed(2)} µs/event)`
          )
        }
      }
    }
    console.log(`summary (µs/event of server CPU; load average ${loadavg()[0]!.toFixed(2)}):`)
    for (const size of sizes) {
      const parts = servers.map((s) => {
        const xs = results.filter((r) => r.size === size && r.variant === s.variant.name).map((r) => r.micros)
        return `${s.variant.name} best ${Math.min(...xs).toFixed(2)} median ${median(xs).toFixed(2)}`
      })
      if (servers.length === 2) {
        const a = results.filter((r) => r.size === size && r.variant === "A").map((r) => r.micros)
        const b = results.filter((r) => r.size === size && r.variant === "B").map((r) => r.micros)
        parts.push(`B/A median pair ${median(a.map((x, i) => b[i]! / x)).toFixed(3)}, best ${(Math.min(...b) / Math.min(...a)).toFixed(3)}`)
      }
      console.log(`  size ${String(size).padStart(5)}: ${parts.join("; ")}`)
    }
    for (const s of servers) await s.stop()
    await cluster?.stop()
  } finally {
    rmSync(certs, { recursive: true, force: true })
  }
}

const events = (r: Result): number => Math.ceil(eventsPerRun / r.size) * r.size

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
