/**
 * DROPTAILER_DEDUP_FILE: the ids of written events survive a restart of the server, so a batch it
 * printed but never acknowledged is not printed again by the next server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect } from "effect"
import { makeCertSet } from "../../src/transport/Certs.ts"
import { DedupLog } from "../../src/transport/DedupLog.ts"
import { DedupWindow } from "../../src/transport/DedupWindow.ts"
import { inProcessServer, outgoingRange, shipper, shipperConfigFor, writeTempCerts } from "./support.ts"

const tempFile = () => Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "droptailer-dedup-")), "written-ids")

describe("DedupLog", () => {
  it("reads back what was appended, across rotations, into a fresh window", () => {
    const file = tempFile()
    const first = new DedupWindow(100)
    const log = DedupLog.open(file, 4, first)
    log.append(["fw-1", "fw-1", "fw-2"], ["a", "b", "c"])
    log.append(["fw-1", "fw-2"], ["d", "e"]) // 5 lines ≥ 4: rotated to .1
    log.append(["fw-1"], ["f"])
    log.close()
    assert.isTrue(Fs.existsSync(`${file}.1`))
    const second = new DedupWindow(100)
    DedupLog.open(file, 4, second).close()
    for (const [host, id] of [["fw-1", "a"], ["fw-1", "b"], ["fw-2", "c"], ["fw-1", "d"], ["fw-2", "e"], ["fw-1", "f"]] as const) {
      assert.isTrue(second.has(host, id), `${host} ${id}`)
    }
    assert.isFalse(second.has("fw-2", "a"), "ids are per host")
  })

  it("ignores a last line cut short by a kill, and keeps ids with a tab or newline in memory only", () => {
    const file = tempFile()
    Fs.writeFileSync(file, "fw-1\tx\nfw-1\ty\nfw-1\tcut-sh")
    const window = new DedupWindow(100)
    const log = DedupLog.open(file, 100, window)
    assert.isTrue(window.has("fw-1", "x"))
    assert.isTrue(window.has("fw-1", "y"))
    assert.isFalse(window.has("fw-1", "cut-sh"))
    log.append(["fw-1", "fw-1"], ["bad\nid", "z"])
    log.close()
    const again = new DedupWindow(100)
    DedupLog.open(file, 100, again).close()
    assert.isTrue(again.has("fw-1", "z"))
    assert.isFalse(again.has("fw-1", "bad\nid"))
  })
})

describe("a server started again on the same DROPTAILER_DEDUP_FILE", () => {
  it.live("does not write again what the earlier server wrote; new events pass", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const dir = yield* writeTempCerts(set)
      const dedupFile = tempFile()
      const events = outgoingRange(0, 300, "fw-dedup")
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const { port, received } = yield* inProcessServer(set, { dedupFile })
        const sink = yield* shipper(shipperConfigFor(dir, port))
        yield* sink.deliver(events.slice(0, 200))
        return received.length
      }))
      assert.strictEqual(first, 200)
      const second = yield* Effect.scoped(Effect.gen(function*() {
        const { port, received } = yield* inProcessServer(set, { dedupFile })
        const sink = yield* shipper(shipperConfigFor(dir, port))
        // the client resends what it never saw acknowledged, and goes on
        yield* sink.deliver(events.slice(100, 300))
        return received.map((e) => Number(e.fields.SEQ))
      }))
      assert.deepStrictEqual(second, Array.from({ length: 100 }, (_, i) => 200 + i))
    }), 60_000)

  it.live("a file that cannot be opened stops the server before it serves, naming the variable", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const exit = yield* Effect.exit(Effect.scoped(inProcessServer(set, { dedupFile: "/proc/no-such-dir/written-ids" })))
      assert.isTrue(exit._tag === "Failure")
      assert.match(String(exit._tag === "Failure" ? JSON.stringify(exit.cause) : ""), /DROPTAILER_DEDUP_FILE/)
    }), 30_000)
})
