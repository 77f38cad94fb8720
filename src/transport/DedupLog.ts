/**
 * The de-duplication window on disk (`DROPTAILER_DEDUP_FILE`), so that a server killed and started
 * again still knows which events it printed.
 *
 * Without it a restarted server begins with an empty window: a batch it printed but whose
 * acknowledgement never reached the client (killed in between, or the kernel's reset of the
 * connection discarded the acknowledgement) is sent again and printed twice. With it, the ids of a
 * batch are appended right after its lines were written to stdout and before the call is
 * acknowledged; a new server reads them back into its window first. What remains is the instant
 * between a completed stdout write and this append, and the lines of a stdout write cut short by
 * the kill: stdout is not transactional, so those can still repeat.
 *
 * Format: one `host<TAB>id` per line, appended with one write(2) per batch (no fsync: a killed
 * process loses nothing the kernel has; a machine crash may, and costs only duplicates). The file
 * is rotated to `<file>.1` once it holds `capacity` lines, so the two files together always hold
 * at least the last `capacity` ids and at most twice that.
 */
import * as Fs from "node:fs"
import type { DedupWindow } from "./DedupWindow.ts"

export class DedupLog {
  readonly path: string
  private readonly capacity: number
  private fd: number
  private lines: number

  private constructor(path: string, capacity: number, fd: number, lines: number) {
    this.path = path
    this.capacity = capacity
    this.fd = fd
    this.lines = lines
  }

  /**
   * Opens (creating) the file, after entering every id of `<file>.1` and `<file>` into `window`, in
   * the order they were written. Throws when the file cannot be opened for appending.
   */
  static open(path: string, capacity: number, window: DedupWindow): DedupLog {
    readInto(`${path}.1`, window)
    const { lines, complete } = readInto(path, window)
    // a line cut short by a kill: cut it off, or the next append would complete it into a wrong id
    if (complete !== undefined) Fs.truncateSync(path, complete)
    const fd = Fs.openSync(path, "a", 0o600)
    return new DedupLog(path, capacity, fd, lines)
  }

  /** Appends the ids of a written batch (hosts[i] goes with ids[i]). */
  append(hosts: ReadonlyArray<string>, ids: ReadonlyArray<string>): void {
    if (ids.length === 0) return
    let text = ""
    for (let i = 0; i < ids.length; i++) {
      const host = hosts[i]!
      const id = ids[i]!
      // a tab or newline would break the line format: such an id stays in memory only
      if (!separators.test(host) && !separators.test(id)) text += `${host}\t${id}\n`
    }
    if (text === "") return
    Fs.writeSync(this.fd, text)
    this.lines += ids.length
    if (this.lines >= this.capacity) this.rotate()
  }

  close(): void {
    Fs.closeSync(this.fd)
  }

  private rotate(): void {
    Fs.closeSync(this.fd)
    Fs.renameSync(this.path, `${this.path}.1`)
    this.fd = Fs.openSync(this.path, "a", 0o600)
    this.lines = 0
  }
}

const separators = /[\t\n]/

/**
 * Enters the ids of one file into the window: its number of complete lines, and the byte length
 * of those lines when something follows the last newline (else undefined).
 */
const readInto = (path: string, window: DedupWindow): { lines: number; complete: number | undefined } => {
  let bytes: Buffer
  try {
    bytes = Fs.readFileSync(path)
  } catch {
    return { lines: 0, complete: undefined }
  }
  const end = bytes.lastIndexOf(10) + 1
  const text = bytes.toString("utf8", 0, end)
  let lines = 0
  let from = 0
  for (let eol = text.indexOf("\n"); eol !== -1; eol = text.indexOf("\n", from)) {
    const tab = text.indexOf("\t", from)
    if (tab !== -1 && tab < eol) window.add(text.slice(from, tab), text.slice(tab + 1, eol))
    lines++
    from = eol + 1
  }
  return { lines, complete: end < bytes.length ? end : undefined }
}
