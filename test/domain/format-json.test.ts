import { describe, expect, it } from "@effect/vitest"
import { type DropEvent, encodeDropEventJson } from "../../src/domain/DropEvent.ts"
import { formatJsonLine } from "../../src/domain/Format.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { allLines } from "./lines.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }

const endpoint = (n: number) => ({
  node: `node-${n}`,
  workload: { name: "web", kind: "Deployment" },
  name: `pod-${n}`,
  namespace: "shop",
  kind: "pod" as const,
  port: 40000 + n,
  ip: `10.0.0.${n}`
})
const ip = {
  flowLabel: "1",
  trafficClass: "0",
  options: "0102",
  fragmentOffset: 5,
  flags: ["DF"],
  id: 7,
  precedence: "0x00",
  tos: "0x10",
  ttl: 64,
  length: 60,
  version: 4 as const
}
const tcp = { options: "02", urgentPointer: 1, flags: ["SYN"], reserved: "0x00", window: 9, ack: 2, seq: 1 }
const icmp = { mtu: 1400, gateway: "1.2.3.4", parameter: 3, seq: 4, id: 5, code: 1, type: 3 }

/** Every key of every struct set, each object's keys in reverse Schema order. */
const everything = {
  fields: { B: "1", A: "<&>\u2028\"\\", ACTION: "drop" },
  unknown: ["X=y"],
  incomplete: 10,
  gid: 2,
  uid: 1,
  mark: 42,
  spi: 4096,
  arp: { macDst: "00:00:00:00:00:01", macSrc: "02:42:ac:11:00:02", opcode: 1, ptype: "0x0800", htype: 1 },
  inner: {
    incomplete: 3,
    icmp,
    udp: { length: 8 },
    tcp,
    ip,
    dst: endpoint(2),
    src: endpoint(1),
    protocol: "TCP"
  },
  icmp,
  udp: { length: 11 },
  tcp,
  ip,
  mac: { raw: "00", ethertype: "0x0800", src: "02:42:ac:11:00:02", dst: "02:42:ac:11:00:03" },
  physout: "eth1",
  physin: "veth0",
  out: "eth1",
  in: "eth0",
  dst: endpoint(4),
  src: endpoint(3),
  protocol: "TCP",
  host: "fw-1",
  action: "drop",
  timestamp: 1795790134000001
} as DropEvent

describe("formatJsonLine", () => {
  it("is the Schema's JSON encoding with every key of every struct set, in Schema order", () => {
    const line = formatJsonLine(everything)
    expect(line).toBe(JSON.stringify(encodeDropEventJson(everything)))
    expect(Object.keys(JSON.parse(line))).toEqual([
      "timestamp", "action", "host", "protocol", "src", "dst", "in", "out", "physin", "physout", "mac", "ip", "tcp",
      "udp", "icmp", "inner", "arp", "spi", "mark", "uid", "gid", "incomplete", "unknown", "fields"
    ])
  })

  it("is the Schema's JSON encoding for every real line, and leaves out keys that are not in the Schema", () => {
    for (const text of allLines) {
      const r = parseLine(text, defaultPrefixes, context)
      if (r._tag !== "Event") throw new Error(r.reason)
      expect(formatJsonLine(r.event)).toBe(JSON.stringify(encodeDropEventJson(r.event)))
      const extra = { ...r.event, extra: 1, src: { ...r.event.src, extra: 2 } } as DropEvent
      expect(formatJsonLine(extra)).toBe(formatJsonLine(r.event))
    }
  })
})
