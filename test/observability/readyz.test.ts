/**
 * /readyz of the real server is not ready until the Kubernetes informers have synced: with
 * KUBECONFIG pointing at the test API server while that server is down, it answers 503 with
 * `kubernetes: false` (and /healthz 200); once the API server is up (same port), 200.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { pod } from "../support/kube-fixtures.ts"
import { KubeApiServer } from "../support/kube-api-server.ts"
import { sleep, waitFor } from "../support/journal.ts"
import { freePort } from "../support/net.ts"
import { get, killAll, startDroptailer } from "../support/process.ts"
import { commandCerts, serverTlsEnv } from "../transport/support.ts"

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  await killAll()
  for (const cleanup of cleanups.splice(0).toReversed()) await cleanup()
})

describe("droptailer server /readyz", () => {
  it("is 503 (kubernetes: false) before the informers synced, 200 after", async () => {
    const kube = new KubeApiServer()
    cleanups.push(() => kube.stop())
    kube.add("pods", pod({ name: "web-1", namespace: "shop", ips: ["10.2.0.5"] }))
    await kube.start()
    const dir = mkdtempSync(join(tmpdir(), "droptailer-readyz-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const kubeconfig = kube.writeKubeconfig(join(dir, "kubeconfig"))
    await kube.stop() // the API server is not there yet; it comes back on the same port

    const metricsPort = await freePort()
    const server = startDroptailer(["server"], {
      ...serverTlsEnv(commandCerts()),
      SERVER_PORT: "0",
      DROPTAILER_LISTEN_ADDRESS: "127.0.0.1",
      DROPTAILER_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      KUBECONFIG: kubeconfig,
      DROPTAILER_KUBERNETES_BACKOFF_MAX: "1s"
    })
    const base = `http://127.0.0.1:${metricsPort}`
    await server.waitForStderr(/listening on 127\.0\.0\.1:\d+/)
    await waitFor("/healthz", async () => (await get(`${base}/healthz`).catch(() => ({ status: 0 }))).status === 200, 30_000, 100)

    // not ready, and it stays so while the API server is away
    for (let i = 0; i < 5; i++) {
      const notReady = await get(`${base}/readyz`)
      expect(notReady.status).toBe(503)
      expect(JSON.parse(notReady.body)).toEqual({ ready: false, checks: { kubernetes: false } })
      await sleep(300)
    }
    expect((await get(`${base}/healthz`)).status).toBe(200)

    await kube.start()
    const ready = await waitFor("/readyz 200", async () => {
      const r = await get(`${base}/readyz`)
      return r.status === 200 ? r : undefined
    }, 30_000, 100)
    expect(JSON.parse(ready.body)).toEqual({ ready: true, checks: { kubernetes: true } })
    expect(kube.countRequests({ method: "GET", path: /\/pods$/, watch: false })).toBeGreaterThan(0)

    expect(await server.stop("SIGTERM")).toMatchObject({ code: 0 })
  }, 120_000)
})
