import { describe, expect, it } from "@effect/vitest"
import { execFileSync, spawnSync } from "node:child_process"
import { hostname } from "node:os"
import { captured, constructed } from "../domain/lines.ts"
import { describeWith } from "../support/environment.ts"

const node = "node_modules/.bin/node"

interface Run {
  readonly status: number | null
  readonly stdout: Array<string>
  readonly stderr: Array<string>
}

/** `droptailer parse` as a child process, stdin given, stdout/stderr split into lines. */
const runParse = (input: string | Buffer, args: ReadonlyArray<string> = [], env: Record<string, string> = {}): Run => {
  const result = spawnSync(node, ["src/main/bin.ts", "parse", ...args], {
    input,
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000
  })
  const lines = (b: Buffer): Array<string> => b.toString("utf8").split("\n").filter((l) => l.length > 0)
  return { status: result.status, stdout: lines(result.stdout), stderr: lines(result.stderr) }
}

describe("droptailer parse", () => {
  it("prints one JSON event per accepted raw line, reports the others with line number and reason, exits 0", () => {
    const input = [
      captured.tcpSyn, // 1
      "kernel: eth0: link becomes ready", // 2
      "", // 3
      captured.icmpPortUnreachable, // 4
      "nftables-metal-dropped: ", // 5
      "nftables-metal-dropped: IN=eth0 \u0001\u0002\u0003 OUT=", // 6
      captured.ipv6TcpSyn // 7, no newline at the end
    ].join("\n")
    const before = Date.now() * 1000
    const run = runParse(input)
    expect(run.status).toBe(0)
    expect(run.stdout).toHaveLength(3)
    const events = run.stdout.map((l) => JSON.parse(l))
    expect(events.map((e) => e.protocol)).toEqual(["TCP", "ICMP", "TCP"])
    expect(events[2].src.ip).toBe("::1")
    expect(events[0].host).toBe(hostname())
    // raw lines carry the time they were read
    const stamp = Date.parse(events[0].timestamp) * 1000
    expect(stamp).toBeGreaterThanOrEqual(Math.floor(before / 1e6) * 1e6)
    expect(events[0].timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    expect(run.stderr).toEqual([
      "line 2: skipped: no drop or accept prefix",
      "line 3: skipped: empty message",
      "line 5: malformed: nothing after the prefix",
      "line 6: malformed: binary data (control character 0x01 at column 33)"
    ])
  })

  it("reads journalctl -o json entries: MESSAGE as string or bytes, the realtime clock and host", () => {
    const entry = (message: unknown, extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        __CURSOR: "s=abc;i=1",
        __REALTIME_TIMESTAMP: "1795790409217755",
        _HOSTNAME: "fw-7",
        SYSLOG_IDENTIFIER: "kernel",
        MESSAGE: message,
        ...extra
      })
    const input = [
      entry(captured.udp),
      entry([...Buffer.from(captured.tcpSyn)]), // bytes, valid UTF-8
      entry([...Buffer.from("nftables-metal-dropped: IN=e"), 0xff, ...Buffer.from(" OUT=")]), // invalid UTF-8
      "{not json",
      JSON.stringify({ MESSAGE: 42 }),
      entry(constructed.upstreamReadme, { _HOSTNAME: undefined })
    ].join("\n") + "\n"
    const run = runParse(input)
    expect(run.status).toBe(0)
    const events = run.stdout.map((l) => JSON.parse(l))
    expect(events).toHaveLength(3)
    expect(events[0]).toMatchObject({ timestamp: "2026-11-27T14:40:09.217755Z", host: "fw-7", protocol: "UDP", udp: { length: 11 } })
    expect(events[1]).toMatchObject({ host: "fw-7", protocol: "TCP" })
    expect(events[2].host).toBe(hostname()) // no _HOSTNAME: this machine
    expect(run.stderr).toHaveLength(3)
    expect(run.stderr[0]).toMatch(/^line 3: malformed: invalid UTF-8/)
    expect(run.stderr[1]).toMatch(/^line 4: malformed: invalid journal JSON/)
    expect(run.stderr[2]).toMatch(/^line 5: malformed: not a journal entry/)
  })

  it("prints the Go server's line with --format upstream", () => {
    const input = JSON.stringify({ __REALTIME_TIMESTAMP: "1795790134013717", _HOSTNAME: "fw", MESSAGE: constructed.upstreamReadme })
    const run = runParse(`${input}\n`, ["--format", "upstream"])
    expect(run.status).toBe(0)
    expect(run.stdout).toEqual([
      "2026-11-27 14:35:34 +0000 UTC " +
      "{\"ACTION\":\"drop\",\"DPT\":\"445\",\"DST\":\"4.3.2.1\",\"ID\":\"46474\",\"IN\":\"vrf09\",\"LEN\":\"40\"," +
      "\"MAC\":\"12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00\",\"OUT\":\"\",\"PREC\":\"0x00\",\"PROTO\":\"TCP\"," +
      "\"RES\":\"0x00\",\"SPT\":\"59265\",\"SRC\":\"1.2.3.4\",\"SYN\":\"\",\"TOS\":\"0x00\",\"TTL\":\"238\"," +
      "\"URGP\":\"0\",\"WINDOW\":\"1024\",\"timestamp\":\"2026-11-27 14:35:34 +0000 UTC\"}"
    ])
  })

  it("takes prefixes from the environment, and --drop-prefix/--accept-prefix over them", () => {
    const body = "IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 LEN=40 PROTO=TCP SPT=1 DPT=2 SYN"
    const input = [`custom-drop: ${body}`, `custom-accept: ${body}`, `flag-drop: ${body}`, `other: ${body}`].join("\n")
    const env = { DROPTAILER_PREFIXES_OF_DROPS: "custom-drop: ", DROPTAILER_PREFIXES_OF_ACCEPTS: "custom-accept: " }
    const fromEnv = runParse(input, [], env)
    expect(fromEnv.stdout.map((l) => JSON.parse(l).action)).toEqual(["drop", "accept"])
    const fromFlags = runParse(input, ["--drop-prefix", "flag-drop: ,x: ", "--drop-prefix", "other: "], env)
    expect(fromFlags.stdout.map((l) => JSON.parse(l).action)).toEqual(["accept", "drop", "drop"])
    expect(fromFlags.stderr).toEqual(["line 1: skipped: no drop or accept prefix"])
  })

  it("survives binary garbage and a 1 MB line, and goes on to the next line", () => {
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256).filter((b) => b !== 10))
    const input = Buffer.concat([
      garbage,
      Buffer.from(`\nnftables-metal-dropped: IN=eth0 OUT= ${"A".repeat(1024 * 1024)}\n`),
      Buffer.from(`${captured.udp}\n`),
      Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0x0a]),
      Buffer.from(`${captured.esp}\n`)
    ])
    const run = runParse(input)
    expect(run.status).toBe(0)
    expect(run.stdout.map((l) => JSON.parse(l).protocol)).toEqual(["UDP", "ESP"])
    expect(run.stderr[0]).toMatch(/^line 1: skipped: /)
    expect(run.stderr[1]).toMatch(/^line 2: malformed: line too long/)
    expect(run.stderr[2]).toMatch(/^line 4: skipped: /)
    expect(run.stderr).toHaveLength(3)
  })
})

describeWith(["root", "journald", "nftables"], "droptailer parse over a genuine nftables drop in the journal", () => {
  it("parses what journalctl -o json gives for a logged packet", () => {
    const table = `dtparse${process.pid}`
    const port = 40000 + (process.pid % 20000)
    const prefix = `droptailer-parse-test-${process.pid}: `
    const nft = (...args: Array<string>) => execFileSync("nft", args)
    try {
      nft("add", "table", "inet", table)
      nft("add", "chain", "inet", table, "input", "{ type filter hook input priority 0; }")
      nft("add", "rule", "inet", table, "input", "iifname", "lo", "udp", "dport", String(port), "log", "prefix", `"${prefix}"`, "drop")
      const since = new Date(Date.now() - 1000).toISOString().replace("T", " ").slice(0, 19)
      spawnSync("bash", ["-c", `echo hello > /dev/udp/127.0.0.1/${port}`])
      let json = ""
      for (let attempt = 0; attempt < 40 && !json.includes(prefix); attempt++) {
        execFileSync("sleep", ["0.25"])
        json = execFileSync("journalctl", ["-o", "json", "--utc", "--since", since, "SYSLOG_IDENTIFIER=kernel"]).toString()
      }
      const lines = json.split("\n").filter((l) => l.includes(prefix)).join("\n")
      expect(lines.length).toBeGreaterThan(0)
      const run = runParse(`${lines}\n`, ["--drop-prefix", prefix])
      expect(run.status).toBe(0)
      const event = JSON.parse(run.stdout[0]!)
      expect(event).toMatchObject({ action: "drop", protocol: "UDP", in: "lo", dst: { ip: "127.0.0.1", port }, udp: { length: 14 } })
      expect(event.fields).toMatchObject({ ACTION: "drop", DPT: String(port), PROTO: "UDP" })
    } finally {
      spawnSync("nft", ["delete", "table", "inet", table])
    }
  })
})
