/**
 * The server grants its clients wide HTTP/2 flow-control windows (src/transport/ReceiveWindow.ts),
 * so batches in flight are not held back 64 KiB at a time while the server is busy. Checked from
 * the client's side of a real mTLS connection: what the server announced and granted.
 */
import { assert, describe, it } from "@effect/vitest"
import * as http2 from "node:http2"
import { Effect } from "effect"
import { makeCertSet } from "../../src/transport/Certs.ts"
import { receiveWindowBytes } from "../../src/transport/ReceiveWindow.ts"
import { inProcessServer } from "./support.ts"

describe("HTTP/2 receive windows of the ingest server", () => {
  it.live("a client may send 16 MiB on a stream and on the connection before any WINDOW_UPDATE", () =>
    Effect.gen(function*() {
      const set = yield* makeCertSet()
      const { port } = yield* inProcessServer(set)
      const session = yield* Effect.acquireRelease(
        Effect.sync(() =>
          http2.connect(`https://127.0.0.1:${port}`, {
            ca: set.ca.cert,
            cert: set.client.cert,
            key: set.client.key,
            servername: "droptailer"
          })
        ),
        (s) => Effect.sync(() => s.destroy())
      )
      const remote = yield* Effect.callback<http2.Settings, Error>((resume) => {
        session.once("remoteSettings", (settings) => resume(Effect.succeed(settings)))
        session.once("error", (error) => resume(Effect.fail(error)))
      })
      assert.strictEqual(remote.initialWindowSize, receiveWindowBytes, "per-stream window announced in SETTINGS")
      // the connection window comes as a WINDOW_UPDATE on stream 0 right after the handshake
      yield* Effect.callback<void, Error>((resume) => {
        const deadline = Date.now() + 5000
        const check = () => {
          if ((session.state.remoteWindowSize ?? 0) >= receiveWindowBytes) resume(Effect.void)
          else if (Date.now() > deadline) {
            resume(Effect.fail(new Error(`connection window still ${session.state.remoteWindowSize}`)))
          } else setTimeout(check, 10)
        }
        check()
      })
    }).pipe(Effect.scoped), 20_000)
})
