/**
 * Structured logs of the real server process: DROPTAILER_LOG_FORMAT=json gives one JSON object per
 * stderr line; DROPTAILER_LOG_LEVEL=warn hides the info lines (and keeps the warnings); a bad value
 * fails start-up with a message that names the variable.
 */
import { type AddressInfo, createServer } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { waitFor } from "../support/journal.ts"
import { freePort } from "../support/net.ts"
import { get, killAll, startDroptailer } from "../support/process.ts"
import { commandCerts, serverTlsEnv } from "../transport/support.ts"

afterEach(killAll)

const serverEnv = async (env: Record<string, string>) => ({
  ...serverTlsEnv(commandCerts()),
  SERVER_PORT: "0",
  DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
  DROPTAILER_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
  ...env
})

const stderrLines = (text: string): Array<string> => text.split("\n").filter((l) => l.length > 0)

describe("droptailer logs", () => {
  it("DROPTAILER_LOG_FORMAT=json: one JSON object per stderr line, with message, level and timestamp", async () => {
    // no KUBECONFIG and no cluster: the "running without Kubernetes" warning, plus info lines
    const server = startDroptailer(["server"], await serverEnv({ DROPTAILER_LOG_FORMAT: "json" }))
    await server.waitForStderr(/listening on 127\.0\.0\.1:\d+/)
    expect(await server.stop("SIGTERM")).toMatchObject({ code: 0 })
    const lines = stderrLines(server.stderr())
    expect(lines.length).toBeGreaterThanOrEqual(4)
    const records = lines.map((line) => {
      const record = JSON.parse(line) as Record<string, unknown>
      expect(typeof record).toBe("object")
      expect(typeof record.message).toBe("string")
      expect(["INFO", "WARN", "ERROR", "DEBUG"]).toContain(record.level)
      expect(Number.isNaN(Date.parse(String(record.timestamp)))).toBe(false)
      return record
    })
    expect(records.some((r) => r.level === "WARN" && /without Kubernetes/.test(String(r.message)))).toBe(true)
    expect(records.some((r) => r.level === "INFO" && /listening on/.test(String(r.message)))).toBe(true)
    expect(records.some((r) => r.level === "INFO" && /server stopped/.test(String(r.message)))).toBe(true)
    expect(server.lines).toEqual([]) // stdout carries events only
  }, 60_000)

  it("DROPTAILER_LOG_LEVEL=warn hides the info lines and keeps the warnings", async () => {
    const env = await serverEnv({ DROPTAILER_LOG_FORMAT: "json", DROPTAILER_LOG_LEVEL: "warn" })
    const server = startDroptailer(["server"], env)
    await server.waitForStderr(/without Kubernetes/)
    await waitFor("/healthz", async () =>
      (await get(`http://${env.DROPTAILER_METRICS_ADDRESS}/healthz`).catch(() => ({ status: 0 }))).status === 200, 30_000, 100)
    expect(await server.stop("SIGTERM")).toMatchObject({ code: 0 })
    const records = stderrLines(server.stderr()).map((line) => JSON.parse(line) as { level: string; message: string })
    expect(records.length).toBeGreaterThanOrEqual(1)
    expect(records.every((r) => r.level !== "INFO" && r.level !== "DEBUG")).toBe(true)
    expect(records.some((r) => r.level === "WARN")).toBe(true)
  }, 60_000)

  it("a bad DROPTAILER_LOG_LEVEL fails start-up with exit 1 and names the variable", async () => {
    const server = startDroptailer(["server"], await serverEnv({ DROPTAILER_LOG_LEVEL: "loud" }))
    expect(await server.exited).toBe(1)
    expect(server.stderr()).toContain("DROPTAILER_LOG_LEVEL")
  }, 60_000)

  it("a metrics address that is taken fails start-up with exit 1, on stderr, naming DROPTAILER_METRICS_ADDRESS", async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    try {
      const port = (taken.address() as AddressInfo).port
      const server = startDroptailer(["server"], await serverEnv({ DROPTAILER_METRICS_ADDRESS: `127.0.0.1:${port}` }))
      expect(await server.exited).toBe(1)
      expect(server.stderr()).toMatch(/cannot start: DROPTAILER_METRICS_ADDRESS=127\.0\.0\.1:\d+: cannot serve \/metrics there \(.*EADDRINUSE/)
      expect(server.lines).toEqual([])
    } finally {
      await new Promise((resolve) => taken.close(resolve))
    }
  }, 60_000)
})
