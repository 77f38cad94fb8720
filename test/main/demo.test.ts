/**
 * `npm start` (the demo) as the README runs it: server and client in one process over loopback gRPC
 * with fresh certificates, following the real journal. A line written with `logger -t kernel`
 * comes out as a JSON event on stdout; SIGINT stops it with exit 0. Without journald (forced with
 * DROPTAILER_DEMO_INPUT=stdin, or detected) it reads kernel lines from stdin and ships them the same way.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomInt } from "node:crypto"
import { type AddressInfo, createServer } from "node:net"
import { mkdtempSync, rmSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { describeWith } from "../support/environment.ts"
import { devLogSocket, sleep, waitFor } from "../support/journal.ts"
import { KubeApiServer } from "../support/kube-api-server.ts"
import { pod } from "../support/kube-fixtures.ts"
import { baseEnv, type Droptailer, get, killAll, repoRoot, startDroptailer } from "../support/process.ts"
import { parsePrometheus, sampleSum } from "../support/prometheus.ts"

const spawned: Array<ChildProcess> = []
afterEach(async () => {
  for (const child of spawned.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, "SIGKILL") // npm, its shell and the demo: one process group
      } catch {
        // gone
      }
    }
  }
  await killAll()
})

/** The README's drop line with a unique source port and IP id, so the test finds its own event. */
const uniqueDropLine = () => {
  const spt = randomInt(20_000, 60_000)
  const id = randomInt(1, 65_535)
  return {
    spt,
    id,
    line: `nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=1.2.3.4 DST=4.3.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=${id} PROTO=TCP SPT=${spt} DPT=445 WINDOW=1024 RES=0x00 SYN URGP=0`
  }
}

const events = (lines: ReadonlyArray<string>): Array<any> => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))

describeWith(["root", "journald"], "npm start (the demo) on this machine's journal", () => {
  it("prints a line written with `logger -t kernel` as a JSON event within seconds, and stops on SIGINT with exit 0", async () => {
    const child = spawn("npm", ["start"], {
      cwd: repoRoot,
      detached: true, // its own process group, so afterEach can kill npm, sh and node together
      env: baseEnv({
        PATH: `${Path.join(repoRoot, "node_modules/.bin")}:${process.env.PATH ?? "/usr/bin:/bin"}`,
        DROPTAILER_METRICS_ADDRESS: "127.0.0.1:0" // not the default 9090: other tests may run a demo too
      }),
      stdio: ["ignore", "pipe", "pipe"]
    })
    spawned.push(child)
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (text: string) => (stdout += text))
    child.stderr!.setEncoding("utf8").on("data", (text: string) => (stderr += text))
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
    const lines = () => stdout.split("\n")

    await waitFor("the demo to be ready", () => {
      if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}: ${stderr}`)
      return /following the journal/.test(stderr)
    }, 60_000, 100)
    expect(stderr).toMatch(/logger -t kernel .*nftables-metal-dropped: IN=vrf09 OUT= .*SRC=1\.2\.3\.4 DST=4\.3\.2\.1 .*PROTO=TCP SPT=59265 DPT=445 .*SYN URGP=0/)
    expect(stderr).toMatch(/without Kubernetes enrichment/) // no KUBECONFIG: said once
    expect(stderr.match(/without Kubernetes enrichment/g)).toHaveLength(1)

    // journalctl may still be starting (`new` skips what came before it): write until one shows up
    const written: Array<{ spt: number; id: number }> = []
    const startedAt = Date.now()
    const seen = await waitFor("a drop written with logger to come out", async () => {
      const { spt, id, line } = uniqueDropLine()
      written.push({ spt, id })
      execFileSync("logger", ["--socket", devLogSocket, "-t", "kernel", line])
      const deadline = Date.now() + 3000
      while (Date.now() < deadline) {
        const mine = events(lines()).find((e) => written.some((w) => e.src?.port === w.spt && e.ip?.id === w.id))
        if (mine !== undefined) return mine
        await sleep(100)
      }
      return undefined
    }, 45_000, 0)
    expect(Date.now() - startedAt).toBeLessThan(45_000)
    expect(seen).toMatchObject({
      action: "drop",
      protocol: "TCP",
      host: hostname(),
      src: { ip: "1.2.3.4" },
      dst: { ip: "4.3.2.1", port: 445 },
      in: "vrf09",
      fields: { SRC: "1.2.3.4", DPT: "445", ACTION: "drop" }
    })
    expect(seen.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)

    // one ops endpoint for both sides
    const ops = /metrics, \/healthz and \/readyz on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)![1]!
    const samples = parsePrometheus((await get(`${ops}/metrics`)).body)
    expect(sampleSum(samples, "droptailer_server_events_received_total")).toBeGreaterThanOrEqual(1)
    expect(sampleSum(samples, "droptailer_client_events_total", { action: "drop" })).toBeGreaterThanOrEqual(1)
    expect((await get(`${ops}/readyz`)).status).toBe(200)

    // Ctrl-C on the demo process (npm passes its exit code on)
    const demoPid = Number(
      execFileSync("pgrep", ["-f", "-g", String(child.pid), "src/main/bin.ts demo"], { encoding: "utf8" }).trim().split("\n").pop()
    )
    const stopping = Date.now()
    process.kill(demoPid, "SIGINT")
    expect(await exited).toBe(0)
    expect(Date.now() - stopping).toBeLessThan(5000)
    expect(stderr).toMatch(/server stopped/)
  }, 150_000)
})

/** The demo reading stdin: a non-firewall line, an accept and a drop go in, two events come out. */
const stdinDemo = async (env: Record<string, string>, beforeInput: (demo: Droptailer) => Promise<void> = async () => {}) => {
  const demo = startDroptailer(["demo"], { DROPTAILER_METRICS_ADDRESS: "127.0.0.1:0", ...env }, { stdin: "pipe" })
  await demo.waitForStderr(/demo ready: .*paste kernel log lines on stdin/)
  await beforeInput(demo)
  const { spt, line } = uniqueDropLine()
  demo.child.stdin!.write(`hello, not a firewall line\n${line.replace("dropped", "accepted")}\n${line}\n`)
  await demo.waitForLines("two events", (lines) => lines.length >= 2)
  const [accepted, dropped] = events(demo.lines)
  expect(accepted).toMatchObject({ action: "accept", host: hostname(), src: { ip: "1.2.3.4", port: spt }, dst: { port: 445 } })
  expect(dropped).toMatchObject({ action: "drop", host: hostname(), protocol: "TCP", src: { ip: "1.2.3.4", port: spt } })
  // "now": the timestamp is the time the line was read
  expect(Math.abs(Date.parse(dropped.timestamp) - Date.now())).toBeLessThan(60_000)
  expect(demo.stderr()).toMatch(/not a drop\/accept line/)
  return demo
}

describe("the demo without journald (stdin)", () => {
  it("DROPTAILER_DEMO_INPUT=stdin: kernel lines from stdin are shipped and printed; SIGINT exits 0", async () => {
    // the metrics address is taken (Prometheus on 9090, say): the demo says so and uses a free port
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    try {
      const port = (taken.address() as AddressInfo).port
      const demo = await stdinDemo({ DROPTAILER_DEMO_INPUT: "stdin", DROPTAILER_METRICS_ADDRESS: `127.0.0.1:${port}` })
      expect(demo.stderr()).toMatch(/cannot serve \/metrics there .*using a free port instead/)
      const ops = /metrics, \/healthz and \/readyz on (http:\/\/127\.0\.0\.1:\d+)/.exec(demo.stderr())![1]!
      expect((await get(`${ops}/healthz`)).status).toBe(200)
      const stopped = await demo.stop("SIGINT")
      expect(stopped.code).toBe(0)
      expect(stopped.millis).toBeLessThan(5000)
    } finally {
      await new Promise((resolve) => taken.close(resolve))
    }
  }, 90_000)

  it("says so when journald cannot be read, falls back to stdin, enriches from KUBECONFIG, and stops at the end of input with exit 0", async () => {
    // with a KUBECONFIG the demo enriches from that cluster: 1.2.3.4 is a pod there
    const kube = new KubeApiServer()
    kube.add("pods", pod({ name: "web-1", namespace: "shop", ips: ["1.2.3.4"], node: "node-7" }))
    await kube.start()
    const dir = mkdtempSync(Path.join(tmpdir(), "droptailer-demo-test-"))
    try {
      const kubeconfig = kube.writeKubeconfig(Path.join(dir, "kubeconfig"))
      const demo = await stdinDemo({ DROPTAILER_JOURNALCTL: "/bin/false", KUBECONFIG: kubeconfig }, async (running) => {
        const ops = (await running.waitForStderr(/metrics, \/healthz and \/readyz on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
        await waitFor("the informers to sync", async () => (await get(`${ops}/readyz`)).status === 200, 30_000, 100)
      })
      expect(demo.stderr()).toMatch(/reading kernel log lines from stdin instead/)
      expect(demo.stderr()).toMatch(/Kubernetes enrichment and Events via http:\/\/127\.0\.0\.1:\d+ \(kubeconfig/)
      expect(events(demo.lines)[1].src).toMatchObject({ ip: "1.2.3.4", kind: "pod", namespace: "shop", name: "web-1", node: "node-7" })
      demo.child.stdin!.end()
      expect(await demo.exited).toBe(0)
      expect(demo.lines.length).toBe(2)
    } finally {
      await kube.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
