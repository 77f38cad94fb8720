import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { commandCerts, shipper, countsUpTo, outgoingRange, sequences, serverTlsEnv, shipperConfigFor, startServer } from "./support.ts"

describe("Shipper → droptailer server (real TCP, mTLS, child process)", () => {
  it.live("delivers 50,000 events, each exactly once on the server's stdout, in order", () =>
    Effect.gen(function*() {
      const dir = commandCerts()
      const server = yield* startServer(serverTlsEnv(dir))
      const total = 50_000
      const events = outgoingRange(0, total)
      const sink = yield* shipper(shipperConfigFor(dir, server.port))
      // The client pipeline hands over batches; deliver completes only when acknowledged.
      for (let i = 0; i < total; i += 1000) yield* sink.deliver(events.slice(i, i + 1000))
      // acknowledged means written: every line is already in the pipe
      yield* server.waitForLines(total, 10_000)
      const seqs = sequences(server.lines, "fw-1")
      const { missing, duplicated } = countsUpTo(seqs, total)
      assert.strictEqual(missing.length, 0, `missing ${missing.length}`)
      assert.strictEqual(duplicated, 0)
      assert.strictEqual(seqs.length, total)
      assert.deepStrictEqual(seqs, Array.from({ length: total }, (_, i) => i))
    }), 120_000)
})
