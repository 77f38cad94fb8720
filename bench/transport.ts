/**
 * Transport benchmark: `npx node bench/transport.ts [batchedEvents] [unaryEvents]`.
 *
 * Runs the real server (`node src/main/bin.ts server`, a child process with mTLS on 127.0.0.1) and
 * measures, in the same run:
 * - batched: our Shipper (PushBatch, events marked as the client pipeline marks them: only ACTION
 *   of the map travels, the server rebuilds it from the message; BENCH_FULL_MAP=true sends it whole; DROPTAILER_BATCH_MAX_EVENTS events per call, default 2000;
 *   BENCH_IN_FLIGHT deliveries in flight, default 4);
 * - upstream-style: one unary Push per event, each awaited before the next (the Go client's way).
 * End to end = from the first send until every call was acknowledged and the last line was read
 * from the server's stdout. Server CPU = utime+stime of the server process only (/proc/PID/stat,
 * all its threads: JS, GC helpers, libuv) over the run, per event (and its stime alone: the
 * kernel's share, stdout and socket I/O); client CPU = this process's
 * process.cpuUsage() over the batched run (events are built before it starts).
 * The machine may be shared: the load average is printed with the results; compare runs made
 * close together, and repeat.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as grpc from "@grpc/grpc-js"
import { Context, Effect, Layer } from "effect"
import { EventSink, type OutgoingEvent } from "../src/client/EventSink.ts"
import { makeCertSet, writeCertSet } from "../src/transport/Certs.ts"
import { Drop } from "../src/transport/generated/droptailer.ts"
import { formatJsonLine, JsonLineWriter } from "../src/domain/Format.ts"
import { eventOfDrop } from "../src/transport/IngestServer.ts"
import { encodeOutgoing, Shipper } from "../src/transport/Shipper.ts"
import { makeWireDecoder, wireTimestamp } from "../src/transport/WireDrop.ts"

const repo = resolve(import.meta.dirname, "..")
const batchedEvents = Number(process.argv[2] ?? 200_000)
const unaryEvents = Number(process.argv[3] ?? 5_000)
const batchEvents = Number(process.env.DROPTAILER_BATCH_MAX_EVENTS ?? 2000)
const inFlight = Number(process.env.BENCH_IN_FLIGHT ?? 4)
const ticks = 100 // USER_HZ
/** e.g. BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the server. */
const serverNodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter((a) => a !== "")

/** utime and stime of a process (all its threads), µs. */
const cpuSplit = (pid: number): { user: number; system: number } => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return { user: (Number(fields[11]) / ticks) * 1_000_000, system: (Number(fields[12]) / ticks) * 1_000_000 }
}
const cpuMicros = (pid: number): number => {
  const { system, user } = cpuSplit(pid)
  return user + system
}

const event = (seq: number): OutgoingEvent => {
  const spt = 1024 + (seq % 60000)
  const fields: Record<string, string> = {
    IN: "vrf09", OUT: "", MAC: "12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00", SRC: "1.2.3.4", DST: "4.3.2.1",
    LEN: "40", TOS: "0x00", PREC: "0x00", TTL: "238", ID: "46474", PROTO: "TCP", SPT: String(spt), DPT: "445",
    WINDOW: "1024", RES: "0x00", SYN: "", URGP: "0", ACTION: "drop"
  }
  return {
    id: `s=bench;i=${seq}`,
    message:
      `nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=${spt} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0`,
    event: {
      timestamp: Date.now() * 1000 + seq, action: "drop", host: "fw-bench", protocol: "TCP",
      src: { ip: "1.2.3.4", port: spt }, dst: { ip: "4.3.2.1", port: 445 }, in: "vrf09", out: "", fields
    },
    // as the client pipeline marks it: the map is the parse of the message (PushBatch sends ACTION only)
    fieldsFromMessage: process.env.BENCH_FULL_MAP !== "true"
  }
}

const main = Effect.gen(function*() {
  const dir = mkdtempSync(join(tmpdir(), "droptailer-bench-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  yield* Effect.flatMap(makeCertSet(), (set) => writeCertSet(dir, set))

  // ---- the server, a child process; count its stdout lines ----
  let lines = 0
  let onLine: (() => void) | undefined
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      spawn(join(repo, "node_modules/.bin/node"), [...serverNodeArgs, join(repo, "src/main/bin.ts"), "server"], {
        cwd: repo,
        env: {
          PATH: process.env.PATH ?? "",
          SERVER_PORT: "0",
          DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
          // a free port: with the default 0.0.0.0:9090 a second bench (or server) running at the same
          // time makes this server exit at start, and the bench then waits for it forever
          DROPTAILER_METRICS_ADDRESS: "127.0.0.1:0",
          SERVER_CERTIFICATE: join(dir, "server/tls.crt"),
          SERVER_KEY: join(dir, "server/tls.key"),
          SERVER_CA_CERTIFICATE: join(dir, "server/ca.crt")
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) =>
      Effect.promise(() => {
        // SIGTERM: the server drains and exits (and writes its --cpu-prof profile, if asked)
        const exited = new Promise((done) => child.once("exit", done))
        child.kill("SIGTERM")
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
        return exited.then(() => clearTimeout(timer))
      })
  )
  child.stdout.on("data", (chunk: Buffer) => {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
    onLine?.()
  })
  const port = yield* Effect.callback<number>((resume) => {
    let err = ""
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString()
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err)
      if (m) resume(Effect.succeed(Number(m[1])))
    })
    // a server that cannot start would otherwise leave nothing to wait for: the bench exited 0, silent
    child.on("exit", (code, signal) => resume(Effect.die(new Error(`the server exited at start (${signal ?? code}): ${err}`))))
  })
  const linesReach = (n: number) =>
    Effect.callback<void>((resume) => {
      const check = () => {
        if (lines >= n) {
          onLine = undefined
          resume(Effect.void)
        }
      }
      onLine = check
      check()
    })

  const tls = {
    ca: { variable: "DROPTAILER_CA_CERTIFICATE", path: join(dir, "client/ca.crt") },
    cert: { variable: "DROPTAILER_CLIENT_CERTIFICATE", path: join(dir, "client/tls.crt") },
    key: { variable: "DROPTAILER_CLIENT_KEY", path: join(dir, "client/tls.key") }
  }
  const context = yield* Layer.build(Shipper.layerConfig({
    address: `127.0.0.1:${port}`, serverName: "droptailer", tls, maxBatchEvents: batchEvents, maxBatchBytes: 4 * 1024 * 1024,
    maxEventBytes: 256 * 1024, callTimeoutMillis: 30_000, initialBackoffMillis: 100, maxBackoffMillis: 5000
  }))
  const sink = Context.get(context, EventSink)

  // warm-up (connection, JIT on both sides)
  yield* sink.deliver(Array.from({ length: 20_000 }, (_, i) => event(1_000_000_000 + i)))
  yield* linesReach(20_000)

  // ---- batched ----
  // built before the clock starts; each batch is let go once handed to the Shipper, so the client's
  // GC does not keep marking a heap of events a real client would not hold
  const batches: Array<Array<OutgoingEvent> | undefined> = []
  for (let i = 0; i < batchedEvents; i += batchEvents) {
    batches.push(Array.from({ length: Math.min(batchEvents, batchedEvents - i) }, (_, j) => event(i + j)))
  }
  const batchIndexes = batches.map((_, i) => i)
  const loadBefore = loadavg()[0]!
  let base = lines
  const split0 = cpuSplit(child.pid!)
  let cpu0 = split0.user + split0.system
  const client0 = process.cpuUsage()
  let t0 = performance.now()
  yield* Effect.forEach(batchIndexes, (i) =>
    Effect.suspend(() => {
      const batch = batches[i]!
      batches[i] = undefined
      return sink.deliver(batch)
    }), { concurrency: inFlight, discard: true })
  yield* linesReach(base + batchedEvents)
  const batchedSeconds = (performance.now() - t0) / 1000
  const split1 = cpuSplit(child.pid!)
  const batchedCpu = (split1.user + split1.system - cpu0) / batchedEvents
  // the kernel's share (stdout pipe writes, socket reads, page faults) of the server's CPU
  const batchedSystem = (split1.system - split0.system) / batchedEvents
  const clientUsage = process.cpuUsage(client0)
  const clientCpu = (clientUsage.user + clientUsage.system) / batchedEvents

  // ---- upstream-style: one unary Push per event, awaited one at a time ----
  const client = new grpc.Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createSsl(readFileSync(tls.ca.path), readFileSync(tls.key.path), readFileSync(tls.cert.path)),
    { "grpc.ssl_target_name_override": "droptailer", "grpc.default_authority": "droptailer" }
  )
  yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
  const unary = Array.from({ length: unaryEvents }, (_, i) => {
    const e = event(2_000_000_000 + i)
    return Buffer.from(Drop.encode({ timestamp: wireTimestamp(e.event.timestamp), fields: e.event.fields, eventId: "", host: "", message: "" }).finish())
  })
  const push = (bytes: Buffer) =>
    Effect.callback<void, Error>((resume) => {
      client.makeUnaryRequest("/proto.Droptailer/Push", (b: Buffer) => b, () => undefined, bytes, (error) =>
        resume(error ? Effect.fail(error) : Effect.void))
    })
  const warmUp = Math.min(500, unary.length)
  yield* Effect.forEach(unary.slice(0, warmUp), push, { discard: true }) // warm-up
  yield* linesReach(base + batchedEvents + warmUp)
  base = lines
  cpu0 = cpuMicros(child.pid!)
  t0 = performance.now()
  yield* Effect.forEach(unary, push, { discard: true })
  yield* linesReach(base + unaryEvents)
  const unarySeconds = (performance.now() - t0) / 1000
  const unaryCpu = (cpuMicros(child.pid!) - cpu0) / unaryEvents

  const batchedRate = batchedEvents / batchedSeconds
  const unaryRate = unaryEvents / unarySeconds
  const row = (name: string, n: number, s: number, rate: number, cpu: number) =>
    `${name.padEnd(26)} ${String(n).padStart(8)} events ${s.toFixed(2).padStart(7)} s ${Math.round(rate).toString().padStart(8)} events/s   server CPU ${cpu.toFixed(1).padStart(6)} µs/event`
  console.log(`batch ${batchEvents} events per call, ${inFlight} in flight; load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`)
  console.log(
    row("batched (PushBatch)", batchedEvents, batchedSeconds, batchedRate, batchedCpu) +
      `   client CPU ${clientCpu.toFixed(1)} µs/event   (server: ${batchedSystem.toFixed(1)} µs of it in the kernel)`
  )
  console.log(row("upstream-style (unary)", unaryEvents, unarySeconds, unaryRate, unaryCpu))
  console.log(`ratio batched/unary: ${(batchedRate / unaryRate).toFixed(1)}x events/s, ${(unaryCpu / batchedCpu).toFixed(1)}x less server CPU per event`)
})

/**
 * Where the server's CPU goes, per event, in this process (no network): best of 30 rounds of a
 * 2000-event batch, CPU time. (The machine may be shared: the best round is the least disturbed.)
 */
const stages = () => {
  const cpuNow = () => {
    const u = process.cpuUsage()
    return u.user + u.system
  }
  const n = 2000
  const events = Array.from({ length: n }, (_, i) => event(i))
  const batch = frameBatchForBench(events.map(encodeOutgoing))
  const decoder = makeWireDecoder()
  const writer = new JsonLineWriter(1024 * 1024)
  const best = { encode: Infinity, decode: Infinity, event: Infinity, write: Infinity, format: Infinity }
  for (let round = 0; round < 30; round++) {
    let t = cpuNow()
    for (const e of events) encodeOutgoing(e)
    best.encode = Math.min(best.encode, (cpuNow() - t) / n)
    t = cpuNow()
    const decoded = decoder.batch(batch)
    best.decode = Math.min(best.decode, (cpuNow() - t) / n)
    if (decoded._tag !== "Success") throw new Error("bench batch did not decode")
    t = cpuNow()
    const built = decoded.success.map((d) => eventOfDrop(d, () => "peer"))
    best.event = Math.min(best.event, (cpuNow() - t) / n)
    // the server's way: every line of the batch into one buffer
    t = cpuNow()
    writer.reset()
    for (const e of built) {
      writer.event(e)
      writer.byte(10)
    }
    best.write = Math.min(best.write, (cpuNow() - t) / n)
    t = cpuNow()
    let length = 0
    for (const e of built) length += formatJsonLine(e).length
    best.format = Math.min(best.format, (cpuNow() - t) / n)
    if (length === 0) throw new Error("no lines")
  }
  console.log(
    `stages, µs/event (best of 30, in-process): client encode ${best.encode.toFixed(2)} | server: decode+validate ${best.decode.toFixed(2)}, ` +
      `build event (parseLine) ${best.event.toFixed(2)}, JSON lines (JsonLineWriter, as the server) ${best.write.toFixed(2)}; ` +
      `formatJsonLine (one string) ${best.format.toFixed(2)}`
  )
}

const frameBatchForBench = (drops: ReadonlyArray<Uint8Array>): Buffer =>
  Buffer.concat(drops.flatMap((d) => [Buffer.from([0x0a, ...varint(d.length)]), Buffer.from(d)]))
const varint = (n: number): Array<number> => {
  const out: Array<number> = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}

Effect.runPromise(Effect.scoped(main)).then(() => stages()).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
