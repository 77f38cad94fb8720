import { describe, expect, it } from "@effect/vitest"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { defaultPrefixes, eventFromFields, parseLine } from "../../src/domain/Parser.ts"
import { captured, constructed } from "./lines.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }

const parse = (line: string): DropEvent => {
  const result = parseLine(line, defaultPrefixes, context)
  if (result._tag !== "Event") throw new Error(result.reason)
  return result.event
}

/**
 * The Go client's map, transcribed from metal-stack/droptailer pkg/client/forwarder.go:
 * `strings.Fields(msg + " ACTION=drop")`, each part split on "=", key = part[0], value = part[1]
 * or "", later keys overwriting earlier ones.
 */
const goClientFields = (line: string): Record<string, string> => {
  const prefix = [...defaultPrefixes.drop, ...defaultPrefixes.accept].find((p) => line.startsWith(p))!
  const action = (defaultPrefixes.drop as ReadonlyArray<string>).includes(prefix) ? "drop" : "accept"
  const fields: Record<string, string> = {}
  for (const part of `${line.slice(prefix.length)} ACTION=${action}`.split(/\s+/).filter((p) => p.length > 0)) {
    const pieces = part.split("=")
    fields[pieces[0]!] = pieces[1] ?? ""
  }
  return fields
}

describe("fields against the Go client's map", () => {
  const same = {
    "IPv4 TCP SYN": captured.tcpSyn,
    "IPv6 TCP SYN": captured.ipv6TcpSyn,
    "TCP accept with UID/GID": captured.tcpAcceptWithUidGid,
    "bridged TCP": constructed.bridged,
    "the upstream README line": constructed.upstreamReadme,
    "ESP": captured.esp,
    "IPv4 later fragment": captured.laterFragmentUdp,
    "ICMP parameter problem": captured.icmpParameterProblem
  }
  for (const [name, line] of Object.entries(same)) {
    it(`equal for an ordinary line: ${name}`, () => {
      expect(parse(line).fields).toEqual(goClientFields(line))
    })
  }

  it("differ for UDP only in LEN: the IP header's (first) instead of the UDP header's (last)", () => {
    expect(parse(captured.udp).fields).toEqual({ ...goClientFields(captured.udp), LEN: "31" })
    expect(goClientFields(captured.udp).LEN).toBe("11")
  })

  it("differ for ICMP echo only in ID: the IP header's instead of the echo identifier", () => {
    expect(parse(captured.icmpEcho).fields).toEqual({ ...goClientFields(captured.icmpEcho), ID: "4242" })
  })

  it("differ for ICMP errors: the Go map takes the inner packet's DST, LEN... and keys like \"[SRC\"", () => {
    const go = goClientFields(captured.icmpPortUnreachable)
    expect(go["[SRC"]).toBe("127.0.0.1")
    expect(go.LEN).toBe("10") // the inner UDP header's
    const ours = parse(captured.icmpPortUnreachable).fields
    expect(ours.LEN).toBe("58")
    expect(ours).not.toHaveProperty("[SRC")
    expect(ours).not.toHaveProperty("]")
  })

  it("differ with TCP sequence logging: ACK keeps its number (the Go map lets the ACK flag blank it)", () => {
    const line = captured.tcpAllFlags
    expect(goClientFields(line).ACK).toBe("")
    expect(parse(line).fields.ACK).toBe("200")
    expect(parse(line).tcp?.flags).toContain("ACK")
  })
})

describe("eventFromFields: an event from a wire map alone", () => {
  it("rebuilds the typed facts of an ordinary line", () => {
    const fromLine = parse(constructed.upstreamReadme)
    const fromFields = eventFromFields(goClientFields(constructed.upstreamReadme), context)
    expect(fromFields).toEqual(fromLine)
  })

  it("rebuilds IPv6 with canonical addresses", () => {
    const event = eventFromFields(goClientFields(captured.ipv6TcpSyn), context)
    expect(event).toMatchObject({ protocol: "TCP", src: { ip: "::1", port: 43458 }, ip: { version: 6, ttl: 64 } })
  })

  it("takes the Go client's UDP LEN as what it can: the IP length (the map cannot tell them apart)", () => {
    const event = eventFromFields(goClientFields(captured.udp), context)
    expect(event).toMatchObject({ protocol: "UDP", src: { port: 33280 }, dst: { port: 54323 }, ip: { length: 11 } })
  })

  it("keeps what it does not understand (like the Go map's \"[SRC\") in unknown", () => {
    // the Go map of an ICMP error has already lost the outer PROTO=ICMP to the inner PROTO=UDP
    const event = eventFromFields(goClientFields(captured.icmpPortUnreachable), context)
    expect(event?.protocol).toBe("UDP")
    expect(event?.unknown).toContain("[SRC=127.0.0.1")
    // our own client's map keeps the outer packet, so the server sees an ICMP error
    const ours = eventFromFields(parse(captured.icmpPortUnreachable).fields, context)
    expect(ours).toMatchObject({ protocol: "ICMP", icmp: { type: 3, code: 3 }, ip: { length: 58 } })
  })

  it("carries the map itself as fields", () => {
    const fields = goClientFields(captured.tcpSyn)
    expect(eventFromFields(fields, context)?.fields).toEqual(fields)
  })

  it("reads ACTION in any case, a missing ACTION as a drop, and refuses other actions", () => {
    expect(eventFromFields({ IN: "a", OUT: "", ACTION: "Accept" }, context)?.action).toBe("accept")
    expect(eventFromFields({ IN: "a", OUT: "", ACTION: "Drop" }, context)?.action).toBe("drop")
    expect(eventFromFields({ IN: "a", OUT: "" }, context)?.action).toBe("drop")
    expect(eventFromFields({ IN: "a", ACTION: "reject" }, context)).toBeUndefined()
  })

  it("makes the best of an empty or odd map", () => {
    expect(eventFromFields({}, context)).toMatchObject({ action: "drop", protocol: "", in: "", out: "", src: {}, dst: {} })
    expect(eventFromFields({ SPT: "x", TTL: "-1", SRC: "zzz" }, context)).toMatchObject({ src: { ip: "zzz" } })
  })
})
