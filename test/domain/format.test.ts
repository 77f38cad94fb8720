import { describe, expect, it } from "@effect/vitest"
import { type DropEvent, encodeDropEventJson } from "../../src/domain/DropEvent.ts"
import { formatJsonLine, formatUpstreamLine, goJsonString, goTimeString } from "../../src/domain/Format.ts"
import { defaultPrefixes, parseLine } from "../../src/domain/Parser.ts"
import { captured, constructed } from "./lines.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }

const parse = (line: string): DropEvent => {
  const result = parseLine(line, defaultPrefixes, context)
  if (result._tag !== "Event") throw new Error(result.reason)
  return result.event
}

describe("the JSON line (DESIGN.md Output)", () => {
  it("is one line of exactly the documented shape, timestamp with six fractional digits", () => {
    expect(formatJsonLine(parse(constructed.upstreamReadme))).toBe(
      "{\"timestamp\":\"2026-11-27T14:35:34.013717Z\",\"action\":\"drop\",\"host\":\"fw-1\",\"protocol\":\"TCP\"," +
        "\"src\":{\"ip\":\"1.2.3.4\",\"port\":59265},\"dst\":{\"ip\":\"4.3.2.1\",\"port\":445},\"in\":\"vrf09\",\"out\":\"\"," +
        "\"mac\":{\"dst\":\"12:99:fd:3b:ce:f8\",\"src\":\"1a:ae:e9:a7:95:50\",\"ethertype\":\"0x0800\"}," +
        "\"ip\":{\"version\":4,\"length\":40,\"ttl\":238,\"tos\":\"0x00\",\"precedence\":\"0x00\",\"id\":46474}," +
        "\"tcp\":{\"window\":1024,\"reserved\":\"0x00\",\"flags\":[\"SYN\"],\"urgentPointer\":0}," +
        "\"fields\":{\"IN\":\"vrf09\",\"OUT\":\"\",\"MAC\":\"12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00\",\"SRC\":\"1.2.3.4\"," +
        "\"DST\":\"4.3.2.1\",\"LEN\":\"40\",\"TOS\":\"0x00\",\"PREC\":\"0x00\",\"TTL\":\"238\",\"ID\":\"46474\",\"PROTO\":\"TCP\"," +
        "\"SPT\":\"59265\",\"DPT\":\"445\",\"WINDOW\":\"1024\",\"RES\":\"0x00\",\"SYN\":\"\",\"URGP\":\"0\",\"ACTION\":\"drop\"}}"
    )
  })

  it("pads the microseconds: a whole second still has six digits", () => {
    const line = formatJsonLine({ ...parse(captured.udp), timestamp: 1795790134000000 })
    expect(JSON.parse(line).timestamp).toBe("2026-11-27T14:35:34.000000Z")
  })

  it("carries the inner packet of an ICMP error as its own object", () => {
    const json = JSON.parse(formatJsonLine(parse(captured.icmpPortUnreachable)))
    expect(json.src).toEqual({ ip: "127.0.0.1" })
    expect(json.inner).toEqual({
      protocol: "UDP",
      src: { ip: "127.0.0.1", port: 57515 },
      dst: { ip: "127.0.0.1", port: 54329 },
      ip: { version: 4, length: 30, ttl: 64, tos: "0x00", precedence: "0x00", id: 636, flags: ["DF"] },
      udp: { length: 10 }
    })
  })

  it("is the Schema's encoding even for an event built elsewhere, keys in any order, enriched", () => {
    const enriched = {
      fields: { B: "1", A: "2", ACTION: "accept" },
      out: "eth1",
      in: "eth0",
      dst: { node: "node-2", port: 443, kind: "service", ip: "10.96.0.1", name: "api", namespace: "default" },
      src: {
        workload: { name: "web", kind: "Deployment" },
        kind: "pod",
        ip: "10.244.1.7",
        namespace: "shop",
        name: "web-7d9f",
        port: 40000,
        node: "node-1"
      },
      inner: { udp: { length: 8 }, src: { port: 1, ip: "::1" }, protocol: "UDP" },
      protocol: "TCP",
      host: "fw-1",
      action: "accept",
      timestamp: 1795790134000001
    } as DropEvent
    expect(formatJsonLine(enriched)).toBe(JSON.stringify(encodeDropEventJson(enriched)))
    expect(formatJsonLine(enriched)).toMatch(/^\{"timestamp":"2026-11-27T14:35:34\.000001Z","action":"accept","host":"fw-1","protocol":"TCP","src":\{"ip":"10\.244\.1\.7","port":40000,"kind":"pod","namespace":"shop","name":"web-7d9f","workload":\{"kind":"Deployment","name":"web"\},"node":"node-1"\}/)
  })

  it("has no newline inside, whatever the fields hold", () => {
    const event = parse("nftables-metal-dropped: IN=a OUT= X=y")
    expect(formatJsonLine({ ...event, fields: { ...event.fields, X: "line\nbreak" } })).not.toContain("\n")
  })
})

describe("the upstream line (the Go server's fmt.Printf(\"%s %s\\n\", ts, json.Marshal(fields)))", () => {
  it("is Go's time.String() of the whole second, then the fields and timestamp with sorted keys", () => {
    expect(formatUpstreamLine(parse(constructed.upstreamReadme))).toBe(
      "2026-11-27 14:35:34 +0000 UTC " +
        "{\"ACTION\":\"drop\",\"DPT\":\"445\",\"DST\":\"4.3.2.1\",\"ID\":\"46474\",\"IN\":\"vrf09\",\"LEN\":\"40\"," +
        "\"MAC\":\"12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00\",\"OUT\":\"\",\"PREC\":\"0x00\",\"PROTO\":\"TCP\"," +
        "\"RES\":\"0x00\",\"SPT\":\"59265\",\"SRC\":\"1.2.3.4\",\"SYN\":\"\",\"TOS\":\"0x00\",\"TTL\":\"238\"," +
        "\"URGP\":\"0\",\"WINDOW\":\"1024\",\"timestamp\":\"2026-11-27 14:35:34 +0000 UTC\"}"
    )
  })

  it("escapes like Go's encoding/json: <, >, & and U+2028/9 as \\u, control characters short or \\u00XX", () => {
    expect(goJsonString("<a href=\"x\">&</a>")).toBe("\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\"")
    expect(goJsonString("a\nb\tc\rd\be\ff\u0001\u001f\u007f")).toBe("\"a\\nb\\tc\\rd\\be\\ff\\u0001\\u001f\u007f\"")
    expect(goJsonString("\u2028\u2029")).toBe("\"\\u2028\\u2029\"")
    expect(goJsonString("ü€😀")).toBe("\"ü€😀\"")
    expect(goJsonString("\ud800x")).toBe("\"\\ufffdx\"")
    expect(goJsonString("back\\slash")).toBe("\"back\\\\slash\"")
  })

  it("sorts keys by their UTF-8 bytes, as Go sorts map keys", () => {
    const event = parse("nftables-metal-dropped: IN=a OUT=")
    // UTF-16 order would put U+1F600 (a surrogate pair) before U+FF01; UTF-8 order puts it after
    const line = formatUpstreamLine({ ...event, fields: { "\uff01": "1", "\u{1f600}": "2", b: "3", B: "4" } })
    expect(line).toBe(
      "2026-11-27 14:35:34 +0000 UTC {\"B\":\"4\",\"b\":\"3\",\"timestamp\":\"2026-11-27 14:35:34 +0000 UTC\",\"\uff01\":\"1\",\"\u{1f600}\":\"2\"}"
    )
  })

  it("takes the seconds of the timestamp (truncated), in UTC", () => {
    expect(goTimeString(0)).toBe("1970-01-01 00:00:00 +0000 UTC")
    expect(goTimeString(1795790134)).toBe("2026-11-27 14:35:34 +0000 UTC")
    const event = { ...parse(captured.udp), timestamp: 1795790134999999 }
    expect(formatUpstreamLine(event).startsWith("2026-11-27 14:35:34 +0000 UTC {")).toBe(true)
  })

  it("lets the server's timestamp replace a timestamp key the client sent", () => {
    const event = parse("nftables-metal-dropped: IN=a OUT= timestamp=forged")
    expect(formatUpstreamLine(event)).toContain("\"timestamp\":\"2026-11-27 14:35:34 +0000 UTC\"")
    expect(formatUpstreamLine(event)).not.toContain("forged")
  })
})
