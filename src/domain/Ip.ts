/**
 * Canonical IP text, so the firewall's addresses and the cluster's match as strings.
 *
 * The kernel logs IPv6 uncompressed (`%pI6`: `2001:0db8:0000:...`), Kubernetes stores it
 * compressed; both become RFC 5952 text here (lowercase, leading zeros dropped, the first longest
 * run of two or more zero groups as `::`). IPv4-mapped addresses use the mixed notation RFC 5952
 * section 5 recommends (`::ffff:1.2.3.4`, as node:net / inet_ntop print them). Pure and
 * allocation-light: the parser calls it twice per IPv6 line.
 */

const hexValue = (code: number): number => {
  if (code >= 48 && code <= 57) return code - 48 // 0-9
  if (code >= 97 && code <= 102) return code - 87 // a-f
  if (code >= 65 && code <= 70) return code - 55 // A-F
  return -1
}

/** Dotted quad at `text[from..]` into two 16-bit groups; false when it is not one. */
const parseEmbeddedIpv4 = (text: string, from: number, groups: Array<number>, at: number): boolean => {
  let octet = 0
  let digits = 0
  let count = 0
  const bytes = [0, 0, 0, 0]
  for (let i = from; i <= text.length; i++) {
    const code = i < text.length ? text.charCodeAt(i) : 46
    if (code === 46) {
      if (digits === 0 || count > 3) return false
      bytes[count++] = octet
      octet = 0
      digits = 0
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && octet === 0) return false // no leading zeros
      octet = octet * 10 + code - 48
      if (octet > 255 || ++digits > 3) return false
    } else return false
  }
  if (count !== 4) return false
  groups[at] = bytes[0]! * 256 + bytes[1]!
  groups[at + 1] = bytes[2]! * 256 + bytes[3]!
  return true
}

/** The eight 16-bit groups of an IPv6 address (any valid text form), or undefined. */
export const parseIpv6 = (text: string): Array<number> | undefined => {
  const length = text.length
  if (length < 2 || length > 45) return undefined
  const groups: Array<number> = []
  let gap = -1 // index in groups where "::" stands
  let i = 0
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined
    gap = 0
    i = 2
    if (i === length) return [0, 0, 0, 0, 0, 0, 0, 0]
  }
  while (i < length) {
    let value = 0
    let digits = 0
    const start = i
    while (i < length) {
      const h = hexValue(text.charCodeAt(i))
      if (h < 0) break
      value = value * 16 + h
      if (++digits > 4) return undefined
      i++
    }
    if (i < length && text.charCodeAt(i) === 46) {
      // trailing dotted IPv4 (e.g. ::ffff:1.2.3.4)
      if (groups.length > 6 || !parseEmbeddedIpv4(text, start, groups, groups.length)) return undefined
      i = length
      break
    }
    if (digits === 0) return undefined
    groups.push(value)
    if (i === length) break
    if (text.charCodeAt(i) !== 58) return undefined
    i++
    if (i < length && text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined
      gap = groups.length
      i++
    } else if (i === length) return undefined // trailing single colon
  }
  if (gap >= 0) {
    if (groups.length > 7) return undefined
    const fill = 8 - groups.length
    groups.splice(gap, 0, ...new Array<number>(fill).fill(0))
  } else if (groups.length !== 8) return undefined
  return groups
}

/**
 * RFC 5952's "::": the first longest run of two or more zero groups, as `start << 4 | length`;
 * start 8 (past the last group) when there is none, as a single zero group is never compressed.
 * (A number, not an object: this is on the parser's path for every IPv6 address.)
 */
const zeroRun = (groups: ReadonlyArray<number>): number => {
  let start = 8
  let length = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > length) {
      start = i
      length = j - i
    }
    i = j
  }
  return (start << 4) | length
}

/** RFC 5952 text of eight 16-bit groups. */
export const formatIpv6 = (groups: ReadonlyArray<number>): string => {
  if (
    groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 &&
    groups[5] === 0xffff
  ) {
    const high = groups[6]!
    const low = groups[7]!
    return `::ffff:${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  }
  const run = zeroRun(groups)
  const bestStart = run >> 4
  const bestLength = run & 15
  let out = ""
  let afterGap = false // `out` ends with the "::" (a group's digits never end in ":")
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += "::"
      i += bestLength - 1
      afterGap = true
      continue
    }
    if (out.length > 0 && !afterGap) out += ":"
    out += groups[i]!.toString(16)
    afterGap = false
  }
  return out
}

/** The kernel's `%pI6` form: exactly eight groups of four hex digits. */
const isKernelIpv6 = (text: string): boolean => {
  if (text.length !== 39) return false
  for (let i = 4; i < 39; i += 5) if (text.charCodeAt(i) !== 58) return false
  return true
}

/** Group values of the kernel form, reused (parsing is synchronous). */
const kernelGroups = [0, 0, 0, 0, 0, 0, 0, 0]

/**
 * RFC 5952 text of the kernel form at `text[at..at+39)`, its groups already in `kernelGroups`. The
 * common case, lowercase hex as `%pI6` prints it, is cut from the text itself (each group without
 * its leading zeros, runs of such groups with their colons in one piece): a few slices instead of
 * a number-to-hex conversion per group.
 */
const formatKernelGroups = (text: string, at: number, upper: boolean): string => {
  const groups = kernelGroups
  // uppercase digits and IPv4-mapped addresses: the general formatter
  if (upper || (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 &&
    groups[5] === 0xffff)) return formatIpv6(groups)
  const run = zeroRun(groups)
  const gapStart = run >> 4
  const gapEnd = gapStart + (run & 15)
  let out = ""
  let runFrom = -1 // the piece of `text` being extended: groups (with their colons) since `runFrom`
  let runTo = -1
  for (let g = 0; g < 8; g++) {
    if (g === gapStart) {
      out = runFrom < 0 ? "::" : `${out}${text.slice(runFrom, runTo)}::`
      runFrom = -1
      g = gapEnd - 1
      continue
    }
    const value = groups[g]!
    const end = at + g * 5 + 4
    const from = end - (value >= 0x1000 ? 4 : value >= 0x100 ? 3 : value >= 0x10 ? 2 : 1)
    if (runFrom >= 0 && from === runTo + 1) runTo = end // no leading zero: the run goes on, colon included
    else {
      if (runFrom >= 0) out = `${out}${text.slice(runFrom, runTo)}:`
      runFrom = from
      runTo = end
    }
  }
  return runFrom < 0 ? out : out + text.slice(runFrom, runTo)
}

const formatKernelIpv6 = (text: string): string | undefined => {
  let upper = false
  for (let g = 0; g < 8; g++) {
    let value = 0
    for (let k = g * 5; k < g * 5 + 4; k++) {
      const code = text.charCodeAt(k)
      const h = hexValue(code)
      if (h < 0) return undefined
      if (code >= 65 && code <= 70) upper = true
      value = value * 16 + h
    }
    kernelGroups[g] = value
  }
  return formatKernelGroups(text, 0, upper)
}

/** Codes of hex digits → 0-15, and 16 more for `A-F` (`%pI6` prints lowercase); -1 for other codes. */
const hexDigits = new Int8Array(256).fill(-1)
for (let c = 48; c <= 57; c++) hexDigits[c] = c - 48
for (let c = 97; c <= 102; c++) hexDigits[c] = c - 87
for (let c = 65; c <= 70; c++) hexDigits[c] = c - 55 + 16

/**
 * The texts last made from the kernel form, by their groups (the text is a function of the groups
 * alone, whatever the case of the digits): a firewall's logs repeat its own few addresses on one
 * side of every packet, and making the text costs more than reading the groups. Direct-mapped,
 * 16 entries; every slot starts as the all-zero address.
 */
const recentSlots = 16
const recentGroups = new Uint16Array(recentSlots * 8)
const recentTexts: Array<string> = Array.from({ length: recentSlots }, () => "::")

/**
 * `canonicalIp` of `text[at..at+39)` when it is the kernel's `%pI6` form, read from `codes` (the
 * same characters as codes, one per index, as the parser holds them); undefined when it is not.
 */
export const canonicalKernelIpv6At = (text: string, codes: Uint8Array, at: number): string | undefined => {
  const groups = kernelGroups
  let digits = 0 // every digit's table entry or-ed: negative for a non-digit, bit 4 for uppercase
  let mix = 0
  for (let g = 0; g < 8; g++) {
    const i = at + g * 5
    if (g < 7 && codes[i + 4] !== 58) return undefined
    const d0 = hexDigits[codes[i]!]!
    const d1 = hexDigits[codes[i + 1]!]!
    const d2 = hexDigits[codes[i + 2]!]!
    const d3 = hexDigits[codes[i + 3]!]!
    digits |= d0 | d1 | d2 | d3
    const value = ((d0 & 15) << 12) | ((d1 & 15) << 8) | ((d2 & 15) << 4) | (d3 & 15)
    groups[g] = value
    mix = Math.imul(mix ^ value, 0x9e3779b1)
  }
  if (digits < 0) return undefined
  const slot = mix >>> 28
  const base = slot * 8
  if (
    recentGroups[base] === groups[0] && recentGroups[base + 1] === groups[1] && recentGroups[base + 2] === groups[2] &&
    recentGroups[base + 3] === groups[3] && recentGroups[base + 4] === groups[4] &&
    recentGroups[base + 5] === groups[5] && recentGroups[base + 6] === groups[6] && recentGroups[base + 7] === groups[7]
  ) return recentTexts[slot]!
  const out = formatKernelGroups(text, at, (digits & 16) !== 0)
  for (let g = 0; g < 8; g++) recentGroups[base + g] = groups[g]!
  recentTexts[slot] = out
  return out
}

/**
 * Canonical text of an IP address: IPv4 as is, IPv6 in RFC 5952 form. Text that is not an IPv6
 * address (IPv4, a name, garbage) comes back unchanged, so callers can apply it blindly.
 */
export const canonicalIp = (text: string): string => {
  if (text.indexOf(":") < 0) return text
  if (isKernelIpv6(text)) return formatKernelIpv6(text) ?? text
  const groups = parseIpv6(text)
  return groups === undefined ? text : formatIpv6(groups)
}
