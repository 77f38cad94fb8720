/**
 * The test API server speaks real Kubernetes: the real kubectl lists its pods and events through
 * a generated kubeconfig, and the watch protocol (bookmarks, 410 Gone, patches) behaves as the
 * informers expect.
 */
import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { describeWith } from "../support/environment.ts"
import { Context } from "effect"
import { Enricher } from "../../src/k8s/Enricher.ts"
import { EventsSink } from "../../src/k8s/EventsSink.ts"
import { drop, eventually, kubeApiServer, kubernetesFor, pod } from "../support/kube-fixtures.ts"

const run = promisify(execFile)

const kubectl = (kubeconfig: string, ...args: Array<string>) =>
  Effect.promise(() =>
    run("kubectl", ["--kubeconfig", kubeconfig, ...args], { timeout: 30_000, env: { ...process.env, HOME: tmpdir() } })
      .then((r) => r.stdout)
  )

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "droptailer-kube-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describeWith(["kubectl"], "the Kubernetes-API-compatible test server and the real kubectl", () => {
  it.live("kubectl get pods -A and kubectl get events see what the server holds", () =>
    Effect.gen(function*() {
      const server = yield* kubeApiServer()
      const dir = yield* tempDir
      server.add("pods", pod({ name: "web-1", namespace: "shop", ips: ["10.2.0.5"] }))
      server.add("pods", pod({ name: "coredns-abc", namespace: "kube-system", ips: ["10.2.0.9"] }))
      server.add("events", {
        metadata: { name: "web-1.1", namespace: "shop" },
        involvedObject: { apiVersion: "v1", kind: "Pod", namespace: "shop", name: "web-1" },
        reason: "PacketDrop",
        message: "Dropped TCP packet from 203.0.113.9 to port 22 by firewall fw-1",
        type: "Warning",
        count: 3,
        firstTimestamp: "2026-11-27T14:00:00Z",
        lastTimestamp: "2026-11-27T14:01:00Z",
        source: { component: "droptailer" }
      })
      const kubeconfig = server.writeKubeconfig(join(dir, "kubeconfig"))

      const pods = yield* kubectl(kubeconfig, "get", "pods", "-A")
      expect(pods).toMatch(/NAMESPACE\s+NAME/)
      expect(pods).toMatch(/shop\s+web-1/)
      expect(pods).toMatch(/kube-system\s+coredns-abc/)

      const events = yield* kubectl(kubeconfig, "get", "events", "-n", "shop")
      expect(events).toMatch(/LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE/)
      expect(events).toMatch(/Warning\s+PacketDrop\s+pod\/web-1\s+Dropped TCP packet from 203\.0\.113\.9/)

      const json = JSON.parse(yield* kubectl(kubeconfig, "get", "events", "-A", "-o", "json")) as {
        items: Array<{ reason: string; count: number; involvedObject: { name: string } }>
      }
      expect(json.items).toMatchObject([{ reason: "PacketDrop", count: 3, involvedObject: { name: "web-1" } }])

      const one = JSON.parse(yield* kubectl(kubeconfig, "get", "pod", "web-1", "-n", "shop", "-o", "json")) as {
        status: { podIP: string }
      }
      expect(one.status.podIP).toBe("10.2.0.5")

      // kubectl's own merge patch goes through as well
      yield* kubectl(kubeconfig, "patch", "event", "web-1.1", "-n", "shop", "--type=merge", "-p", "{\"count\":4}")
      expect(server.get("events", "shop", "web-1.1")!.count).toBe(4)

      const version = yield* kubectl(kubeconfig, "version", "-o", "json")
      expect(version).toContain("v1.31.0")
      expect(server.countRequests({ path: /^\/api\/v1\/pods$/ })).toBeGreaterThan(0)
    }))

  it.live("kubectl describe pod and kubectl get events show the Events droptailer posted", () =>
    Effect.gen(function*() {
      const server = yield* kubeApiServer()
      const dir = yield* tempDir
      server.add("pods", pod({ name: "web-1", namespace: "shop", ips: ["10.2.0.5"] }))
      server.add("pods", pod({ name: "web-1", namespace: "other", ips: ["10.2.0.6"] }))
      const context = yield* kubernetesFor(server)
      const enricher = Context.get(context, Enricher)
      yield* eventually(() => enricher.synced, 10_000, "synced")
      yield* Context.get(context, EventsSink).offerAll(
        Array.from({ length: 3 }, () => enricher.enrich(drop({ src: "203.0.113.9", dst: "10.2.0.5", dport: 22, host: "fw-1" })))
      )
      yield* eventually(() => server.list("events")[0]?.count === 3, 10_000, "Event with count 3")
      const kubeconfig = server.writeKubeconfig(join(dir, "kubeconfig"))
      const describe = yield* kubectl(kubeconfig, "describe", "pod", "web-1", "-n", "shop")
      expect(describe).toMatch(/Warning\s+PacketDrop\s+.*\(x3 over .*\)\s+droptailer\s+Dropped TCP packet from 203\.0\.113\.9 to port 22 by firewall fw-1/)
      const other = yield* kubectl(kubeconfig, "describe", "pod", "web-1", "-n", "other")
      expect(other).not.toContain("PacketDrop")
      const events = yield* kubectl(kubeconfig, "get", "events", "-A")
      expect(events).toMatch(/shop\s+\S+\s+Warning\s+PacketDrop\s+pod\/web-1\s+Dropped TCP packet from 203\.0\.113\.9 to port 22 by firewall fw-1/)
    }))
})

const readWatch = (url: string, untilLines: number, timeoutMillis = 3000) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), timeoutMillis)
    const lines: Array<{ type: string; object: { metadata?: { resourceVersion?: string; name?: string }; code?: number } }> = []
    try {
      const response = await fetch(url, { signal: controller.signal })
      const reader = response.body!.getReader()
      let text = ""
      while (lines.length < untilLines) {
        const { done, value } = await reader.read()
        if (done) break
        text += new TextDecoder().decode(value)
        let nl = text.indexOf("\n")
        while (nl >= 0) {
          lines.push(JSON.parse(text.slice(0, nl)))
          text = text.slice(nl + 1)
          nl = text.indexOf("\n")
        }
      }
      controller.abort()
    } catch {
      // aborted
    } finally {
      clearTimeout(timer)
    }
    return lines
  })

it.live("watch: replays from a resourceVersion, sends bookmarks, answers 410 after compaction", () =>
  Effect.gen(function*() {
    const server = yield* kubeApiServer({ bookmarkIntervalMillis: 100 })
    server.add("pods", pod({ name: "a", ips: ["10.0.0.1"] }))
    const listed = (yield* Effect.promise(() => fetch(`${server.url}/api/v1/namespaces/default/pods`).then((r) => r.json()))) as {
      metadata: { resourceVersion: string }
      items: Array<unknown>
    }
    expect(listed.items).toHaveLength(1)
    server.add("pods", pod({ name: "b", ips: ["10.0.0.2"] }))
    server.remove("pods", "default", "a")
    const events = yield* readWatch(
      `${server.url}/api/v1/pods?watch=1&resourceVersion=${listed.metadata.resourceVersion}&allowWatchBookmarks=true`,
      3
    )
    expect(events.map((e) => e.type)).toEqual(["ADDED", "DELETED", "BOOKMARK"])
    expect(events[2]!.object.metadata!.resourceVersion).toBe(server.resourceVersion)

    server.compact()
    const gone = yield* readWatch(`${server.url}/api/v1/pods?watch=1&resourceVersion=${listed.metadata.resourceVersion}`, 1)
    expect(gone).toMatchObject([{ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } }])

    // paging
    for (let i = 0; i < 5; i++) server.add("pods", pod({ name: `p${i}` }))
    const page = (yield* Effect.promise(() => fetch(`${server.url}/api/v1/pods?limit=4`).then((r) => r.json()))) as {
      metadata: { continue?: string }
      items: Array<unknown>
    }
    expect(page.items).toHaveLength(4)
    expect(page.metadata.continue).toBeDefined()
  }))
