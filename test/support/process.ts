/**
 * A `droptailer <subcommand>` as a real child process (`node_modules/.bin/node src/main/bin.ts`):
 * stdout lines and stderr collected, waiting helpers, stopping with a signal and timing the exit.
 * Every process started here is SIGKILLed when the test process exits, whatever happened.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { waitFor } from "./journal.ts"

export const repoRoot = Path.resolve(import.meta.dirname, "../..")
export const nodeBin = Path.join(repoRoot, "node_modules/.bin/node")
export const binTs = Path.join(repoRoot, "src/main/bin.ts")

export interface Droptailer {
  readonly child: ChildProcess
  readonly pid: number
  /** Complete stdout lines so far. */
  readonly lines: Array<string>
  readonly stderr: () => string
  /** Exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>
  readonly running: () => boolean
  /** Waits until stderr matches `pattern`; returns the match. Fails if the process exits first. */
  readonly waitForStderr: (pattern: RegExp, timeoutMillis?: number) => Promise<RegExpExecArray>
  /** Waits until `predicate(lines)` holds. Fails if the process exits first. */
  readonly waitForLines: (what: string, predicate: (lines: ReadonlyArray<string>) => boolean, timeoutMillis?: number) => Promise<void>
  /** Sends `signal`, waits for the exit: the code (null: killed by a signal) and how long it took. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; millis: number }>
}

const live = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

/** Kills whatever is still running (for afterEach). */
export const killAll = async (): Promise<void> => {
  const children = [...live]
  for (const child of children) child.kill("SIGKILL")
  await Promise.all(children.map((child) => new Promise((resolve) => (!live.has(child) ? resolve(undefined) : child.once("close", resolve)))))
}

/**
 * The environment of a started process: PATH and HOME of this one plus `env`; nothing else leaks in
 * (no KUBECONFIG, no DROPTAILER_* of the developer's shell).
 */
export const baseEnv = (env: Record<string, string>): Record<string, string> => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/root",
  ...env
})

export const startDroptailer = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  options: { readonly stdin?: "ignore" | "pipe"; readonly lines?: Array<string> } = {}
): Droptailer => {
  const child = spawn(nodeBin, [binTs, ...args], {
    cwd: repoRoot,
    env: baseEnv(env),
    stdio: [options.stdin ?? "ignore", "pipe", "pipe"]
  })
  live.add(child)
  const lines = options.lines ?? []
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
    stderr += text
    if (stderr.length > 4_000_000) stderr = stderr.slice(-2_000_000)
  })
  // "close", not "exit": by then stdout and stderr are read to the end
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      live.delete(child)
      resolve(code)
    })
  )
  const running = () => child.exitCode === null && child.signalCode === null
  const alive = (what: string) => {
    if (!running()) throw new Error(`droptailer ${args[0]} exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}:\n${stderr.slice(-4000)}`)
  }
  return {
    child,
    pid: child.pid!,
    lines,
    stderr: () => stderr,
    exited,
    running,
    waitForStderr: (pattern, timeoutMillis = 60_000) =>
      waitFor(`stderr to match ${pattern}`, () => {
        const match = pattern.exec(stderr)
        if (match !== null) return match
        alive(String(pattern))
        return undefined
      }, timeoutMillis),
    waitForLines: (what, predicate, timeoutMillis = 60_000) =>
      waitFor(what, () => {
        if (predicate(lines)) return true
        alive(what)
        return false
      }, timeoutMillis).then(() => undefined),
    stop: async (signal = "SIGTERM") => {
      const started = Date.now()
      if (running()) child.kill(signal)
      const code = await exited
      return { code, millis: Date.now() - started }
    }
  }
}

/** The ops endpoint the process announced on stderr (`metrics, /healthz and /readyz on http://...`). */
export const opsAddress = async (process: Droptailer): Promise<string> => {
  const match = await process.waitForStderr(/metrics, \/healthz and \/readyz on (http:\/\/127\.0\.0\.1:\d+)/)
  return match[1]!
}

export const get = async (url: string): Promise<{ status: number; body: string }> => {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  return { status: response.status, body: await response.text() }
}
