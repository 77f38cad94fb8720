/**
 * HTTP/2 flow control on the server's receiving side.
 *
 * A PushBatch of 2,000 events is about 1 MB. With HTTP/2's default windows (64 KiB per stream and
 * per connection) a client may send only 64 KiB before the server's event loop has read it and
 * answered with WINDOW_UPDATE, so while the server is busy writing one batch (tens of ms), every
 * other batch in flight stalls on the wire: the client idles, then the server idles. Wide windows
 * let the kernel's socket buffers take the next batches while the current one is handled.
 * Memory stays bounded by the server's own limits (message size × concurrent calls).
 *
 * @grpc/grpc-js has a channel option for this on the client side only
 * (`grpc-node.flow_control_window`); for the server it is set here through the http2 settings
 * grpc-js passes to `http2.createSecureServer` and on each session. Both are internals of
 * grpc-js 1.x: when they are not there, nothing changes (the server still works, with default
 * windows) and test/transport/receive-window.test.ts, which checks the windows a client is
 * granted, fails.
 */
import type * as grpc from "@grpc/grpc-js"
import type * as http2 from "node:http2"

interface GrpcServerInternals {
  commonServerOptions?: { settings?: http2.Settings }
  http2Servers?: Map<http2.Http2Server | http2.Http2SecureServer, unknown>
}

/** Before `bindAsync`: the per-stream window the server announces (SETTINGS_INITIAL_WINDOW_SIZE). */
export const widenStreamWindow = (server: grpc.Server, bytes: number): void => {
  const internals = server as unknown as GrpcServerInternals
  if (internals.commonServerOptions === undefined) return
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: bytes }
}

/** After `bindAsync`: each new connection's window (a WINDOW_UPDATE right after the handshake). */
export const widenConnectionWindows = (server: grpc.Server, bytes: number): void => {
  const internals = server as unknown as GrpcServerInternals
  for (const http2Server of internals.http2Servers?.keys() ?? []) {
    http2Server.on("session", (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(bytes)
      } catch {
        // a session already closing: nothing to widen
      }
    })
  }
}

/** 16 MiB: more than the largest batch in flight that our clients send at once (4 × 4 MiB). */
export const receiveWindowBytes = 16 * 1024 * 1024
