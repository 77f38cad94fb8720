/**
 * SIGTERM is a clean stop: client and server as real processes, 20,000 journal entries streaming.
 * - SIGTERM the client mid-stream: it stops reading, saves its checkpoint and exits 0 within 5 s;
 *   restarted, it goes on from the checkpoint.
 * - SIGTERM the server mid-stream: it drains its calls and exits 0 within 5 s; restarted on the same
 *   port, the client delivers the rest.
 * In the end every event is on the server's stdout exactly once (none lost; the server drops the
 * retransmits of events it already wrote, by event id).
 */
import { join } from "node:path"
import { afterEach, expect, it } from "vitest"
import { describeWith } from "../support/environment.ts"
import { dropLine, makeStateDirectory, sleep, uniqueMarker, waitFor, writeViaLogger } from "../support/journal.ts"
import { freePort } from "../support/net.ts"
import { killAll, startDroptailer } from "../support/process.ts"
import { commandCerts, serverTlsEnv } from "../transport/support.ts"

afterEach(killAll)

const total = 20_000

/** Distinct events (by source address, unique per entry) and how many lines repeated one. */
const tally = (lines: ReadonlyArray<string>, dstPort: number) => {
  const seen = new Set<string>()
  let duplicates = 0
  for (const line of lines) {
    if (line === "") continue
    const event = JSON.parse(line) as { src: { ip: string }; dst: { port: number } }
    if (event.dst.port !== dstPort) continue
    if (seen.has(event.src.ip)) duplicates++
    else seen.add(event.src.ip)
  }
  return { distinct: seen.size, duplicates }
}

describeWith(["root", "journald"], "SIGTERM on client and server", () => {
  it("each exits 0 within 5 s mid-stream, and after restarts every event is printed exactly once", async () => {
    const certs = commandCerts()
    const port = await freePort()
    const dstPort = 2000 + (process.pid % 1000)
    const serverLines: Array<string> = []
    const serverEnv = {
      ...serverTlsEnv(certs),
      SERVER_PORT: String(port),
      DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
      DROPTAILER_METRICS_ADDRESS: "off",
      DROPTAILER_KUBERNETES: "false"
    }
    let server = startDroptailer(["server"], serverEnv, { lines: serverLines })
    await server.waitForStderr(/listening on 127\.0\.0\.1:\d+/)

    const marker = uniqueMarker("stop")
    const prefix = `dt-${marker}-dropped: `
    const clientEnv = {
      DROPTAILER_SERVER_ADDRESS: `127.0.0.1:${port}`,
      DROPTAILER_CA_CERTIFICATE: join(certs, "client/ca.crt"),
      DROPTAILER_CLIENT_CERTIFICATE: join(certs, "client/tls.crt"),
      DROPTAILER_CLIENT_KEY: join(certs, "client/tls.key"),
      DROPTAILER_PREFIXES_OF_DROPS: prefix,
      DROPTAILER_JOURNAL_MATCH: `SYSLOG_IDENTIFIER=${marker}`,
      DROPTAILER_START: "oldest",
      DROPTAILER_STATE_DIRECTORY: makeStateDirectory(),
      DROPTAILER_METRICS_ADDRESS: "off",
      DROPTAILER_BATCH_SIZE: "200",
      DROPTAILER_RETRY_INITIAL_MS: "50",
      DROPTAILER_RETRY_MAX_MS: "500"
    }

    // the journal fills over ~10 s while the client ships
    const lines = Array.from({ length: total }, (_, n) => dropLine(prefix, n, dstPort))
    const writing = (async () => {
      for (let i = 0; i < total; i += 500) {
        await writeViaLogger(marker, lines.slice(i, i + 500))
        await sleep(200)
      }
    })()

    let client = startDroptailer(["client"], clientEnv)
    await waitFor("3,000 events on the server", () => serverLines.length >= 3000, 60_000)
    const clientStop = await client.stop("SIGTERM")
    expect(clientStop.code, client.stderr()).toBe(0)
    expect(clientStop.millis).toBeLessThan(5000)
    expect(client.stderr()).toMatch(/"message":"stopped"/)
    const atClientStop = tally(serverLines, dstPort).distinct
    expect(atClientStop).toBeLessThan(total) // it was mid-stream

    client = startDroptailer(["client"], clientEnv)
    await waitFor("more events after the client's restart", () => tally(serverLines, dstPort).distinct >= Math.max(10_000, atClientStop + 2000), 60_000)
    const serverStop = await server.stop("SIGTERM")
    expect(serverStop.code, server.stderr()).toBe(0)
    expect(serverStop.millis).toBeLessThan(5000)
    expect(server.stderr()).toMatch(/server stopped/)
    const atServerStop = tally(serverLines, dstPort).distinct
    expect(atServerStop).toBeLessThan(total) // it was mid-stream

    server = startDroptailer(["server"], serverEnv, { lines: serverLines })
    await server.waitForStderr(/listening on 127\.0\.0\.1:\d+/)
    await writing
    await waitFor("all 20,000 events on the server", () => tally(serverLines, dstPort).distinct >= total, 90_000, 200)
    await sleep(1000) // anything still in flight would show up as a duplicate now

    expect(await client.stop("SIGTERM")).toMatchObject({ code: 0 })
    expect(await server.stop("SIGTERM")).toMatchObject({ code: 0 })
    const final = tally(serverLines, dstPort)
    expect(final.distinct).toBe(total)
    expect(final.duplicates).toBe(0)
  }, 180_000)
})
