/**
 * Helpers for tests against the real systemd-journald (see DESIGN.md "Real components"):
 * writing entries fast but safely (logger to the journal's syslog socket, or /dev/kmsg as the
 * kernel), unique markers so tests that share the journal with other engineers' tests only see
 * their own entries, waiting, and running `droptailer client --stdout` as a real child process.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export const repoRoot = Path.resolve(import.meta.dirname, "../..")
export const devLogSocket = "/run/systemd/journal/dev-log"
const kernelSeqnumFile = "/run/systemd/journal/kernel-seqnum"
const printkDevkmsg = "/proc/sys/kernel/printk_devkmsg"

/** A marker unique to this process and call: use it as SYSLOG_IDENTIFIER or in a prefix. */
export const uniqueMarker = (label = "dt"): string =>
  `${label}${process.pid.toString(36)}${Date.now().toString(36)}${randomBytes(3).toString("hex")}`

export const sleep = (millis: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, millis))

/** Polls `check` until it returns something other than undefined/false; fails after `timeoutMillis`. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  timeoutMillis = 20_000,
  intervalMillis = 50
): Promise<A> => {
  const deadline = Date.now() + timeoutMillis
  for (;;) {
    const result = await check()
    if (result !== undefined && result !== false) return result
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMillis} ms waiting for ${what}`)
    await sleep(intervalMillis)
  }
}

/**
 * Writes each message as one journal entry through `logger` on the journal's syslog socket, with
 * `identifier` as SYSLOG_IDENTIFIER (use a unique one and match on it). Thousands per second.
 */
export const writeViaLogger = (identifier: string, messages: ReadonlyArray<string>): Promise<void> =>
  new Promise((resolve, reject) => {
    for (const m of messages) if (m.includes("\n")) return reject(new Error("a logger message must not contain a newline"))
    const child = spawn("logger", ["--socket", devLogSocket, "-t", identifier], { stdio: ["pipe", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("error", reject)
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`logger exited ${code}: ${stderr}`))))
    child.stdin.end(messages.length === 0 ? "" : `${messages.join("\n")}\n`)
  })

const readKernelSeqnum = (): bigint => {
  try {
    return Fs.readFileSync(kernelSeqnumFile).readBigUInt64LE(0)
  } catch {
    return -1n
  }
}

/**
 * Runs `body` with `/proc/sys/kernel/printk_devkmsg` set to `on` (no 10-per-5s limit on /dev/kmsg),
 * restoring the previous value afterwards, whatever happens.
 */
export const withDevkmsgUnlimited = async <A>(body: () => Promise<A>): Promise<A> => {
  const before = Fs.readFileSync(printkDevkmsg, "utf8").trim()
  if (before !== "on") Fs.writeFileSync(printkDevkmsg, "on\n")
  try {
    return await body()
  } finally {
    if (before !== "on") Fs.writeFileSync(printkDevkmsg, `${before}\n`)
  }
}

/**
 * Writes each message to /dev/kmsg as `kernel: <message>` — a genuine kernel-transport entry
 * (`_TRANSPORT=kernel`, `SYSLOG_IDENTIFIER=kernel`). Paces itself against journald's progress
 * (kernel-seqnum) so the kernel ring buffer (~500 such lines) never overflows. Call inside
 * `withDevkmsgUnlimited` for more than 10 lines.
 */
export const writeViaKmsg = async (messages: ReadonlyArray<string>, window = 100): Promise<void> => {
  const fd = Fs.openSync("/dev/kmsg", "w")
  try {
    let start = readKernelSeqnum()
    let written = 0
    for (const message of messages) {
      if (message.includes("\n")) throw new Error("a kmsg message must not contain a newline")
      if (start >= 0n) {
        const deadline = Date.now() + 10_000
        while (BigInt(written) - (readKernelSeqnum() - start) >= BigInt(window)) {
          if (Date.now() > deadline) throw new Error("journald does not keep up with /dev/kmsg")
          await sleep(5)
        }
      }
      Fs.writeSync(fd, `kernel: ${message}\n`)
      written++
      if (start < 0n) start = readKernelSeqnum() - 1n
    }
  } finally {
    Fs.closeSync(fd)
  }
}

/** Messages (`-o cat`) of the entries matching `matches`, e.g. `SYSLOG_IDENTIFIER=<marker>`. */
export const journalMessages = (matches: ReadonlyArray<string>): Array<string> =>
  execFileSync("journalctl", ["-q", "--no-pager", "-o", "cat", ...matches], { encoding: "utf8", maxBuffer: 1 << 28 })
    .split("\n")
    .filter((l) => l.length > 0)

/** A drop line with the given prefix that the parser turns into an event with DPT = `port`. */
export const dropLine = (prefix: string, n: number, port = 443): string =>
  `${prefix}IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=10.0.${(n >> 8) & 255}.${n & 255} DST=127.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=${
    n & 65535
  } DF PROTO=TCP SPT=${1024 + (n % 60000)} DPT=${port} WINDOW=65495 RES=0x00 SYN URGP=0`

export const makeStateDirectory = (): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), "droptailer-state-"))

/** `droptailer client --stdout` running as a child process. */
export interface RunningClient {
  readonly child: ChildProcess
  readonly pid: number
  /** Stdout lines so far (complete lines only). */
  readonly lines: Array<string>
  /** Stdout lines parsed as JSON. */
  readonly events: () => Array<any>
  readonly stderr: () => string
  readonly exited: Promise<number | null>
  /** Waits until `predicate(lines)` holds. */
  readonly waitForLines: (what: string, predicate: (lines: ReadonlyArray<string>) => boolean, timeoutMillis?: number) => Promise<void>
  /** Pids of the client's child processes with this command name (e.g. journalctl). */
  readonly children: (command: string) => Array<number>
  /** Sends `signal` and waits for the exit. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

const running = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

export const childPidsOf = (pid: number, command: string): Array<number> => {
  const out: Array<number> = []
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // pid (comm) state ppid ...
      const close = stat.lastIndexOf(")")
      const comm = stat.slice(stat.indexOf("(") + 1, close)
      const ppid = Number(stat.slice(close + 2).split(" ")[1])
      if (ppid === pid && comm === command) out.push(Number(entry))
    } catch {
      // gone
    }
  }
  return out
}

/** Starts `node src/main/bin.ts client --stdout` with `env` added to this process's environment. */
export const startClient = (env: Record<string, string>): RunningClient => {
  const child = spawn(
    Path.join(repoRoot, "node_modules/.bin/node"),
    [Path.join(repoRoot, "src/main/bin.ts"), "client", "--stdout"],
    { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }
  )
  running.add(child)
  const lines: Array<string> = []
  let partial = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8")
  child.stdout!.on("data", (text: string) => {
    const parts = (partial + text).split("\n")
    partial = parts.pop()!
    for (const line of parts) lines.push(line)
  })
  child.stderr!.setEncoding("utf8")
  child.stderr!.on("data", (text: string) => {
    stderr = (stderr + text).slice(-64_000)
  })
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code, signal) => {
      running.delete(child)
      resolve(code ?? (signal === null ? null : -1))
    })
  )
  return {
    child,
    pid: child.pid!,
    lines,
    events: () => lines.map((l) => JSON.parse(l)),
    stderr: () => stderr,
    exited,
    waitForLines: (what, predicate, timeoutMillis = 30_000) =>
      waitFor(what, () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`client exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}: ${stderr}`)
        }
        return predicate(lines)
      }, timeoutMillis).then(() => undefined),
    children: (command) => childPidsOf(child.pid!, command),
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    }
  }
}
