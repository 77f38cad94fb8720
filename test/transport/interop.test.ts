/**
 * Interop with an independent gRPC implementation: Python grpcio, its code generated from our
 * proto/droptailer.proto at test time.
 */
import { assert, it } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { describeWith } from "../support/environment.ts"
import { commandCerts, outgoingRange, repo, serverTlsEnv, shipper, shipperConfigFor, startServer } from "./support.ts"

const python = "/usr/bin/python3"

const generatePython = (): string => {
  const out = mkdtempSync(join(tmpdir(), "droptailer-pygen-"))
  process.on("exit", () => rmSync(out, { recursive: true, force: true }))
  execFileSync(python, [
    "-m", "grpc_tools.protoc", "-I", join(repo, "proto"), "-I", "/usr/include",
    `--python_out=${out}`, `--grpc_python_out=${out}`, join(repo, "proto/droptailer.proto")
  ], { stdio: "pipe" })
  return out
}

describeWith(["python-grpc"], "interop with Python grpcio", () => {
  it.live("a Python client's Push (mTLS) reaches our server and appears on stdout", () =>
    Effect.gen(function*() {
      const dir = commandCerts()
      const generated = generatePython()
      const server = yield* startServer(serverTlsEnv(dir))
      const count = 25
      const output = execFileSync(python, [
        join(repo, "test/transport/interop/client.py"), generated, `127.0.0.1:${server.port}`,
        join(dir, "client/ca.crt"), join(dir, "client/tls.crt"), join(dir, "client/tls.key"), "droptailer", String(count)
      ], { stdio: "pipe", timeout: 60_000 }).toString()
      assert.include(output, `sent ${count}`)
      yield* server.waitForLines(count, 10_000)
      const events = server.lines.map((line) => JSON.parse(line) as {
        timestamp: string
        action: string
        host: string
        protocol: string
        fields: Record<string, string>
      })
      assert.deepStrictEqual(events.map((e) => Number(e.fields.PYSEQ)), Array.from({ length: count }, (_, i) => i))
      const first = events[0]!
      assert.strictEqual(first.action, "accept")
      assert.strictEqual(first.protocol, "UDP")
      assert.strictEqual(first.timestamp, "2025-11-27T14:02:10.500000Z")
      // no host on the wire from an upstream client: the peer certificate's CN
      assert.strictEqual(first.host, "fw-test-client")
    }), 120_000)

  it.live("our Shipper against a Push-only Python server falls back to Push and delivers everything", () =>
    Effect.gen(function*() {
      const dir = commandCerts()
      const generated = generatePython()
      const lines: Array<string> = []
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(python, [
            join(repo, "test/transport/interop/server.py"), generated,
            join(dir, "server/ca.crt"), join(dir, "server/tls.crt"), join(dir, "server/tls.key")
          ], { stdio: ["ignore", "pipe", "pipe"] })
        ),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      let partial = ""
      child.stdout.setEncoding("utf8")
      child.stdout.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n")
        partial = parts.pop() ?? ""
        lines.push(...parts)
      })
      const port = yield* Effect.callback<number, Error>((resume) => {
        let err = ""
        child.stderr.setEncoding("utf8")
        child.stderr.on("data", (c: string) => {
          err += c
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err)
          if (m) resume(Effect.succeed(Number(m[1])))
        })
        child.on("exit", (code) => resume(Effect.fail(new Error(`python server exited ${code}: ${err}`))))
      })
      const sink = yield* shipper(shipperConfigFor(dir, port))
      const total = 1500
      // marked as rebuildable from the message (a PushBatch would carry only ACTION), yet their
      // SEQ is not in the message: Push to an upstream server must still carry the whole map
      const events = outgoingRange(0, total, "fw-py").map((e) => ({ ...e, fieldsFromMessage: true }))
      for (let i = 0; i < total; i += 500) yield* sink.deliver(events.slice(i, i + 500))
      // deliver completed: the Python server acknowledged (and flushed) every event
      const received = lines.map((l) => JSON.parse(l) as { event_id: string; host: string; fields: Record<string, string> })
      assert.strictEqual(received.length, total)
      assert.deepStrictEqual(received.map((r) => Number(r.fields.SEQ)), Array.from({ length: total }, (_, i) => i))
      assert.strictEqual(received[0]!.event_id, events[0]!.id)
      assert.strictEqual(received[0]!.host, "fw-py")
    }), 120_000)
})
