/**
 * `droptailer client --stdout` as a real child process against the real systemd-journald (and
 * nftables): parsing of kernel and logger entries, a genuine nftables drop, SIGKILL and restart
 * with 10,000 events, journalctl killed under the client.
 *
 * Each test sees only its own entries: a unique prefix (DROPTAILER_PREFIXES_OF_DROPS), a unique
 * SYSLOG_IDENTIFIER (DROPTAILER_JOURNAL_MATCH), or a unique port; and a fresh state directory.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { formatTimestamp } from "../../src/domain/DropEvent.ts"
import { describeWith } from "../support/environment.ts"
import {
  dropLine,
  makeStateDirectory,
  type RunningClient,
  sleep,
  startClient,
  uniqueMarker,
  waitFor,
  withDevkmsgUnlimited,
  writeViaKmsg,
  writeViaLogger
} from "../support/journal.ts"

const clients: Array<RunningClient> = []
const orphans: Array<number> = []
const start = (env: Record<string, string>): RunningClient => {
  const client = startClient(env)
  clients.push(client)
  return client
}
afterEach(async () => {
  for (const client of clients.splice(0)) await client.stop("SIGKILL")
  for (const pid of orphans.splice(0)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
})

const journalJson = (matches: ReadonlyArray<string>): Array<Record<string, unknown>> =>
  execFileSync("journalctl", ["-q", "-o", "json", ...matches], { encoding: "utf8", maxBuffer: 1 << 28 })
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l))

const srcKey = (event: any): string => event.src.ip

describeWith(["root", "journald"], "droptailer client on the real journal", () => {
  it("prints entries written through /dev/kmsg (as kernel) and logger, classified and parsed, with µs timestamps and the journal's host", async () => {
    const marker = uniqueMarker("e2e")
    const drop = `dt-${marker}-dropped: `
    const accept = `dt-${marker}-accepted: `
    const client = start({
      DROPTAILER_PREFIXES_OF_DROPS: drop,
      DROPTAILER_PREFIXES_OF_ACCEPTS: accept,
      DROPTAILER_STATE_DIRECTORY: makeStateDirectory(),
      DROPTAILER_START: "new"
    })
    // Until journalctl is following, entries would be missed by "new": knock until one comes out.
    await waitFor("the client to follow", async () => {
      await writeViaLogger("kernel", [dropLine(drop, 0, 1)])
      await sleep(300)
      return client.lines.length > 0
    }, 30_000, 0)

    const kmsgDrops = Array.from({ length: 20 }, (_, i) => dropLine(drop, 100 + i, 2))
    const kmsgAccepts = Array.from({ length: 5 }, (_, i) => dropLine(accept, 200 + i, 3))
    const others = Array.from({ length: 5 }, (_, i) => `droptailer-test ${marker} not a firewall line ${i}`)
    await withDevkmsgUnlimited(() => writeViaKmsg([...kmsgDrops, ...others, ...kmsgAccepts]))
    const loggerDrops = Array.from({ length: 20 }, (_, i) => dropLine(drop, 300 + i, 4))
    await writeViaLogger("kernel", loggerDrops)

    const mine = () => client.events().filter((e) => [2, 3, 4].includes(e.dst.port))
    await client.waitForLines("45 events", () => mine().length >= 45)
    await sleep(300)
    const events = mine()
    expect(events).toHaveLength(45)
    expect(events.filter((e) => e.dst.port === 2).map((e) => [e.action, e.src.ip])).toEqual(
      kmsgDrops.map((_, i) => ["drop", `10.0.0.${100 + i}`])
    )
    expect(events.filter((e) => e.dst.port === 3).map((e) => e.action)).toEqual(Array(5).fill("accept"))
    expect(events.filter((e) => e.dst.port === 4).map((e) => e.src.ip)).toEqual(loggerDrops.map((_, i) => `10.0.1.${300 + i - 256}`))

    // timestamp and host are the journal entry's own
    const truth = journalJson([`MESSAGE=${kmsgDrops[0]}`])[0]!
    const first = events.find((e) => e.src.ip === "10.0.0.100")!
    expect(truth._TRANSPORT).toBe("kernel")
    expect(first.timestamp).toBe(formatTimestamp(Number(truth.__REALTIME_TIMESTAMP)))
    expect(first.timestamp).toMatch(/\.\d{6}Z$/)
    expect(first.host).toBe(truth._HOSTNAME)
    expect(first.protocol).toBe("TCP")
    expect(first.fields.ACTION).toBe("drop")
    expect(first.fields.DPT).toBe("2")
    const truthLogger = journalJson([`MESSAGE=${loggerDrops[0]}`])[0]!
    const firstLogger = events.find((e) => e.dst.port === 4)!
    expect(firstLogger.timestamp).toBe(formatTimestamp(Number(truthLogger.__REALTIME_TIMESTAMP)))
    expect(firstLogger.host).toBe(truthLogger._HOSTNAME)
  })

  it("SIGKILLed midway and started again later: all 10,000 events come out; the only repeats are the entries after the saved checkpoint", async () => {
    const identifier = uniqueMarker("restart")
    const stateDirectory = makeStateDirectory()
    const env = {
      DROPTAILER_JOURNAL_MATCH: `SYSLOG_IDENTIFIER=${identifier}`,
      DROPTAILER_STATE_DIRECTORY: stateDirectory,
      DROPTAILER_START: "oldest"
    }
    const lines = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => dropLine("nftables-metal-dropped: ", from + i))
    const writePaced = async (from: number, to: number, stop?: () => boolean) => {
      for (let n = from; n < to; n += 250) {
        if (stop?.()) return n
        await writeViaLogger(identifier, lines(n, Math.min(n + 250, to)))
        await sleep(80)
      }
      return to
    }

    await writeViaLogger(identifier, lines(0, 3_000)) // written before the client starts
    const first = start(env)
    await first.waitForLines("the backlog", (l) => l.length >= 3_000)
    let killedAt = -1
    const writtenBeforeKill = await writePaced(3_000, 6_000, () => {
      if (killedAt < 0 && first.lines.length >= 4_500) {
        orphans.push(...first.children("journalctl"))
        first.child.kill("SIGKILL")
        killedAt = first.lines.length
      }
      return false
    })
    expect(writtenBeforeKill).toBe(6_000)
    if (killedAt < 0) {
      orphans.push(...first.children("journalctl"))
      first.child.kill("SIGKILL")
    }
    await first.exited
    const firstRun = first.events().map(srcKey)
    const saved = JSON.parse(Fs.readFileSync(`${stateDirectory}/journal-cursor.json`, "utf8")).cursor as string

    await writeViaLogger(identifier, lines(6_000, 8_000)) // written while the client is down
    const second = start(env)
    await writePaced(8_000, 10_000)
    const all = new Set(lines(0, 10_000).map((_, n) => `10.0.${(n >> 8) & 255}.${n & 255}`))
    await second.waitForLines("every event", () => {
      const seen = new Set([...firstRun, ...second.events().map(srcKey)])
      return seen.size === all.size
    }, 60_000)
    await sleep(500)
    await second.stop("SIGTERM")
    const secondRun = second.events().map(srcKey)

    expect(new Set(firstRun).size).toBe(firstRun.length) // no repeats within a run
    expect(new Set(secondRun).size).toBe(secondRun.length)
    expect(new Set([...firstRun, ...secondRun])).toEqual(all)
    const secondSet = new Set(secondRun)
    const repeated = firstRun.filter((k) => secondSet.has(k))
    // The repeats are exactly what the first run printed after its last saved checkpoint ...
    const afterCheckpoint = new Set(
      execFileSync("journalctl", ["-q", "-o", "cat", `--after-cursor=${saved}`, `SYSLOG_IDENTIFIER=${identifier}`], {
        encoding: "utf8",
        maxBuffer: 1 << 26
      }).split("\n").filter((l) => l.length > 0).map((l) => /SRC=(\S+)/.exec(l)![1]!)
    )
    expect(repeated).toEqual(firstRun.filter((k) => afterCheckpoint.has(k)))
    // ... a tail of its output, and bounded (≤ 500 ms of checkpoint coalescing + the batches in flight).
    expect(repeated).toEqual(firstRun.slice(firstRun.length - repeated.length))
    expect(repeated.length).toBeLessThanOrEqual(3_000)
    console.log(`restart: first run printed ${firstRun.length}, second ${secondRun.length}, repeats ${repeated.length}`)
  })

  it("journalctl killed under the client is restarted; nothing is lost or repeated", async () => {
    const identifier = uniqueMarker("jkill")
    const batch = (from: number) => Array.from({ length: 1_000 }, (_, i) => dropLine("nftables-metal-dropped: ", from + i))
    await writeViaLogger(identifier, batch(0))
    const client = start({
      DROPTAILER_JOURNAL_MATCH: `SYSLOG_IDENTIFIER=${identifier}`,
      DROPTAILER_STATE_DIRECTORY: makeStateDirectory(),
      DROPTAILER_START: "oldest"
    })
    await client.waitForLines("1,000 events", (l) => l.length >= 1_000)
    // the backlog is read by a journalctl without --follow that exits at the end; kill the one
    // that follows, once it runs
    const following = () =>
      client.children("journalctl").filter((pid) => {
        try {
          return Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("--follow")
        } catch {
          return false
        }
      })
    await waitFor("journalctl --follow", () => following().length === 1, 10_000)
    const [journalctl] = following()
    process.kill(journalctl!, "SIGKILL")
    await writeViaLogger(identifier, batch(1_000))
    await client.waitForLines("2,000 events", (l) => l.length >= 2_000)
    await sleep(500)
    const restarted = client.children("journalctl")
    expect(restarted).toHaveLength(1)
    expect(restarted[0]).not.toBe(journalctl)
    const keys = client.events().map(srcKey)
    expect(keys).toHaveLength(2_000)
    expect(new Set(keys).size).toBe(2_000)
    expect(client.stderr()).toMatch(/journalctl stopped; restarting/)
  })

  it("fails at start-up with an error naming a bad variable", async () => {
    const client = start({ DROPTAILER_START: "sometimes", DROPTAILER_STATE_DIRECTORY: makeStateDirectory() })
    expect(await client.exited).not.toBe(0)
    expect(client.stderr()).toMatch(/DROPTAILER_START/)
  })
})

describeWith(["root", "journald", "nftables"], "droptailer client and a real nftables drop", () => {
  const table = `droptailer_test_${process.pid}`
  const nft = (script: string) => execFileSync("nft", ["-f", "-"], { input: script, encoding: "utf8" })

  describe("with a log-and-drop rule on lo", () => {
    it("emits the drop of a TCP SYN to 127.0.0.1 with SRC, DST and DPT", async () => {
      const port = 40_000 + Math.floor(Math.random() * 20_000)
      nft(`add table inet ${table}
add chain inet ${table} input { type filter hook input priority -10 ; policy accept ; }
add rule inet ${table} input iifname "lo" tcp dport ${port} log prefix "nftables-metal-dropped: " drop
`)
      try {
        const client = start({ DROPTAILER_STATE_DIRECTORY: makeStateDirectory(), DROPTAILER_START: "new" })
        const mine = () => client.events().filter((e) => e.dst.port === port)
        // knock (SYNs) until the client, once it follows the journal, shows the drop
        await waitFor("the nftables drop", async () => {
          const socket = Net.connect({ host: "127.0.0.1", port })
          socket.on("error", () => {})
          await sleep(400)
          socket.destroy()
          return mine().length > 0
        }, 30_000, 0)
        const event = mine()[0]
        expect(event.action).toBe("drop")
        expect(event.src.ip).toBe("127.0.0.1")
        expect(event.dst.ip).toBe("127.0.0.1")
        expect(event.dst.port).toBe(port)
        expect(event.protocol).toBe("TCP")
        expect(event.in).toBe("lo")
        expect(event.fields.DPT).toBe(String(port))
        expect(event.fields.SYN).toBe("")
        expect(event.fields.ACTION).toBe("drop")
      } finally {
        nft(`delete table inet ${table}\n`)
      }
      expect(execFileSync("nft", ["list", "tables"], { encoding: "utf8" })).not.toContain(table)
    })
  })
})
