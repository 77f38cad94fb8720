/**
 * Batches that grow with the load, without a timer.
 *
 * The reader adds every chunk of journal entries as it comes to the *open* batch. A delivery slot
 * that frees up takes the open batch whole, however small, and parses it (classify + parse: the
 * events live only from there to their acknowledgement, so few survive a scavenge), as long as
 * fewer than `eager` batches are outstanding (taken and not yet `settle`d): at low load each read
 * goes out at once (no added latency). While the slots are busy (or `eager` batches are
 * outstanding), what is read meanwhile keeps going into the open batch, so the next batch is
 * everything read since the previous one — up to `size` entries: a batch that reaches `size` is
 * closed and goes out as soon as a slot frees, and the reader waits until it is taken
 * (backpressure: journalctl blocks on its stdout). So fewer than `size` entries plus the last
 * chunk read are held here besides the batches in flight.
 *
 * Plain mutable state and at most one waiting reader and one waiting taker (both on the one JS
 * thread): no queue, fiber or timer per batch (Stream.groupedWithin's made the heap grow, see
 * ClientPipeline.ts).
 */
import { Cause, Effect, type Exit } from "effect"
import { type Prefixes, parseLine } from "../domain/Parser.ts"
import type { Position } from "../journal/CheckpointStore.ts"
import { type Cursor, entryId, type JournalEntry } from "../journal/JournalEntry.ts"
import type { OutgoingEvent } from "./EventSink.ts"

/**
 * Journal entries after classify + parse, ready to deliver: the events, what to count and log for
 * the others, and the position of the last entry (where the checkpoint moves once delivered).
 * Built in one pass per chunk, with no object per entry besides its event.
 */
export interface Batch {
  readonly events: Array<OutgoingEvent>
  /** Journal entries in the batch (events, skipped and malformed). */
  entries: number
  drops: number
  /** Malformed lines, in journal order (rare: allocated on the first). */
  malformed: Array<{ readonly reason: string; readonly cursor: Cursor }> | undefined
  /** The position of the last entry. */
  last: Position | undefined
}

const emptyBatch = (): Batch => ({ events: [], entries: 0, drops: 0, malformed: undefined, last: undefined })

/** Whether the message's prefix (one of `prefixes`) is followed right away by its first `IN=`. */
const prefixEndsAtIn = (message: string, prefixes: ReadonlyArray<string>): boolean => {
  const at = message.indexOf("IN=")
  if (at <= 0) return false
  for (let i = 0; i < prefixes.length; i++) {
    const prefix = prefixes[i]!
    if (prefix.length === at && message.startsWith(prefix)) return true
  }
  return false
}

/** Classifies + parses `entries` into a batch (when a slot takes them). */
const parseBatch = (entries: ReadonlyArray<JournalEntry>, prefixes: Prefixes): Batch => {
  const batch = emptyBatch()
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    const result = parseLine(entry.message, prefixes, { timestamp: entry.realtime, host: entry.hostname })
    switch (result._tag) {
      case "Event":
        batch.events.push({
          id: entryId(entry.cursor),
          message: entry.message,
          event: result.event,
          fieldsFromMessage: prefixEndsAtIn(entry.message, result.event.action === "drop" ? prefixes.drop : prefixes.accept)
        })
        if (result.event.action === "drop") batch.drops++
        break
      case "Malformed":
        ;(batch.malformed ??= []).push({ reason: result.reason, cursor: entry.cursor })
        break
      case "Skipped":
        break
    }
  }
  const last = entries[entries.length - 1]!
  batch.entries = entries.length
  batch.last = { cursor: last.cursor, realtime: last.realtime }
  return batch
}

type Resume<A, E = never> = (effect: Effect.Effect<A, E>) => void

/**
 * The batches between the reader and the delivery slots. `add`/`takeNow` are the synchronous core
 * (tests drive them directly); `offer`/`take`/`end` are what the reader and the slots use.
 */
export class Batcher {
  /** Entries read since the last take, not parsed yet (parsed when taken: short-lived events). */
  private open: Array<JournalEntry> = []
  /** Runs of `size` entries, oldest first (they wait for a slot, and the reader waits for them). */
  private readonly closed: Array<Array<JournalEntry>> = []
  private taker: Resume<readonly [Batch], Cause.Done> | undefined
  private reader: Resume<void> | undefined
  private ended: Exit.Exit<void> | undefined
  /** Batches taken and not yet `settle`d. */
  private outstanding = 0

  readonly prefixes: Prefixes
  /** Most entries per batch. */
  readonly size: number
  /** A batch that is not full is taken only while fewer than this many are outstanding. */
  readonly eager: number

  constructor(prefixes: Prefixes, size: number, eager = Number.MAX_SAFE_INTEGER) {
    this.prefixes = prefixes
    this.size = size
    this.eager = eager
  }

  /** Adds `entries` to the open batch, closing it whenever it reaches `size` entries. */
  add(entries: ReadonlyArray<JournalEntry>): void {
    const size = this.size
    let open = this.open
    for (let i = 0; i < entries.length; i++) {
      open.push(entries[i]!)
      if (open.length >= size) {
        this.closed.push(open)
        open = []
      }
    }
    this.open = open
  }

  /** Whether the reader must wait before adding more: a batch of `size` entries waits for a slot. */
  get full(): boolean {
    return this.closed.length > 0
  }

  /** Entries held (closed and open batches). */
  get held(): number {
    let n = this.open.length
    for (const entries of this.closed) n += entries.length
    return n
  }

  /**
   * The next batch: the oldest closed one, else everything read since the last take (while fewer
   * than `eager` are outstanding, or once the reader ended); undefined when there is none.
   */
  takeNow(): Batch | undefined {
    let entries: Array<JournalEntry> | undefined
    if (this.closed.length > 0) entries = this.closed.shift()!
    else if (this.open.length > 0 && (this.outstanding < this.eager || this.ended !== undefined)) {
      entries = this.open
      this.open = []
    }
    const batch = entries === undefined ? undefined : parseBatch(entries, this.prefixes)
    if (batch !== undefined) this.outstanding++
    if (this.closed.length === 0 && this.reader !== undefined) {
      const reader = this.reader
      this.reader = undefined
      reader(Effect.void)
    }
    return batch
  }

  /** Hands a batch to the waiting taker, if there is one and a batch. */
  private wake(): void {
    if (this.taker === undefined) return
    const batch = this.takeNow()
    if (batch === undefined) return
    const taker = this.taker
    this.taker = undefined
    taker(Effect.succeed([batch]))
  }

  /** A batch taken earlier was delivered and checkpointed: one fewer outstanding. */
  settle(): void {
    this.outstanding--
    this.wake()
  }

  /** The reader's step: adds `entries`, hands a batch to a waiting slot, and waits while a full batch is not taken. */
  readonly offer = (entries: ReadonlyArray<JournalEntry>): Effect.Effect<void> => {
    this.add(entries)
    this.wake()
    if (!this.full) return Effect.void
    return Effect.callback<void>((resume) => {
      this.reader = resume
      return Effect.sync(() => {
        if (this.reader === resume) this.reader = undefined
      })
    })
  }

  /**
   * A slot's pull: the next batch, waiting for entries when there are none; `Cause.Done` once the
   * reader ended and everything was taken (a defect of the reader is passed on).
   */
  readonly take: Effect.Effect<readonly [Batch], Cause.Done> = Effect.suspend(() => {
    const batch = this.takeNow()
    if (batch !== undefined) return Effect.succeed([batch] as const)
    if (this.ended !== undefined) return this.ended._tag === "Success" ? Cause.done() : Effect.failCause(this.ended.cause)
    return Effect.callback<readonly [Batch], Cause.Done>((resume) => {
      this.taker = resume
      return Effect.sync(() => {
        if (this.taker === resume) this.taker = undefined
      })
    })
  })

  /** The reader stopped (its exit): what is held is still taken, then `take` ends. */
  end(exit: Exit.Exit<void>): void {
    this.ended ??= exit
    if (this.taker !== undefined) {
      const taker = this.taker
      this.taker = undefined
      taker(this.take)
    }
  }
}
