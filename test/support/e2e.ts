/**
 * Helpers for the end-to-end tests (test/e2e) and bench/e2e.ts: `droptailer server` and
 * `droptailer client` as real child processes (certificates from the real `droptailer certs`),
 * their /metrics scraped and parsed, the Kubernetes test API server with a pod that owns
 * 127.0.0.1, journal lines that carry a sequence number, and a tally of lost and duplicated lines.
 *
 * Every process started here is SIGKILLed when the test process exits, whatever happens.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { KubeApiServer } from "./kube-api-server.ts"
import { owned, pod } from "./kube-fixtures.ts"
import { sleep, waitFor } from "./journal.ts"

export const repoRoot = Path.resolve(import.meta.dirname, "../..")
export const nodeBin = Path.join(repoRoot, "node_modules/.bin/node")
export const binTs = Path.join(repoRoot, "src/main/bin.ts")

export { sleep }

/** `waitFor` with the longer default timeout that whole-pipeline checks need. */
export const poll = <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  timeoutMillis = 30_000,
  intervalMillis = 50
): Promise<A> => waitFor(what, check, timeoutMillis, intervalMillis)

// ---- temporary directories ------------------------------------------------------------------

const tempDirs = new Set<string>()
export const tempDir = (label: string): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), `droptailer-e2e-${label}-`))
  tempDirs.add(dir)
  return dir
}
export const removeTempDir = (dir: string): void => {
  Fs.rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}
process.on("exit", () => {
  for (const dir of tempDirs) Fs.rmSync(dir, { recursive: true, force: true })
})

// ---- certificates ---------------------------------------------------------------------------

/** Certificates made by the real `droptailer certs` command, in a fresh temporary directory. */
export const makeCerts = (): string => {
  const dir = tempDir("certs")
  execFileSync(nodeBin, [binTs, "certs", "--out", dir, "--server-dns", "droptailer", "--client-name", "fw-e2e"], {
    cwd: repoRoot,
    stdio: "pipe",
    timeout: 60_000
  })
  return dir
}

export const serverTls = (certs: string): Record<string, string> => ({
  SERVER_CERTIFICATE: Path.join(certs, "server/tls.crt"),
  SERVER_KEY: Path.join(certs, "server/tls.key"),
  SERVER_CA_CERTIFICATE: Path.join(certs, "server/ca.crt")
})

export const clientTls = (certs: string): Record<string, string> => ({
  DROPTAILER_CA_CERTIFICATE: Path.join(certs, "client/ca.crt"),
  DROPTAILER_CLIENT_CERTIFICATE: Path.join(certs, "client/tls.crt"),
  DROPTAILER_CLIENT_KEY: Path.join(certs, "client/tls.key")
})

// ---- processes ------------------------------------------------------------------------------

const live = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

export interface Droptailer {
  readonly role: "server" | "client"
  readonly child: ChildProcess
  readonly pid: number
  /** Complete stdout lines so far (unless an `onLine` handler was given). */
  readonly lines: Array<string>
  /** Number of complete stdout lines so far. */
  readonly lineCount: () => number
  readonly stderr: () => string
  readonly metricsPort: number
  /** The gRPC port (server only). */
  readonly grpcPort: number
  readonly running: () => boolean
  readonly exited: Promise<void>
  /** Sends `signal` (when still running) and waits for the exit. */
  readonly kill: (signal?: NodeJS.Signals) => Promise<void>
  readonly metrics: () => Promise<Metrics>
  readonly ready: () => Promise<boolean>
}

export interface StartOptions {
  /** Called for every complete stdout line instead of collecting it in `lines`. */
  readonly onLine?: (line: string) => void
  readonly nodeArgs?: ReadonlyArray<string>
  readonly startTimeoutMillis?: number
}

/**
 * Starts `droptailer <role>` (node src/main/bin.ts) with exactly `env` (plus PATH and HOME); resolves
 * once it serves metrics (and, for the server, listens for gRPC).
 */
export const startDroptailer = (
  role: "server" | "client",
  env: Record<string, string>,
  options: StartOptions = {}
): Promise<Droptailer> =>
  new Promise((resolve, reject) => {
    const extra = process.env.DROPTAILER_PROFILE_DIR ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.DROPTAILER_PROFILE_DIR}`] : []
    const child = spawn(nodeBin, [...extra, ...(options.nodeArgs ?? []), binTs, role], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: Os.tmpdir(),
        DROPTAILER_METRICS_ADDRESS: "127.0.0.1:0",
        ...(role === "server" ? { DROPTAILER_LISTEN_ADDRESS: "127.0.0.1", SERVER_PORT: "0" } : {}),
        ...env
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    live.add(child)
    const lines: Array<string> = []
    let count = 0
    let partial = ""
    let stderr = ""
    let metricsPort = 0
    let grpcPort = 0
    let settled = false
    const onLine = options.onLine ?? ((line: string) => void lines.push(line))
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (text: string) => {
      const parts = (partial + text).split("\n")
      partial = parts.pop()!
      count += parts.length
      for (const line of parts) onLine(line)
    })
    const exited = new Promise<void>((done) =>
      child.on("exit", () => {
        live.delete(child)
        done()
      })
    )
    const running = () => child.exitCode === null && child.signalCode === null
    const timer = setTimeout(() => {
      if (!settled) {
        settled = true
        child.kill("SIGKILL")
        reject(new Error(`droptailer ${role} did not start in time: ${stderr}`))
      }
    }, options.startTimeoutMillis ?? 60_000)
    const check = () => {
      if (settled) return
      if (metricsPort === 0) {
        const m = /metrics, \/healthz and \/readyz on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)
        if (m !== null) metricsPort = Number(m[1])
      }
      if (role === "server" && grpcPort === 0) {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr)
        if (m !== null) grpcPort = Number(m[1])
      }
      if (metricsPort !== 0 && (role === "client" || grpcPort !== 0)) {
        settled = true
        clearTimeout(timer)
        const process: Droptailer = {
          role,
          child,
          pid: child.pid!,
          lines,
          lineCount: () => count,
          stderr: () => stderr,
          metricsPort,
          grpcPort,
          running,
          exited,
          kill: async (signal = "SIGKILL") => {
            if (running()) child.kill(signal)
            await exited
          },
          metrics: () => scrape(metricsPort),
          ready: async () => {
            try {
              return (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200
            } catch {
              return false
            }
          }
        }
        resolve(process)
      }
    }
    child.stderr!.setEncoding("utf8")
    child.stderr!.on("data", (text: string) => {
      stderr = (stderr + text).slice(-200_000)
      check()
    })
    void exited.then(() => {
      if (!settled) {
        settled = true
        clearTimeout(timer)
        reject(new Error(`droptailer ${role} exited (${child.exitCode ?? child.signalCode}) before it started: ${stderr}`))
      }
    })
  })

// ---- /proc accounting (bench) ---------------------------------------------------------------

const ticksPerSecond = 100 // USER_HZ

/** Fields 3.. of /proc/PID/stat (index 0 is the state), or undefined once the process is gone. */
const statFields = (pid: number): Array<string> | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** utime + stime of a process, in seconds (0 when it is gone). */
export const cpuSeconds = (pid: number): number => {
  const fields = statFields(pid)
  return fields === undefined ? 0 : (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
}

/** CPU seconds of the children `pid` has waited for (cutime + cstime): its child processes that exited. */
export const childrenCpuSeconds = (pid: number): number => {
  const fields = statFields(pid)
  return fields === undefined ? 0 : (Number(fields[13]) + Number(fields[14])) / ticksPerSecond
}

/** A `Vm*` line of /proc/<pid>/status in MB (VmHWM: peak RSS, VmRSS: current RSS). */
export const memoryMB = (pid: number, field: "VmHWM" | "VmRSS"): number => {
  try {
    const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)
    return m === null ? 0 : Number(m[1]) / 1024
  } catch {
    return 0
  }
}

// ---- metrics --------------------------------------------------------------------------------

export interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

export class Metrics {
  readonly samples: ReadonlyArray<Sample>
  constructor(samples: ReadonlyArray<Sample>) {
    this.samples = samples
  }
  /** Sum of the samples named `name` whose labels include `labels`. */
  sum(name: string, labels: Record<string, string> = {}): number {
    let total = 0
    for (const s of this.samples) {
      if (s.name !== name) continue
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value
    }
    return total
  }
}

export const parseMetrics = (text: string): Metrics => {
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    if (m[2] !== undefined) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return new Metrics(samples)
}

export const scrape = async (port: number): Promise<Metrics> => {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`)
  return parseMetrics(await response.text())
}

// ---- Kubernetes -----------------------------------------------------------------------------

export interface Cluster {
  readonly api: KubeApiServer
  readonly kubeconfig: string
  readonly namespace: string
  readonly pod: string
  readonly workload: { readonly kind: string; readonly name: string }
  /** Stops the API server and removes the kubeconfig. */
  readonly stop: () => Promise<void>
}

/**
 * The test API server with a Deployment → ReplicaSet → Pod whose IP is `ip` (127.0.0.1: the
 * loopback packets' source and destination), and a kubeconfig pointing at it.
 */
export const startCluster = async (ip = "127.0.0.1"): Promise<Cluster> => {
  const api = new KubeApiServer({ bookmarkIntervalMillis: 1000 })
  await api.start()
  const namespace = "shop"
  api.add("namespaces", { metadata: { name: namespace } })
  api.add("deployments", owned("web", namespace))
  api.add("replicasets", owned("web-7c9d8", namespace, { kind: "Deployment", name: "web" }))
  api.add("pods", pod({ name: "web-7c9d8-x2x4q", namespace, ips: [ip], node: "node-1", owner: { kind: "ReplicaSet", name: "web-7c9d8" } }))
  const dir = tempDir("kube")
  const kubeconfig = api.writeKubeconfig(Path.join(dir, "kubeconfig"))
  const stop = async () => {
    await api.stop()
    removeTempDir(dir)
  }
  return { api, kubeconfig, namespace, pod: "web-7c9d8-x2x4q", workload: { kind: "Deployment", name: "web" }, stop }
}

/** The server's Kubernetes settings for tests: short backoffs and Event flushes. */
export const clusterEnv = (cluster: Cluster): Record<string, string> => ({
  KUBECONFIG: cluster.kubeconfig,
  DROPTAILER_KUBERNETES: "true",
  DROPTAILER_KUBERNETES_BACKOFF_MAX: "2s",
  DROPTAILER_EVENTS_FLUSH_INTERVAL: "1s"
})

/**
 * `kubectl get events` (JSON) in the cluster's namespace, through the real kubectl. Asynchronous:
 * the API server lives in this process and must keep answering while kubectl runs.
 */
export const kubectlEvents = (cluster: Cluster, fieldSelector?: string): Promise<Array<any>> =>
  new Promise((resolve, reject) => {
    const args = ["--kubeconfig", cluster.kubeconfig, "get", "events", "-n", cluster.namespace, "-o", "json"]
    if (fieldSelector !== undefined) args.push("--field-selector", fieldSelector)
    execFile("kubectl", args, { encoding: "utf8", timeout: 30_000, env: { ...process.env, HOME: Os.tmpdir() } }, (error, out) => {
      if (error !== null) return reject(error)
      resolve((JSON.parse(out) as { items: Array<any> }).items)
    })
  })

// ---- journal lines with sequence numbers ----------------------------------------------------

/** The source address that carries sequence number `n` (24 bits): 10.a.b.c. */
export const seqAddress = (n: number): string => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`

/** Sequence number of a 10.a.b.c address; -1 for anything else. */
export const seqOfAddress = (ip: string): number => {
  const m = /^10\.(\d+)\.(\d+)\.(\d+)$/.exec(ip)
  return m === null ? -1 : (Number(m[1]) << 16) + (Number(m[2]) << 8) + Number(m[3])
}

/** A netfilter log line with `prefix` from seqAddress(n) to `dst` (a pod IP) port `port`. */
export const seqLine = (prefix: string, n: number, dst = "127.0.0.1", port = 8443): string =>
  `${prefix}IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=${seqAddress(n)} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=${
    n & 65535
  } DF PROTO=TCP SPT=${1024 + (n % 60000)} DPT=${port} WINDOW=65495 RES=0x00 SYN URGP=0`

const devLogSocket = "/run/systemd/journal/dev-log"

/** Writes lines as journal entries through logger (one entry each) with SYSLOG_IDENTIFIER `identifier`. */
export const logLines = (identifier: string, lines: ReadonlyArray<string>): Promise<void> =>
  new Promise((resolve, reject) => {
    if (lines.length === 0) return resolve()
    const child = spawn("logger", ["--socket", devLogSocket, "-t", identifier], { stdio: ["pipe", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("error", reject)
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`logger exited ${code}: ${stderr}`))))
    child.stdin.end(`${lines.join("\n")}\n`)
  })

/** Entries with SYSLOG_IDENTIFIER `identifier` in the journal now. */
export const journalCount = (identifier: string): number => {
  const out = execFileSync("journalctl", ["-q", "--no-pager", "-o", "cat", `SYSLOG_IDENTIFIER=${identifier}`], {
    maxBuffer: 1 << 30
  })
  let n = 0
  for (let i = out.indexOf(10); i !== -1; i = out.indexOf(10, i + 1)) n++
  return n
}

/**
 * Writes lines `from` … `to - 1` (seqLine) in batches of `batch`, about `perSecond` lines a second;
 * `between(n)` runs after each batch with the next sequence number (e.g. to inject a fault).
 */
export const writePaced = async (
  identifier: string,
  prefix: string,
  from: number,
  to: number,
  options: { perSecond: number; batch?: number; between?: (next: number) => Promise<void> | void; dst?: string }
): Promise<void> => {
  const batch = options.batch ?? Math.max(1, Math.round(options.perSecond / 10))
  const started = Date.now()
  for (let n = from; n < to; n += batch) {
    const end = Math.min(n + batch, to)
    await logLines(identifier, Array.from({ length: end - n }, (_, i) => seqLine(prefix, n + i, options.dst)))
    await options.between?.(end)
    const due = started + ((end - from) / options.perSecond) * 1000
    const wait = due - Date.now()
    if (wait > 0) await sleep(wait)
  }
}

// ---- the tally of lost and duplicated lines -------------------------------------------------

/** Counts, per sequence number, how often it was printed. */
export class Tally {
  readonly seen: Uint16Array
  printed = 0
  foreign = 0
  unenriched = 0
  readonly total: number
  constructor(total: number) {
    this.total = total
    this.seen = new Uint16Array(total)
  }
  /** One JSON line of the server's stdout. */
  add(line: string, enrichedKind?: string): number {
    if (line === "") return -1
    const event = JSON.parse(line) as { src: { ip: string }; dst: { kind?: string } }
    const n = seqOfAddress(event.src.ip)
    if (n < 0 || n >= this.total) {
      this.foreign++
      return -1
    }
    this.printed++
    if (this.seen[n]! < 65535) this.seen[n]!++
    if (enrichedKind !== undefined && event.dst.kind !== enrichedKind) this.unenriched++
    return n
  }
  get distinct(): number {
    let d = 0
    for (const c of this.seen) if (c > 0) d++
    return d
  }
  get lost(): number {
    return this.total - this.distinct
  }
  get duplicated(): number {
    return this.printed - this.distinct
  }
  missing(limit = 10): Array<number> {
    const out: Array<number> = []
    for (let i = 0; i < this.total && out.length < limit; i++) if (this.seen[i] === 0) out.push(i)
    return out
  }
}
