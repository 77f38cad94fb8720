/**
 * Journal source benchmark: `npx node bench/journal.ts [entries]` (root, systemd-journald running).
 *
 * Writes N (default 100,000) drop entries to the real journal through logger, under a unique
 * SYSLOG_IDENTIFIER, then measures in the same run, over the same entries, in the same output mode:
 * - raw: `journalctl` with the exact arguments JournalSource uses (no follow), stdout to /dev/null,
 *   and the same into a pipe that this process reads and drops;
 * - client: JournalSource.follow → parseLine → batches → a no-op acknowledging EventSink →
 *   CheckpointStore (the real ClientPipeline), until the checkpoint reaches the last entry;
 * and prints the ratio, plus RSS (current and peak), heapUsed, heapTotal and arrayBuffers when the
 * first client run has acknowledged 20k, 50k and 100k (and N) entries.
 * For reference it also times the other journalctl output modes over the same entries.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { NodeServices } from "@effect/platform-node"
import { Effect, Fiber, Layer, Logger, Metric, Stream } from "effect"
import { ClientPipeline } from "../src/client/ClientPipeline.ts"
import { EventSink } from "../src/client/EventSink.ts"
import { defaultPrefixes } from "../src/domain/Parser.ts"
import { CheckpointStore } from "../src/journal/CheckpointStore.ts"
import { journalctlArgs, journalctlCommand, JournalSource, type JournalOptions } from "../src/journal/JournalSource.ts"
import { journalEntriesRead } from "../src/journal/metrics.ts"
import { missing } from "../test/support/environment.ts"

const total = Number(process.argv[2] ?? 100_000)
/** BENCH_JOURNAL_IDENTIFIER: reuse the entries a previous run wrote (it prints the identifier). */
const reused = process.env.BENCH_JOURNAL_IDENTIFIER
const identifier = reused ?? `dtbench${process.pid.toString(36)}${Date.now().toString(36)}`
/** BENCH_JOURNAL_ROUNDS: raw/client/source rounds (default 3); BENCH_JOURNAL_OTHERS=0: skip the other modes. */
const rounds = Number(process.env.BENCH_JOURNAL_ROUNDS ?? 3)
const options: JournalOptions = { matches: [`SYSLOG_IDENTIFIER=${identifier}`] }

const line = (n: number) =>
  `nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=10.${(n >> 16) & 255}.${(n >> 8) & 255}.${
    n & 255
  } DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=${n & 65535} PROTO=TCP SPT=${1024 + (n % 60000)} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0`

/** CPU seconds (user + system) of our live child processes named `name`, from /proc. */
const childCpuSeconds = (name: string): number => {
  let ticks = 0
  for (const pid of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${pid}/stat`, "latin1")
      const close = stat.lastIndexOf(")")
      const comm = stat.slice(stat.indexOf("(") + 1, close)
      const rest = stat.slice(close + 2).split(" ")
      // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15
      if (comm === name && Number(rest[1]) === process.pid) ticks += Number(rest[11]) + Number(rest[12])
    } catch {
      // the process exited meanwhile
    }
  }
  return ticks / 100 // USER_HZ
}

/** CPU seconds of this process (user + system). */
const ownCpuSeconds = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1e6
}

/** Runs `command` under /usr/bin/time: its CPU seconds (user + system). */
const cpuOf = async (command: string, args: ReadonlyArray<string>): Promise<number> => {
  const file = Path.join(Os.tmpdir(), `droptailer-bench-time-${process.pid}`)
  await run("/usr/bin/time", ["-o", file, "-f", "%U %S", command, ...args])
  const [user, system] = Fs.readFileSync(file, "utf8").trim().split(/\s+/).map(Number)
  Fs.rmSync(file, { force: true })
  return user! + system!
}

const run = (command: string, args: ReadonlyArray<string>, input?: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(command, args, { stdio: [input === undefined ? "ignore" : "pipe", "ignore", "inherit"] })
    child.on("error", reject)
    child.on("exit", (code) => (code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`${command} exited ${code}`))))
    if (input !== undefined) child.stdin!.end(input)
  })

/**
 * The same journalctl with its stdout piped into this process, which only drops the chunks: what
 * journalctl can deliver to a reader that does nothing (writing into a pipe costs journalctl more
 * than writing to /dev/null: copies and wake-ups). The client's own reading is measured against both.
 */
const runPiped = (command: string, args: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] })
    child.stdout!.on("data", () => undefined)
    child.on("error", reject)
    child.on("exit", (code) => (code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`${command} exited ${code}`))))
  })

const countEntries = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn("journalctl", ["-q", "-o", "cat", `SYSLOG_IDENTIFIER=${identifier}`], { stdio: ["ignore", "pipe", "inherit"] })
    let count = 0
    child.stdout.on("data", (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) count++
    })
    child.on("error", reject)
    child.on("exit", () => resolve(count))
  })

const rate = (entries: number, seconds: number) => Math.round(entries / seconds)
const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`

const main = async () => {
  const lacking = missing(["root", "journald"])
  if (lacking.length > 0) throw new Error(`bench/journal.ts needs ${lacking.join("; ")}`)
  console.log(`${reused === undefined ? "writing" : "reusing"} ${total} entries (SYSLOG_IDENTIFIER=${identifier}) ...`)
  for (let n = 0; reused === undefined && n < total; n += 10_000) {
    const chunk = Array.from({ length: Math.min(10_000, total - n) }, (_, i) => line(n + i)).join("\n")
    await run("logger", ["--socket", "/run/systemd/journal/dev-log", "-t", identifier], `${chunk}\n`)
  }
  for (let waited = 0; (await countEntries()) < total; waited++) {
    if (waited > 100 || reused !== undefined) throw new Error(`journald does not hold ${total} entries of ${identifier}`)
    await new Promise((r) => setTimeout(r, 100))
  }

  const rawArgs = journalctlArgs(options, { _tag: "Oldest" }, false)
  // the command JournalSource runs (under stdbuf when it is there), with those arguments
  const [rawCommand, rawCommandArgs] = journalctlCommand("journalctl", rawArgs)

  // The client pipeline, with a no-op acknowledging sink. Memory is sampled (first client run) when
  // the acknowledged count crosses each mark.
  let acknowledged = 0
  /** Resolves the client run's wait when every entry is acknowledged (no polling in the measured process). */
  let allAcknowledged: (() => void) | undefined
  const marks = [20_000, 50_000, 100_000].filter((m) => m <= total)
  if (!marks.includes(total)) marks.push(total)
  const samples = new Map<number, { rss: number; maxRSS: number; heapUsed: number; heapTotal: number; arrayBuffers: number }>()
  const sink = Layer.succeed(EventSink, EventSink.of({
    deliver: (batch) =>
      Effect.sync(() => {
        const before = acknowledged
        acknowledged += batch.length
        if (acknowledged >= total) allAcknowledged?.()
        for (const mark of marks) {
          if (before < mark && acknowledged >= mark && !samples.has(mark)) {
            const m = process.memoryUsage()
            samples.set(mark, {
              rss: m.rss / 1024,
              maxRSS: process.resourceUsage().maxRSS,
              heapUsed: m.heapUsed / 1024,
              heapTotal: m.heapTotal / 1024,
              arrayBuffers: m.arrayBuffers / 1024
            })
          }
        }
      })
  }))
  const clientCpu: Array<{ node: number; journalctl: number }> = []
  const clientRun = async () => {
    acknowledged = 0
    const done = new Promise<void>((resolve) => {
      allAcknowledged = resolve
    })
    const stateDirectory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "droptailer-bench-"))
    const layer = ClientPipeline.layerWith({ prefixes: defaultPrefixes, start: { _tag: "Oldest" } }).pipe(
      Layer.provideMerge(Layer.mergeAll(
        JournalSource.layerWith(options).pipe(Layer.provide(NodeServices.layer)),
        CheckpointStore.layerWith({ directory: stateDirectory }),
        sink
      ))
    )
    const started = performance.now()
    const cpuBefore = ownCpuSeconds()
    let seconds = 0
    await Effect.runPromise(Effect.gen(function*() {
      const pipeline = yield* ClientPipeline
      const fiber = yield* Effect.forkChild(pipeline.run)
      yield* Effect.promise(() => done)
      seconds = (performance.now() - started) / 1000
      clientCpu.push({ node: ownCpuSeconds() - cpuBefore, journalctl: childCpuSeconds("journalctl") })
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer), Effect.provideService(Logger.LogToStderr, true)))
    Fs.rmSync(stateDirectory, { recursive: true, force: true })
    return seconds
  }

  // The source alone (journalctl + split + Schema decode), for reference.
  const sourceRun = async () => {
    const started = performance.now()
    let n = 0
    await Effect.runPromise(Effect.gen(function*() {
      const source = yield* JournalSource
      yield* source.read({ _tag: "Oldest" }).pipe(Stream.runForEachArray((entries) => Effect.sync(() => void (n += entries.length))))
    }).pipe(Effect.provide(JournalSource.layerWith(options).pipe(Layer.provide(NodeServices.layer)))))
    if (n !== total) throw new Error(`source read ${n} of ${total}`)
    return (performance.now() - started) / 1000
  }

  // Alternate raw and client runs (the machine is shared: take the best of each).
  const rssBefore = process.memoryUsage().rss / 1024
  const heapBefore = process.memoryUsage().heapUsed / 1024
  const readBefore = await Effect.runPromise(Metric.value(journalEntriesRead))
  const raws: Array<number> = []
  const piped: Array<number> = []
  const clients: Array<number> = []
  const sources: Array<number> = []
  let rssAfterFirst = 0
  const rawCpu: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    console.log(`round ${round + 1}/${rounds}, load average ${Os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
    raws.push(await run(rawCommand, rawCommandArgs))
    piped.push(await runPiped(rawCommand, rawCommandArgs))
    rawCpu.push(await cpuOf(rawCommand, rawCommandArgs))
    clients.push(await clientRun())
    sources.push(await sourceRun())
    if (round === 0) rssAfterFirst = process.resourceUsage().maxRSS
  }
  const rssAtEnd = process.resourceUsage().maxRSS
  const read = (await Effect.runPromise(Metric.value(journalEntriesRead))).count - readBefore.count
  const rawSeconds = Math.min(...raws)
  const seconds = Math.min(...clients)
  const list = (xs: Array<number>) => xs.map((x) => x.toFixed(2)).join(", ")

  console.log("")
  console.log(`output mode: journalctl ${rawArgs.filter((a) => a.startsWith("--output")).join(" ")}${rawCommand === "journalctl" ? "" : ` (run as ${rawCommand} ${rawCommandArgs[0]} journalctl ...)`}`)
  console.log(`raw journalctl read:      ${rate(total, rawSeconds)} entries/s (best of ${list(raws)} s)`)
  console.log(`client source+parse+sink: ${rate(total, seconds)} events/s (best of ${list(clients)} s; ${read} entries read in all)`)
  console.log(`ratio:                    ${(rawSeconds / seconds).toFixed(2)} (target >= 0.9)`)
  const pipedSeconds = Math.min(...piped)
  console.log(`raw into a pipe, dropped: ${rate(total, pipedSeconds)} entries/s (best of ${list(piped)} s); client / that: ${(pipedSeconds / seconds).toFixed(2)}`)
  const us = (cpu: number) => `${((cpu * 1e6) / total).toFixed(1)}`
  console.log(`CPU µs per entry:         raw journalctl ${rawCpu.map(us).join(", ")}; client runs: node ${clientCpu.map((c) => us(c.node)).join(", ")}, its journalctl ${clientCpu.map((c) => us(c.journalctl)).join(", ")}`)
  const sourceSeconds = Math.min(...sources)
  console.log(`source alone (no parse):  ${rate(total, sourceSeconds)} entries/s (best of ${list(sources)} s), ratio ${(rawSeconds / sourceSeconds).toFixed(2)}`)
  console.log(`peak RSS:                 ${mb(rssAfterFirst)} after the first client run, ${mb(rssAtEnd)} after ${rounds} runs of each`)
  console.log(`load average at the end:  ${Os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  console.log(`memory during the first client run (before it: RSS ${mb(rssBefore)}, heapUsed ${mb(heapBefore)}):`)
  for (const mark of marks) {
    const m = samples.get(mark)
    if (m === undefined) continue
    console.log(
      `  at ${`${mark / 1000}k`.padEnd(5)} RSS ${mb(m.rss).padStart(6)} (peak ${mb(m.maxRSS)})  heapUsed ${mb(m.heapUsed).padStart(6)}  heapTotal ${mb(m.heapTotal).padStart(6)}  arrayBuffers ${mb(m.arrayBuffers)}`
    )
  }
  const others: Array<[string, Array<string>]> = [
    ["-o export --output-fields", rawArgs.filter((a) => !options.matches.includes(a))],
    ["-o json", ["-q", "-o", "json"]],
    ["-o json --output-fields", ["-q", "-o", "json", "--output-fields=MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER"]],
    ["-o export", ["-q", "-o", "export"]]
  ]

  if (process.env.BENCH_JOURNAL_OTHERS === "0") return
  console.log("")
  console.log("journalctl itself (no stdbuf) in this and other output modes over the same entries (raw, to /dev/null):")
  for (const [name, args] of others) {
    const s = await run("journalctl", [...args, `SYSLOG_IDENTIFIER=${identifier}`])
    console.log(`  ${name.padEnd(28)} ${rate(total, s)} entries/s`)
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
