import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { isIPv6, SocketAddress } from "node:net"
import { canonicalIp, canonicalKernelIpv6At, formatIpv6, parseIpv6 } from "../../src/domain/Ip.ts"

/** What the WHATWG URL parser makes of an IPv6 address: the reference RFC 5952 serializer. */
const viaUrl = (ip: string): string => new URL(`http://[${ip}]`).hostname.slice(1, -1)

/** What libuv's inet_ntop makes of it (node:net): RFC 5952 with mixed notation for IPv4-mapped. */
const viaNet = (ip: string): string => new SocketAddress({ address: ip, family: "ipv6" }).address

/**
 * The reference: node:net, except for the deprecated IPv4-compatible form (::a.b.c.d), which
 * inet_ntop prints mixed but RFC 5952 does not ask for; there the URL serializer's all-hex form.
 */
const reference = (ip: string): string => {
  const viaInet = viaNet(ip)
  return /^::\d+\.\d+\.\d+\.\d+$/.test(viaInet) ? viaUrl(ip) : viaInet
}

/** Eight groups as the kernel's %pI6 prints them. */
const kernelForm = (groups: ReadonlyArray<number>): string => groups.map((g) => g.toString(16).padStart(4, "0")).join(":")

describe("canonicalIp", () => {
  const table: ReadonlyArray<readonly [string, string]> = [
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["0000:0000:0000:0000:0000:0000:0000:0000", "::"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"], // first of two equal runs
    ["2001:0db8:0000:0001:0001:0001:0001:0001", "2001:db8:0:1:1:1:1:1"], // a single zero group stays
    ["fe80:0000:0000:0000:0001:02ff:fe03:0004", "fe80::1:2ff:fe03:4"],
    ["2001:0DB8:AAAA:0000:0000:0000:0000:0000", "2001:db8:aaaa::"], // lowercase, trailing run
    ["0000:0000:0000:0000:0000:ffff:0102:0304", "::ffff:1.2.3.4"], // IPv4-mapped: mixed notation
    ["0000:0000:0000:0000:0000:0000:0102:0304", "::102:304"], // IPv4-compatible (deprecated): hex
    ["2001:db8::1", "2001:db8::1"], // already canonical
    ["2001:DB8:0:0::1", "2001:db8::1"],
    ["::ffff:102:304", "::ffff:1.2.3.4"],
    ["1.2.3.4", "1.2.3.4"], // IPv4 as is
    ["not-an-ip", "not-an-ip"], // anything else unchanged
    ["1:2:3", "1:2:3"],
    ["1::2::3", "1::2::3"]
  ]
  for (const [input, expected] of table) {
    it(`${input} → ${expected}`, () => {
      expect(canonicalIp(input)).toBe(expected)
    })
  }

  it("agrees with node:net for any IPv6 address in the kernel's form", () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }))
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const ip = kernelForm(groups)
        expect(canonicalIp(ip)).toBe(reference(ip))
      }),
      { numRuns: 3000 }
    )
  })

  it("agrees with node:net for IPv4-mapped addresses", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), (high, low) => {
        const ip = kernelForm([0, 0, 0, 0, 0, 0xffff, high, low])
        expect(canonicalIp(ip)).toBe(viaNet(ip))
      })
    )
  })

  it("agrees with node:net for any IPv6 text fast-check makes", () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        expect(isIPv6(ip)).toBe(true)
        expect(canonicalIp(ip)).toBe(reference(ip))
      }),
      { numRuns: 3000 }
    )
  })

  it("agrees with the WHATWG URL serializer outside the IPv4-mapped range", () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        if (!viaNet(ip).startsWith("::ffff:") || viaNet(ip) === "::ffff") expect(canonicalIp(ip)).toBe(viaUrl(ip))
      }),
      { numRuns: 2000 }
    )
  })

  it("is idempotent", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV6(), fc.ipV4(), fc.string()), (text) => {
        expect(canonicalIp(canonicalIp(text))).toBe(canonicalIp(text))
      }),
      { numRuns: 2000 }
    )
  })

  it("never throws and leaves non-IPv6 text alone", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const out = canonicalIp(text)
        if (!isIPv6(text)) expect(out).toBe(text)
      }),
      { numRuns: 2000 }
    )
  })

  it("parses and formats the eight groups", () => {
    expect(parseIpv6("1:2:3:4:5:6:7:8")).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(parseIpv6("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
    expect(parseIpv6("1:2:3:4:5:6:7:8:9")).toBeUndefined()
    expect(parseIpv6("12345::")).toBeUndefined()
    expect(formatIpv6([0, 0, 1, 0, 0, 0, 1, 0])).toBe("0:0:1::1:0")
  })
})

/** A line's codes as the parser holds them (non-ASCII as 0x80). */
const codesOf = (text: string): Uint8Array => Uint8Array.from(text, (c) => Math.min(c.charCodeAt(0), 0x80))

describe("canonicalKernelIpv6At (the parser's path, from the line's codes)", () => {
  const group = fc.oneof(
    fc.constant(0),
    fc.constant(0xffff),
    fc.integer({ min: 0, max: 0xffff }),
    fc.integer({ min: 0, max: 15 }),
    fc.integer({ min: 0x100, max: 0xfff })
  )
  /** Eight groups in the kernel's form, each in either case. */
  const kernelText = fc
    .tuple(fc.array(group, { minLength: 8, maxLength: 8 }), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }))
    .map(([groups, upper]) =>
      groups.map((g, i) => {
        const hex = g.toString(16).padStart(4, "0")
        return upper[i] ? hex.toUpperCase() : hex
      }).join(":")
    )

  it("is canonicalIp for the kernel form, anywhere in a line", () => {
    fc.assert(
      fc.property(kernelText, fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), (ip, before, after) => {
        const line = `${before}${ip}${after}`
        expect(canonicalKernelIpv6At(line, codesOf(line), before.length)).toBe(canonicalIp(ip))
        expect(canonicalIp(ip)).toBe(reference(ip))
      }),
      { numRuns: 3000 }
    )
  })

  it("declines anything else of that length", () => {
    fc.assert(
      fc.property(kernelText, fc.nat(38), fc.constantFrom("g", "-", ".", " ", ":", "\u00e9", "0"), (ip, at, c) => {
        const text = ip.slice(0, at) + c + ip.slice(at + 1)
        const out = canonicalKernelIpv6At(text, codesOf(text), 0)
        if (out === undefined) expect(canonicalIp(text) === text || !/^([0-9a-fA-F]{4}:){7}[0-9a-fA-F]{4}$/.test(text)).toBe(true)
        else expect(out).toBe(canonicalIp(text))
      }),
      { numRuns: 3000 }
    )
  })

  it("gives the same text from its cache of recent addresses, whatever the order they come in", () => {
    // few distinct addresses (some differing in one group only, some only in the case of their
    // digits), asked for over and over: hits, misses and evictions of the 16 slots
    const pool = fc.array(kernelText, { minLength: 1, maxLength: 40 }).chain((ips) => {
      const similar = ips.map((ip) => `${ip.slice(0, 35)}${ip.slice(35) === "0000" ? "0001" : "0000"}`)
      const cased = ips.map((ip) => ip.toUpperCase())
      const all = [...ips, ...similar, ...cased, "0000:0000:0000:0000:0000:0000:0000:0000"]
      return fc.array(fc.constantFrom(...all), { minLength: 1, maxLength: 200 })
    })
    fc.assert(
      fc.property(pool, (ips) => {
        for (const ip of ips) {
          const line = `SRC=${ip} `
          expect(canonicalKernelIpv6At(line, codesOf(line), 4)).toBe(canonicalIp(ip))
        }
      }),
      { numRuns: 300 }
    )
  })

  it("cuts the common forms from the text", () => {
    const table: ReadonlyArray<readonly [string, string]> = [
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["2001:0db8:0000:0000:0000:0000:0000:abcd", "2001:db8::abcd"],
      ["1234:5678:9abc:def0:1234:5678:9abc:def0", "1234:5678:9abc:def0:1234:5678:9abc:def0"],
      ["1234:0000:9abc:def0:1234:5678:9abc:0000", "1234:0:9abc:def0:1234:5678:9abc:0"],
      ["0000:0000:0000:0000:0000:0000:0000:0000", "::"],
      ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
      ["fe80:0000:0000:0000:0000:0000:0000:0000", "fe80::"],
      ["0001:0000:0000:0001:0000:0000:0000:0001", "1:0:0:1::1"],
      ["0000:0000:0000:0000:0000:ffff:0102:0304", "::ffff:1.2.3.4"],
      ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"]
    ]
    for (const [ip, expected] of table) {
      const line = `SRC=${ip} `
      expect(canonicalKernelIpv6At(line, codesOf(line), 4)).toBe(expected)
    }
  })
})
