/**
 * The whole pipeline with real parts: nftables on `lo` drops a real TCP SYN and accepts a real UDP
 * datagram, both logged by the kernel → systemd-journald → `droptailer client` (its own process,
 * certificates from `droptailer certs`, a state directory, DROPTAILER_START=new) → gRPC with mutual
 * TLS → `droptailer server` (its own process, KUBECONFIG pointing at the test API server where a pod
 * of a Deployment owns 127.0.0.1) → exactly one enriched JSON line per packet, a PacketDrop Event on
 * the pod (seen through the real kubectl), and the counters of both processes moved by exactly
 * those packets (the nft rules' own counters say how many packets there were).
 *
 * Unique log prefixes (`e2e-<pid>-…-dropped: `) keep other tests' journal lines out of the counts.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import { afterEach, expect, it } from "vitest"
import { describeWith } from "../support/environment.ts"
import {
  clientTls,
  type Cluster,
  clusterEnv,
  type Droptailer,
  kubectlEvents,
  logLines,
  makeCerts,
  type Metrics,
  poll,
  removeTempDir,
  serverTls,
  sleep,
  startCluster,
  startDroptailer,
  tempDir
} from "../support/e2e.ts"

const table = `droptailer_e2e_${process.pid}`
const nft = (script: string) => execFileSync("nft", ["-f", "-"], { input: script, encoding: "utf8" })
const tableExists = () => execFileSync("nft", ["list", "tables"], { encoding: "utf8" }).includes(` ${table}\n`)

/** Packets counted by the rule whose comment is `comment`. */
const ruleCounter = (comment: string): number => {
  const out = JSON.parse(execFileSync("nft", ["-j", "list", "table", "inet", table], { encoding: "utf8" })) as {
    nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }>
  }
  const rule = out.nftables.find((o) => o.rule?.comment === comment)?.rule
  const counter = rule?.expr.find((e) => e.counter !== undefined)?.counter
  if (counter === undefined) throw new Error(`no counter for rule ${comment}`)
  return counter.packets
}

const processes: Array<Droptailer> = []
const dirs: Array<string> = []
let cluster: Cluster | undefined

afterEach(async () => {
  for (const p of processes.splice(0)) await p.kill("SIGKILL")
  if (tableExists()) nft(`delete table inet ${table}\n`)
  await cluster?.stop()
  cluster = undefined
  for (const dir of dirs.splice(0)) removeTempDir(dir)
})

const counters = (client: Metrics, server: Metrics) => ({
  clientDrops: client.sum("droptailer_client_events_total", { action: "drop" }),
  clientAccepts: client.sum("droptailer_client_events_total", { action: "accept" }),
  clientMalformed: client.sum("droptailer_client_malformed_lines_total"),
  clientAcknowledged: client.sum("droptailer_client_events_acknowledged_total"),
  clientSent: client.sum("droptailer_client_events_sent_total"),
  clientRejected: client.sum("droptailer_client_events_rejected_invalid_total"),
  serverDrops: server.sum("droptailer_server_events_received_total", { action: "drop" }),
  serverAccepts: server.sum("droptailer_server_events_received_total", { action: "accept" }),
  serverDuplicates: server.sum("droptailer_server_duplicates_dropped_total"),
  serverRejected: server.sum("droptailer_server_requests_rejected_total"),
  serverShopDrops: server.sum("droptailer_server_events_by_namespace_total", { action: "drop", src_namespace: "shop", dst_namespace: "shop" })
})

describeWith(["root", "journald", "nftables", "kubectl"], "end to end: nftables → journald → client → server → Kubernetes", () => {
  it("a dropped TCP SYN and an accepted UDP datagram on lo: one enriched line each, a PacketDrop Event, exact counters", async () => {
    const marker = `e2e-${process.pid}-${randomBytes(3).toString("hex")}`
    const dropPrefix = `${marker}-dropped: `
    const acceptPrefix = `${marker}-accepted: `
    const dropPort = 20_000 + Math.floor(Math.random() * 20_000)
    const acceptPort = dropPort + 1
    const knockPort = 1

    const certs = makeCerts()
    const state = tempDir("state")
    dirs.push(certs, state)
    cluster = await startCluster("127.0.0.1")

    const server = await startDroptailer("server", { ...serverTls(certs), ...clusterEnv(cluster) })
    processes.push(server)
    await poll("the server's informers to sync (/readyz)", () => server.ready(), 30_000, 100)

    const client = await startDroptailer("client", {
      ...clientTls(certs),
      DROPTAILER_SERVER_ADDRESS: `127.0.0.1:${server.grpcPort}`,
      DROPTAILER_STATE_DIRECTORY: state,
      DROPTAILER_START: "new",
      DROPTAILER_PREFIXES_OF_DROPS: dropPrefix,
      DROPTAILER_PREFIXES_OF_ACCEPTS: acceptPrefix,
      DROPTAILER_RETRY_MAX_MS: "1000"
    })
    processes.push(client)

    const events = () => server.lines.filter((l) => l !== "").map((l) => JSON.parse(l))
    const onPort = (port: number) => events().filter((e) => e.dst.port === port)

    // DROPTAILER_START=new misses what is written before journalctl follows: knock (a kernel-
    // identified line with our drop prefix, to port 1) until one comes out of the server.
    await poll("the client to follow the journal", async () => {
      await logLines("kernel", [
        `${dropPrefix}IN=lo OUT= SRC=127.0.0.1 DST=127.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1 DPT=${knockPort} WINDOW=1 RES=0x00 SYN URGP=0`
      ])
      await sleep(400)
      return onPort(knockPort).length > 0
    }, 60_000, 0)
    // ... and let the knocks settle before the "before" reading.
    let stable = -1
    await poll("the knocks to settle", async () => {
      const n = server.lineCount()
      const settled = n === stable
      stable = n
      const c = await client.metrics()
      return settled && c.sum("droptailer_client_events_acknowledged_total") === n
    }, 30_000, 1000)

    const before = counters(await client.metrics(), await server.metrics())
    const linesBefore = server.lineCount()

    nft(`add table inet ${table}
add chain inet ${table} input { type filter hook input priority -10 ; policy accept ; }
add rule inet ${table} input iifname "lo" tcp dport ${dropPort} counter log prefix "${dropPrefix}" drop comment "drop"
add rule inet ${table} input iifname "lo" udp dport ${acceptPort} counter log prefix "${acceptPrefix}" accept comment "accept"
`)
    // Real packets: TCP SYNs (each socket closed long before the kernel's 1 s SYN retransmit),
    // UDP datagrams. The rules' counters say how many went through.
    for (let i = 0; i < 3; i++) {
      const socket = Net.connect({ host: "127.0.0.1", port: dropPort })
      socket.on("error", () => {})
      await sleep(250)
      socket.destroy()
      const udp = Dgram.createSocket("udp4")
      await new Promise<void>((resolve, reject) => udp.send(`e2e ${i}`, acceptPort, "127.0.0.1", (e) => (e ? reject(e) : resolve())))
      udp.close()
    }
    const drops = ruleCounter("drop")
    const accepts = ruleCounter("accept")
    expect(drops).toBeGreaterThanOrEqual(3)
    expect(accepts).toBe(3)

    await poll(
      `${drops} drop and ${accepts} accept lines`,
      () => onPort(dropPort).length >= drops && onPort(acceptPort).length >= accepts,
      60_000,
      100
    )
    // nothing more arrives (no duplicate, no late line): the client has acknowledged all it read
    await poll("the client's acknowledgements to catch up", async () => {
      const c = await client.metrics()
      return c.sum("droptailer_client_events_acknowledged_total") - before.clientAcknowledged >= drops + accepts
    }, 30_000, 200)
    await sleep(1000)
    // the rules saw no other packets meanwhile
    expect(ruleCounter("drop")).toBe(drops)
    expect(ruleCounter("accept")).toBe(accepts)

    const dropLines = onPort(dropPort)
    const acceptLines = onPort(acceptPort)
    expect(dropLines).toHaveLength(drops)
    expect(acceptLines).toHaveLength(accepts)
    expect(server.lineCount() - linesBefore).toBe(drops + accepts)

    const endpoint = (ip: string, port?: number) => ({
      ip,
      ...(port === undefined ? {} : { port }),
      kind: "pod",
      namespace: "shop",
      name: cluster!.pod,
      workload: cluster!.workload,
      node: "node-1"
    })
    for (const line of dropLines) {
      expect(line.action).toBe("drop")
      expect(line.protocol).toBe("TCP")
      expect(line.in).toBe("lo")
      expect(line.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
      expect(line.src).toEqual(endpoint("127.0.0.1", line.src.port))
      expect(line.dst).toEqual(endpoint("127.0.0.1", dropPort))
      expect(line.fields.ACTION).toBe("drop")
      expect(line.fields.DPT).toBe(String(dropPort))
      expect(line.fields.SYN).toBe("")
    }
    // one line per SYN: every SYN came from its own socket (its own source port)
    expect(new Set(dropLines.map((l) => l.src.port)).size).toBe(drops)
    for (const line of acceptLines) {
      expect(line.action).toBe("accept")
      expect(line.protocol).toBe("UDP")
      expect(line.src).toEqual(endpoint("127.0.0.1", line.src.port))
      expect(line.dst).toEqual(endpoint("127.0.0.1", acceptPort))
      expect(line.fields.ACTION).toBe("accept")
    }

    // the PacketDrop Events on the pod (one per side: the pod is source and destination), through kubectl
    const packetDrops = async () =>
      (await kubectlEvents(cluster!, `involvedObject.name=${cluster!.pod}`)).filter((e) =>
        e.reason === "PacketDrop" && String(e.message).includes(`port ${dropPort}`)
      )
    const found = await poll("PacketDrop Events counting every drop", async () => {
      const all = await packetDrops()
      return all.length === 2 && all.every((e) => e.count === drops) ? all : undefined
    }, 60_000, 500)
    for (const event of found) {
      expect(event.type).toBe("Warning")
      expect(event.involvedObject).toMatchObject({ kind: "Pod", namespace: "shop", name: cluster.pod })
      expect(event.source?.component).toBe("droptailer")
    }
    // accepts make no Events by default
    expect((await kubectlEvents(cluster, `involvedObject.name=${cluster.pod}`)).filter((e) => e.reason === "PacketAccept")).toHaveLength(0)

    const after = counters(await client.metrics(), await server.metrics())
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]))
    console.log(`e2e pipeline: ${drops} drops, ${accepts} accepts; counter deltas ${JSON.stringify(delta)}`)
    expect(delta).toEqual({
      clientDrops: drops,
      clientAccepts: accepts,
      clientMalformed: 0,
      clientAcknowledged: drops + accepts,
      clientSent: drops + accepts,
      clientRejected: 0,
      serverDrops: drops,
      serverAccepts: accepts,
      serverDuplicates: 0,
      serverRejected: 0,
      serverShopDrops: drops
    })

    nft(`delete table inet ${table}\n`)
    expect(tableExists()).toBe(false)
  }, 240_000)
})
