/**
 * Which event ids the server has already written, per origin host, over a bounded window: the
 * last `perHost` ids of each of at most `maxHosts` hosts (the least recently active host is
 * forgotten first). A retransmitted event (same host, same id) inside the window is dropped; an
 * event without an id is never treated as a duplicate. The window is in memory: after a restart
 * it is empty (see the Shipper and DESIGN notes for what that means).
 *
 * Ids are kept as a 52-bit hash → id map (a number-keyed Map is several times cheaper than a
 * string Set at 100k entries); a hash hit counts as a duplicate only when the stored id is equal,
 * so a collision can at worst let a retransmit through, never drop a new event.
 */

/** Two 26-bit FNV-1a style hashes combined into one 52-bit integer (exact in a double). */
const hashId = (id: string): number => {
  let a = 0x811c9dc5
  let b = 0x01000193
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15)
  }
  return ((a >>> 6) * 0x4000000) + (b >>> 6)
}

class HostWindow {
  readonly ids = new Map<number, string>()
  readonly ring: Float64Array
  readonly used: Uint8Array
  next = 0
  constructor(size: number) {
    this.ring = new Float64Array(size)
    this.used = new Uint8Array(size)
  }
  has(id: string): boolean {
    return this.ids.get(hashId(id)) === id
  }
  remove(id: string): void {
    const hash = hashId(id)
    if (this.ids.get(hash) === id) this.ids.delete(hash)
  }
  /** Adds `id`; false when it was already there (one hash lookup for check-and-add). */
  add(id: string): boolean {
    const hash = hashId(id)
    const stored = this.ids.get(hash)
    if (stored === id) return false
    if (stored !== undefined) return true // a collision: keep the older id, let this one through
    const slot = this.next
    if (this.used[slot] === 1) this.ids.delete(this.ring[slot]!)
    this.ring[slot] = hash
    this.used[slot] = 1
    this.next = (slot + 1) % this.ring.length
    this.ids.set(hash, id)
    return true
  }
}

export class DedupWindow {
  readonly #hosts = new Map<string, HostWindow>()
  readonly #perHost: number
  readonly #maxHosts: number
  constructor(perHost = 100_000, maxHosts = 1000) {
    this.#perHost = Math.max(1, perHost)
    this.#maxHosts = Math.max(1, maxHosts)
  }
  has(host: string, id: string): boolean {
    return id !== "" && this.#hosts.get(host)?.has(id) === true
  }
  remove(host: string, id: string): void {
    this.#hosts.get(host)?.remove(id)
  }
  /** Remembers `id` for `host`; false when it was already remembered (a duplicate). */
  add(host: string, id: string): boolean {
    if (id === "") return true
    let window = this.#hosts.get(host)
    if (window === undefined) {
      if (this.#hosts.size >= this.#maxHosts) {
        const oldest = this.#hosts.keys().next().value
        if (oldest !== undefined) this.#hosts.delete(oldest)
      }
      window = new HostWindow(this.#perHost)
      this.#hosts.set(host, window)
    } else if (this.#hosts.size > 1) {
      // keep Map order = recency of activity, for eviction
      this.#hosts.delete(host)
      this.#hosts.set(host, window)
    }
    return window.add(id)
  }
}
