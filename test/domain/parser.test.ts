import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import type { DropEvent } from "../../src/domain/DropEvent.ts"
import { classify, defaultPrefixes, parseBody, parseLine, parsePrefixList, type ParseResult } from "../../src/domain/Parser.ts"
import { captured, constructed } from "./lines.ts"

const context = { timestamp: 1795790134013717, host: "fw-1" }

const parse = (line: string): DropEvent => {
  const result: ParseResult = parseLine(line, defaultPrefixes, context)
  if (result._tag !== "Event") throw new Error(`expected an event, got ${result._tag}: ${result.reason}`)
  return result.event
}

describe("classify", () => {
  it("a drop prefix makes a drop, an accept prefix an accept, anything else is not ours", () => {
    expect(classify("nftables-metal-dropped: IN=a", defaultPrefixes)).toEqual({ action: "drop", body: "IN=a" })
    expect(classify("nftables-firewall-accepted: IN=a", defaultPrefixes)).toEqual({ action: "accept", body: "IN=a" })
    expect(classify("kernel: eth0: link up", defaultPrefixes)).toBeUndefined()
  })

  it("is what parseLine classifies by (its own prefix test, not startsWith), whatever the prefixes", () => {
    // prefixes and lines from a small alphabet, so that they share first characters and overlap
    const text = fc.string({ unit: fc.constantFrom("n", "f", "t", ":", " ", "\u00e9", "\ud800"), maxLength: 6 })
    fc.assert(
      fc.property(fc.array(text, { maxLength: 3 }), fc.array(text, { maxLength: 3 }), text, (drop, accept, head) => {
        const prefixes = { drop, accept }
        const message = `${head}IN=a OUT=`
        const expected = classify(message, prefixes)
        const result = parseLine(message, prefixes, context)
        if (expected === undefined) expect(result).toEqual({ _tag: "Skipped", reason: "no drop or accept prefix" })
        else {
          // the same event (a reason's column counts from the line's start, not the body's)
          const body = parseBody(expected.body, expected.action, context)
          expect(result._tag).toBe(body._tag)
          if (body._tag === "Event") expect(result).toEqual(body)
        }
      }),
      { numRuns: 2000 }
    )
  })

  it("reads the env format of the prefix variables: comma-separated, empty entries dropped", () => {
    expect(parsePrefixList("a: ,b: ")).toEqual(["a: ", "b: "])
    expect(parsePrefixList("a: ,,")).toEqual(["a: "])
  })
})

/**
 * Each real line with the typed facts it must yield. `typed` is matched as a subset of the
 * event; `absent` lists detail groups that must not be there.
 */
const cases: ReadonlyArray<{
  readonly name: string
  readonly line: string
  readonly typed: Record<string, unknown>
  readonly absent?: ReadonlyArray<keyof DropEvent>
}> = [
  {
    name: "IPv4 TCP SYN",
    line: captured.tcpSyn,
    typed: {
      action: "drop",
      protocol: "TCP",
      src: { ip: "127.0.0.1", port: 52512 },
      dst: { ip: "127.0.0.1", port: 54321 },
      in: "lo",
      out: "",
      mac: { dst: "00:00:00:00:00:00", src: "00:00:00:00:00:00", ethertype: "0x0800" },
      ip: { version: 4, length: 60, ttl: 64, tos: "0x00", precedence: "0x00", id: 63523, flags: ["DF"] },
      tcp: { window: 65495, reserved: "0x00", flags: ["SYN"], urgentPointer: 0 }
    },
    absent: ["udp", "icmp", "inner", "unknown"]
  },
  {
    name: "TCP with sequence numbers and options (log flags all)",
    line: captured.tcpSynWithOptions,
    typed: {
      tcp: {
        seq: 36150982,
        ack: 0,
        window: 65495,
        reserved: "0x00",
        flags: ["SYN"],
        urgentPointer: 0,
        options: "0204FFD70402080A8C4BDEC7000000000103030A"
      }
    },
    absent: ["unknown"]
  },
  {
    name: "TCP with every flag, in the kernel's order",
    line: captured.tcpAllFlags,
    typed: {
      src: { ip: "127.0.0.1", port: 1234 },
      tcp: { seq: 100, ack: 200, flags: ["CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"], urgentPointer: 9 }
    }
  },
  {
    name: "UDP: the first LEN is the IP header's, the second the UDP header's",
    line: captured.udp,
    typed: {
      protocol: "UDP",
      src: { ip: "127.0.0.1", port: 33280 },
      dst: { ip: "127.0.0.1", port: 54323 },
      ip: { version: 4, length: 31, id: 47932, flags: ["DF"] },
      udp: { length: 11 }
    },
    absent: ["tcp", "unknown"]
  },
  {
    name: "UDPLITE",
    line: captured.udplite,
    typed: { protocol: "UDPLITE", src: { port: 1000 }, dst: { port: 2000 }, udp: { length: 8 } }
  },
  {
    name: "ICMP echo: the first ID is the IP header's, the second the echo identifier",
    line: captured.icmpEcho,
    typed: {
      protocol: "ICMP",
      src: { ip: "127.0.0.1" },
      dst: { ip: "127.0.0.9" },
      ip: { id: 4242, tos: "0x10" },
      icmp: { type: 8, code: 0, id: 4660, seq: 7 }
    },
    absent: ["inner", "unknown"]
  },
  {
    name: "ICMP port unreachable: the quoted UDP packet goes to inner, the outer packet stays",
    line: captured.icmpPortUnreachable,
    typed: {
      protocol: "ICMP",
      src: { ip: "127.0.0.1" },
      dst: { ip: "127.0.0.1" },
      ip: { version: 4, length: 58, id: 34660, precedence: "0xC0" },
      icmp: { type: 3, code: 3 },
      inner: {
        protocol: "UDP",
        src: { ip: "127.0.0.1", port: 57515 },
        dst: { ip: "127.0.0.1", port: 54329 },
        ip: { version: 4, length: 30, ttl: 64, id: 636, flags: ["DF"] },
        udp: { length: 10 }
      }
    },
    absent: ["udp", "unknown"]
  },
  {
    name: "ICMP redirect: GATEWAY, inner TCP",
    line: captured.icmpRedirect,
    typed: {
      icmp: { type: 5, code: 1, gateway: "192.168.1.254" },
      inner: { protocol: "TCP", src: { ip: "10.0.0.5", port: 40000 }, dst: { ip: "10.9.9.9", port: 443 }, tcp: { flags: ["SYN"] } }
    }
  },
  {
    name: "ICMP fragmentation needed: MTU after the inner ICMP echo",
    line: captured.icmpFragmentationNeeded,
    typed: {
      icmp: { type: 3, code: 4, mtu: 1400 },
      inner: { protocol: "ICMP", icmp: { type: 8, code: 0, id: 77, seq: 3 } }
    }
  },
  {
    name: "ICMP parameter problem: PARAMETER",
    line: captured.icmpParameterProblem,
    typed: { icmp: { type: 12, code: 0, parameter: 20 } }
  },
  {
    name: "ICMP time exceeded: inner UDP with TTL 1",
    line: captured.icmpTimeExceeded,
    typed: { icmp: { type: 11, code: 0 }, inner: { dst: { ip: "8.8.8.8", port: 33435 }, ip: { ttl: 1 } } }
  },
  {
    name: "ICMP error cut short: INCOMPLETE [N bytes]",
    line: captured.icmpTruncated,
    typed: { icmp: { type: 3, code: 1 }, incomplete: 10 },
    absent: ["inner", "unknown"]
  },
  {
    name: "IPv6 TCP: addresses in RFC 5952 form, HOPLIMIT as ttl",
    line: captured.ipv6TcpSyn,
    typed: {
      protocol: "TCP",
      src: { ip: "::1", port: 43458 },
      dst: { ip: "::1", port: 54321 },
      mac: { ethertype: "0x86dd" },
      ip: { version: 6, length: 80, ttl: 64, trafficClass: "0", flowLabel: "744351" },
      tcp: { flags: ["SYN"], window: 65476 }
    },
    absent: ["unknown"]
  },
  {
    name: "IPv6 UDP",
    line: captured.ipv6Udp,
    typed: { protocol: "UDP", src: { ip: "::1", port: 37752 }, ip: { version: 6, length: 54 }, udp: { length: 14 } }
  },
  {
    name: "ICMPv6 echo request",
    line: captured.icmpv6Echo,
    typed: {
      protocol: "ICMPv6",
      src: { ip: "fe80::1:2ff:fe03:4" },
      dst: { ip: "::9" },
      icmp: { type: 128, code: 0, id: 1234, seq: 5 }
    }
  },
  {
    name: "ICMPv6 port unreachable with its inner UDP packet",
    line: captured.icmpv6PortUnreachable,
    typed: {
      protocol: "ICMPv6",
      ip: { version: 6, length: 98, flowLabel: "729076" },
      icmp: { type: 1, code: 4 },
      inner: { protocol: "UDP", src: { ip: "::1", port: 56136 }, ip: { version: 6, length: 50, flowLabel: "1014217" } }
    }
  },
  {
    name: "ICMPv6 packet too big: MTU, inner TCP to a compressed address",
    line: captured.icmpv6PacketTooBig,
    typed: {
      src: { ip: "2001:db8::1:0:0:1" },
      icmp: { type: 2, code: 0, mtu: 1280 },
      inner: { dst: { ip: "2001:db8:0:1::1", port: 50000 }, tcp: { seq: 5, ack: 6, flags: ["ACK", "PSH"] } }
    }
  },
  {
    name: "ICMPv6 parameter problem: POINTER (hex) as parameter",
    line: captured.icmpv6ParameterProblem,
    typed: { icmp: { type: 4, code: 0, parameter: 40 } }
  },
  {
    name: "IPv6 hop-by-hop and fragment headers: OPT ( FRAG:0 INCOMPLETE ID:... )",
    line: captured.ipv6HopByHopAndFragment,
    typed: {
      protocol: "UDP",
      src: { ip: "::1", port: 546 },
      dst: { ip: "::9", port: 547 },
      ip: { version: 6, id: 0xabcdef01, flags: ["MF", "FRAG"], fragmentOffset: 0 },
      udp: { length: 16 }
    },
    absent: ["unknown"]
  },
  {
    name: "IPv6 later fragment: no ports",
    line: captured.ipv6LaterFragment,
    typed: { protocol: "UDP", src: { ip: "2001:db8::1" }, ip: { flags: ["FRAG"], fragmentOffset: 1480 } },
    absent: ["udp", "unknown"]
  },
  {
    name: "IPv4 first fragment: MF",
    line: captured.firstFragment,
    typed: { protocol: "UDP", ip: { id: 999, flags: ["MF"] }, src: { port: 5353 }, udp: { length: 1000 } }
  },
  {
    name: "IPv4 later fragment: FRAG:N, no transport header",
    line: captured.laterFragmentUdp,
    typed: { protocol: "UDP", src: { ip: "127.0.0.1" }, ip: { id: 999, fragmentOffset: 5 } },
    absent: ["udp", "unknown"]
  },
  {
    name: "IPv4 later TCP fragment",
    line: captured.laterFragmentTcp,
    typed: { protocol: "TCP", ip: { fragmentOffset: 16 } },
    absent: ["tcp", "unknown"]
  },
  {
    name: "IPv4 options and a TCP header cut short",
    line: captured.ipOptionsTruncatedTcp,
    typed: { protocol: "TCP", ip: { options: "0707040000000001", length: 31 }, incomplete: 3 },
    absent: ["tcp", "unknown"]
  },
  {
    name: "ESP: SPI",
    line: captured.esp,
    typed: { protocol: "ESP", spi: 0xdeadbeef }
  },
  {
    name: "AH: SPI",
    line: captured.ah,
    typed: { protocol: "AH", spi: 0x1000 }
  },
  {
    name: "a protocol the kernel does not decode: its number",
    line: captured.unknownProtocol,
    typed: { protocol: "253", src: { ip: "127.0.0.1" } }
  },
  {
    name: "SCTP: logged by number, without ports",
    line: captured.sctp,
    typed: { protocol: "132" }
  },
  {
    name: "output hook: UID, GID and MARK, no MAC",
    line: captured.udpOutputWithUidGidMark,
    typed: { in: "", out: "lo", uid: 0, gid: 0, mark: 0x2a, udp: { length: 10 } },
    absent: ["mac"]
  },
  {
    name: "accept prefix: an accept",
    line: captured.tcpAcceptWithUidGid,
    typed: { action: "accept", protocol: "TCP", uid: 0, gid: 0, dst: { port: 54325 } }
  },
  {
    name: "ARP: IPSRC/IPDST become src/dst",
    line: captured.arpRequest,
    typed: {
      protocol: "ARP",
      src: { ip: "10.1.2.3" },
      dst: { ip: "10.1.2.4" },
      arp: { htype: 1, ptype: "0x0800", opcode: 1, macSrc: "02:42:ac:11:00:02", macDst: "00:00:00:00:00:00" }
    },
    absent: ["ip", "mac", "unknown"]
  },
  {
    name: "bridged: PHYSIN and PHYSOUT",
    line: constructed.bridged,
    typed: { in: "br0", out: "br0", physin: "veth1a2b3c", physout: "eth1", src: { ip: "10.244.1.7", port: 40000 } }
  },
  {
    name: "log flags ether: MACSRC/MACDST/MACPROTO",
    line: constructed.macDecoded,
    typed: { mac: { dst: "02:42:ac:11:00:03", src: "02:42:ac:11:00:02", ethertype: "0x0800" }, tcp: { flags: ["RST"] } }
  }
]

describe("parseLine over real kernel lines", () => {
  for (const c of cases) {
    it(c.name, () => {
      const event = parse(c.line)
      expect(event).toMatchObject(c.typed)
      expect(event.timestamp).toBe(context.timestamp)
      expect(event.host).toBe("fw-1")
      for (const key of c.absent ?? []) expect(event, `${key} should be absent`).not.toHaveProperty(key)
    })
  }

  it("keeps tokens it does not know, in order", () => {
    const event = parse("nftables-metal-dropped: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 FOO=bar BAZ PROTO=TCP SPT=1 DPT=2 SYN")
    expect(event.unknown).toEqual(["FOO=bar", "BAZ"])
    expect(event.fields).toMatchObject({ FOO: "bar", BAZ: "" })
  })

  it("takes a line without the kernel's trailing space, and tabs as separators", () => {
    expect(parse("nftables-metal-dropped: IN=eth0\tOUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=53 LEN=8").udp).toEqual({ length: 8 })
  })
})

describe("the wire map (fields) for real lines", () => {
  it("is the Go client's KEY=VALUE split with bare flags as \"\" plus ACTION, for an ordinary line", () => {
    expect(parse(constructed.upstreamReadme).fields).toEqual({
      IN: "vrf09",
      OUT: "",
      MAC: "12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00",
      SRC: "1.2.3.4",
      DST: "4.3.2.1",
      LEN: "40",
      TOS: "0x00",
      PREC: "0x00",
      TTL: "238",
      ID: "46474",
      PROTO: "TCP",
      SPT: "59265",
      DPT: "445",
      WINDOW: "1024",
      RES: "0x00",
      SYN: "",
      URGP: "0",
      ACTION: "drop"
    })
  })

  it("keeps the IP header's LEN for UDP (the Go client would send the UDP LEN)", () => {
    expect(parse(captured.udp).fields).toMatchObject({ LEN: "31", SPT: "33280", DPT: "54323", DF: "", ACTION: "drop" })
  })

  it("keeps the IP header's ID for ICMP echo, with TYPE/CODE/SEQ", () => {
    expect(parse(captured.icmpEcho).fields).toMatchObject({ ID: "4242", TYPE: "8", CODE: "0", SEQ: "7" })
  })

  it("leaves the inner packet of an ICMP error out: SRC/DST/LEN stay the outer packet's", () => {
    const fields = parse(captured.icmpPortUnreachable).fields
    expect(fields).toEqual({
      IN: "lo",
      OUT: "",
      MAC: "00:00:00:00:00:00:00:00:00:00:00:00:08:00",
      SRC: "127.0.0.1",
      DST: "127.0.0.1",
      LEN: "58",
      TOS: "0x00",
      PREC: "0xC0",
      TTL: "64",
      ID: "34660",
      PROTO: "ICMP",
      TYPE: "3",
      CODE: "3",
      ACTION: "drop"
    })
  })

  it("keeps IPv6 addresses as logged (uncompressed), as the Go client sends them", () => {
    expect(parse(captured.ipv6TcpSyn).fields).toMatchObject({
      SRC: "0000:0000:0000:0000:0000:0000:0000:0001",
      HOPLIMIT: "64",
      FLOWLBL: "744351"
    })
  })

  it("has the naive split's keys for OPT and INCOMPLETE groups", () => {
    expect(parse(captured.tcpSynWithOptions).fields).toMatchObject({ OPT: "", "(0204FFD70402080A8C4BDEC7000000000103030A)": "" })
    expect(parse(captured.icmpTruncated).fields).toMatchObject({ INCOMPLETE: "", "[10": "", "bytes]": "" })
    expect(parse(captured.ipv6HopByHopAndFragment).fields).toMatchObject({
      OPT: "",
      "(": "",
      ")": "",
      "FRAG:0": "",
      INCOMPLETE: "",
      "ID:abcdef01": ""
    })
  })

  it("has UID, GID, MARK and the ARP keys", () => {
    expect(parse(captured.udpOutputWithUidGidMark).fields).toMatchObject({ UID: "0", GID: "0", MARK: "0x2a" })
    expect(parse(captured.arpRequest).fields).toMatchObject({ ARP: "", HTYPE: "1", IPSRC: "10.1.2.3", IPDST: "10.1.2.4" })
    expect(parse(constructed.bridged).fields).toMatchObject({ PHYSIN: "veth1a2b3c", PHYSOUT: "eth1" })
  })

  it("says accept for accept lines", () => {
    expect(parse(captured.tcpAcceptWithUidGid).fields.ACTION).toBe("accept")
  })
})

describe("bad input", () => {
  const reasonOf = (line: string): { tag: string; reason: string } => {
    const r = parseLine(line, defaultPrefixes, context)
    return r._tag === "Event" ? { tag: "Event", reason: "" } : { tag: r._tag, reason: r.reason }
  }

  it("skips an empty line", () => {
    expect(reasonOf("")).toEqual({ tag: "Skipped", reason: "empty message" })
  })

  it("skips lines without a prefix, binary or not", () => {
    expect(reasonOf("kernel: eth0: link up").tag).toBe("Skipped")
    expect(reasonOf("\u0000\u0001\u00ff\u0010garbage").reason).toBe("no drop or accept prefix")
  })

  it("reports a prefix with nothing after it", () => {
    expect(reasonOf("nftables-metal-dropped: ")).toEqual({ tag: "Malformed", reason: "nothing after the prefix" })
    expect(reasonOf("nftables-metal-dropped:    ").tag).toBe("Malformed")
  })

  it("reports binary data after a prefix", () => {
    const r = reasonOf("nftables-metal-dropped: IN=eth0 \u0000\u0001\u0002 OUT=")
    expect(r.tag).toBe("Malformed")
    expect(r.reason).toContain("binary data")
  })

  it("reports invalid UTF-8 (decoded as U+FFFD) and lone surrogates", () => {
    const bytes = Buffer.concat([Buffer.from("nftables-metal-dropped: IN=eth"), Buffer.from([0xff, 0xfe]), Buffer.from(" OUT=")])
    expect(reasonOf(bytes.toString("utf8")).reason).toContain("invalid UTF-8")
    expect(reasonOf("nftables-metal-dropped: IN=\ud800 OUT=").reason).toContain("invalid UTF-8")
  })

  it("reports a line over 64 KiB without looking at it", () => {
    const r = reasonOf(`nftables-metal-dropped: IN=eth0 OUT= ${"X=1 ".repeat(256 * 1024)}`)
    expect(r.tag).toBe("Malformed")
    expect(r.reason).toMatch(/^line too long/)
  })

  it("reports text after a prefix that is not a netfilter line", () => {
    expect(reasonOf("nftables-metal-dropped: hello world")).toEqual({
      tag: "Malformed",
      reason: "not a netfilter log line (no IN= or OUT=)"
    })
  })

  it("does not mistake prototype names for fields", () => {
    const event = parse("nftables-metal-dropped: IN=a OUT= __proto__=x constructor toString=1")
    expect(Object.getPrototypeOf(event.fields)).toBe(Object.prototype)
    expect(Object.keys(event.fields)).toEqual(["IN", "OUT", "__proto__", "constructor", "toString", "ACTION"])
    expect(event.fields.constructor).toBe("")
  })
})
