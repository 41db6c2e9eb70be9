/**
 * Follows a service's log file as `tail -F` does, across rotations (the file renamed away and a new one
 * created, as both core and process-compose rotate), and checks the lines of `benchsvc flood`: `@start <epoch
 * ms>` then `@0000001 ...`, `@0000002 ...`. Every data line is counted and must come in order; other lines (core's
 * `[core]` notes) are skipped. A rotated file is read to its end through the descriptor kept open, so nothing
 * is missed as long as the follower is never more than one rotation behind (it reads far faster than any
 * orchestrator writes; a gap would show as lines out of order).
 */
import * as fs from "node:fs"

const NEWLINE = 0x0a
const AT = 0x40
const ZERO = 0x30
const CHUNK = 4 * 1024 * 1024

/** What the follower has seen so far. */
export interface FollowResult {
  /** Data lines seen. */
  readonly lines: number
  /** Data lines whose number did not follow the previous one (each gap or repeat counts once). */
  readonly outOfOrder: number
  /** Epoch ms the writer printed at its start, once seen. */
  readonly startEpochMs: number | undefined
  /** Epoch ms when the last data line so far was read from the file. */
  readonly lastLineEpochMs: number | undefined
  /** Files read (1 plus the rotations seen). */
  readonly files: number
}

/** A follower of one log file path. */
export class LogFollower {
  private fd: number | undefined
  private ino = 0
  private readonly buffer = Buffer.allocUnsafe(CHUNK)
  private rest: Buffer = Buffer.alloc(0)
  private lines = 0
  private next = 1
  private outOfOrder = 0
  private startEpochMs: number | undefined
  private lastLineEpochMs: number | undefined
  private files = 0

  constructor(private readonly file: string) {}

  /** The figures so far. */
  get result(): FollowResult {
    return {
      lines: this.lines,
      outOfOrder: this.outOfOrder,
      startEpochMs: this.startEpochMs,
      lastLineEpochMs: this.lastLineEpochMs,
      files: this.files
    }
  }

  /** Reads whatever is new, following a rotation; returns the bytes read. */
  poll(): number {
    if (this.fd === undefined && !this.open()) return 0
    let total = this.drain()
    // at the end of the current file: has the path moved on to a new file?
    let current: fs.Stats | undefined
    try {
      current = fs.statSync(this.file)
    } catch {
      return total // renamed away, the new one not created yet
    }
    if (current.ino !== this.ino) {
      total += this.drain() // the writer has moved on: whatever the old file got is in it now
      fs.closeSync(this.fd!)
      this.fd = undefined
      if (this.open()) total += this.drain()
    }
    return total
  }

  /** Closes the file. */
  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }

  private open(): boolean {
    try {
      this.fd = fs.openSync(this.file, "r")
    } catch {
      return false
    }
    this.ino = fs.fstatSync(this.fd).ino
    this.files++
    return true
  }

  private drain(): number {
    let total = 0
    for (;;) {
      const n = fs.readSync(this.fd!, this.buffer, 0, CHUNK, null)
      if (n === 0) return total
      total += n
      this.scan(this.buffer.subarray(0, n))
    }
  }

  private scan(chunk: Buffer): void {
    const data = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk
    let from = 0
    let seenData = false
    for (;;) {
      const end = data.indexOf(NEWLINE, from)
      if (end < 0) break
      if (data[from] === AT) {
        if (data[from + 1] === 0x73 /* s */) {
          this.startEpochMs = Number(data.toString("latin1", from + 7, end))
        } else {
          let n = 0
          for (let i = from + 1; i < from + 8; i++) n = n * 10 + (data[i]! - ZERO)
          this.lines++
          if (n !== this.next) this.outOfOrder++
          this.next = n + 1
          seenData = true
        }
      }
      from = end + 1
    }
    this.rest = Buffer.from(data.subarray(from))
    if (seenData) this.lastLineEpochMs = Date.now()
  }
}
