/**
 * An append-only log file with size-based rotation, written in batches.
 *
 * `append` is synchronous and cheap: it queues the bytes. One write is in flight at a time; whatever arrives
 * meanwhile is written with the next one, so a flood of output costs a few large writes, not one per line.
 * Rotation happens only between writes, at a line boundary: `<file>` becomes `<file>.1`, `<file>.1` becomes
 * `<file>.2`, and so on; `<file>.<maxFiles>` is the oldest kept. Reading `<file>.<maxFiles>` ... `<file>.1`,
 * `<file>` in that order gives every kept line in order.
 *
 * Plain Node callbacks on purpose (the hot path); `ServiceLog` wraps it in Effect at the edges.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const NEWLINE = 0x0a

/**
 * Append, create 0600 (logs hold secrets), and never through a symbolic link: a link planted at a log's path
 * would otherwise make the supervisor write (as its user) wherever the link points.
 */
const openFlags = (append: boolean) =>
  fs.constants.O_WRONLY |
  fs.constants.O_CREAT |
  fs.constants.O_NOFOLLOW |
  (append ? fs.constants.O_APPEND : fs.constants.O_TRUNC)
const open = (file: string, append = true) => fs.openSync(file, openFlags(append), 0o600)

/** Options of a log file. */
export interface LogFileOptions {
  /** Absolute path of the current file. */
  readonly file: string
  /** Size in bytes after which the file is rotated. A single line longer than this gets a file of its own. */
  readonly maxBytes: number
  /** Rotated files kept besides the current one (`<file>.1` ... `<file>.<maxFiles>`); 0 keeps none. */
  readonly maxFiles: number
}

/** The writing half of a log file. */
/**
 * Rotation by name: `file.1` .. `file.(maxFiles-1)` move up by one (the oldest beyond `maxFiles` is
 * overwritten) and `file` becomes `file.1`. Nothing happens with `maxFiles` 0. Throws what the renames throw.
 */
export const shiftFiles = (file: string, maxFiles: number): void => {
  if (maxFiles <= 0) return
  for (let i = maxFiles - 1; i >= 1; i--) {
    if (fs.existsSync(`${file}.${i}`)) fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`)
  }
  fs.renameSync(file, `${file}.1`)
}

/** Rotates `file` (see `shiftFiles`) once it is larger than `maxBytes`. False when it did not (or could not). */
export const rotateIfLarger = (file: string, maxBytes: number, maxFiles: number): boolean => {
  try {
    if (fs.statSync(file).size <= maxBytes) return false
    shiftFiles(file, maxFiles)
    return true
  } catch {
    return false
  }
}

export class LogFile {
  private fd: number
  private size: number
  private queue: Array<Buffer> = []
  private queuedBytes = 0
  private writing = false
  private closed = false
  private idleWaiters: Array<() => void> = []
  /** The last write or rotation error since it was last read; the bytes of that write are dropped. */
  lastError: unknown = undefined
  /** Bytes dropped because they could not be written (a full disk, say); writing resumes with the next batch. */
  droppedBytes = 0

  /** Opens (creating directories) or continues the file. Throws on failure. */
  constructor(private readonly options: LogFileOptions) {
    fs.mkdirSync(path.dirname(options.file), { recursive: true })
    this.fd = open(options.file)
    this.size = fs.fstatSync(this.fd).size
  }

  /** Queues complete lines (bytes ending with `\n`). Ignored once closed. */
  append(bytes: Buffer): void {
    if (this.closed || bytes.length === 0) return
    this.queue.push(bytes)
    this.queuedBytes += bytes.length
    if (!this.writing) this.writeNext()
  }

  /** Calls back once everything appended so far is written (or dropped after an error). */
  whenIdle(callback: () => void): void {
    if (!this.writing && this.queue.length === 0) callback()
    else this.idleWaiters.push(callback)
  }

  /** Stops accepting bytes and closes the file once the queue is written. */
  close(callback: () => void): void {
    this.whenIdle(() => {
      if (!this.closed) {
        this.closed = true
        try {
          fs.closeSync(this.fd)
        } catch (error) {
          this.lastError = error
        }
      }
      callback()
    })
  }

  private writeNext(): void {
    if (this.closed) {
      this.queue = []
      this.queuedBytes = 0
    }
    if (this.queue.length === 0) {
      this.writing = false
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const waiter of waiters) waiter()
      return
    }
    this.writing = true
    const data = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queuedBytes)
    this.queue = []
    this.queuedBytes = 0
    this.writeData(data)
  }

  /** Writes `data` (complete lines), rotating at line boundaries as the size limit requires. */
  private writeData(data: Buffer): void {
    if (this.size + data.length <= this.options.maxBytes) {
      this.writeAll(data, () => this.writeNext())
      return
    }
    const room = this.options.maxBytes - this.size
    let cut = room > 0 ? data.lastIndexOf(NEWLINE, room - 1) + 1 : 0
    if (cut === 0 && this.size === 0) {
      // One line longer than the limit: it gets this file whole.
      const end = data.indexOf(NEWLINE)
      cut = end === -1 ? data.length : end + 1
    }
    const write =
      cut === 0 ? (next: () => void) => next() : (next: () => void) => this.writeAll(data.subarray(0, cut), next)
    write(() => {
      if (!this.rotate()) this.droppedBytes += data.length - cut
      else if (cut < data.length) return this.writeData(data.subarray(cut))
      this.writeNext()
    })
  }

  private writeAll(data: Buffer, next: () => void): void {
    fs.write(this.fd, data, 0, data.length, null, (error, written) => {
      if (error) {
        this.lastError = error
        this.droppedBytes += data.length
        return next()
      }
      this.size += written
      if (written < data.length) this.writeAll(data.subarray(written), next)
      else next()
    })
  }

  /** Shifts the files by one and opens a fresh current file. False (and the rest dropped) if that fails. */
  private rotate(): boolean {
    const { file, maxFiles } = this.options
    try {
      fs.closeSync(this.fd)
      shiftFiles(file, maxFiles)
      this.fd = open(file, maxFiles > 0)
      this.size = 0
      return true
    } catch (error) {
      this.lastError = error
      try {
        this.fd = open(file)
        this.size = fs.fstatSync(this.fd).size
      } catch {
        this.closed = true
      }
      return false
    }
  }
}
