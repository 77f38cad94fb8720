/**
 * IP text as keys of the IP index: IPv4 as a dotted quad, IPv6 in RFC 5952 form — the same
 * canonical text the parser puts into events (src/domain/Ip.ts does the IPv6 work; this module
 * adds the validation the informers need and a memo for the hot path). Kubernetes stores IPv6
 * compressed, the kernel logs it uncompressed: both land on the same key.
 */
import { formatIpv6, parseIpv6 } from "../domain/Ip.ts"

const ipv4Pattern = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

const canonicalIpv4 = (text: string): string | undefined => {
  const m = ipv4Pattern.exec(text)
  if (m === null) return undefined
  const parts = [m[1], m[2], m[3], m[4]].map(Number)
  if (parts.some((n) => n > 255)) return undefined
  return parts.join(".")
}

/** Canonical form of an IP address, or `undefined` when the text is not an IP address. */
export const canonicalIp = (text: string): string | undefined => {
  if (text.indexOf(":") < 0) return canonicalIpv4(text)
  const zone = text.indexOf("%") // link-local zone ids (fe80::1%eth0) are not part of the address
  const groups = parseIpv6(zone < 0 ? text : text.slice(0, zone))
  return groups === undefined ? undefined : formatIpv6(groups)
}

const cache = new Map<string, string>()
const cacheLimit = 65_536

/**
 * The index key for an IP as it arrives in an event: IPv4 text is used as it is (the parser
 * prints dotted quads), IPv6 text is canonicalised once and memoised (the same few thousand
 * addresses repeat millions of times; events from the parser are canonical already, events from
 * elsewhere may not be). Text that is no IP is returned unchanged.
 */
export const ipKey = (text: string): string => {
  if (text.indexOf(":") < 0) return text
  const hit = cache.get(text)
  if (hit !== undefined) return hit
  const canonical = canonicalIp(text) ?? text
  if (cache.size >= cacheLimit) cache.clear()
  cache.set(text, canonical)
  return canonical
}
