/**
 * The process's own stdout and stderr must never end it. The background supervisor writes them to
 * `.core-stack/supervisor.log`: on a full disk every write fails with ENOSPC, Node emits an unhandled `error`,
 * the supervisor dies, and its guardian then kills every service. Here a failed write drops its text and counts
 * it; the failure is noted once, when writing works again ("N bytes of output were dropped"), and writing
 * resumes with the next text.
 *
 * A stdout or stderr that is a file or a device is written synchronously by hand (what Node does for them
 * anyway), so that a write after a failure is tried again; a pipe or a terminal keeps Node's stream, with its
 * errors counted and ignored (a closed pipe stays closed; `whenStdoutClosed` tells a command that only prints).
 */
import * as fs from "node:fs"

/** `fs.writeSync`'s shape: writes `length` bytes of `bytes` from `offset`; returns how many it wrote, or throws. */
export type WriteSync = (fd: number, bytes: Uint8Array, offset: number, length: number) => number

/** Bytes written to a descriptor, counting what failures dropped, and a note of them once writing works again. */
export class ResilientWriter {
  /** Bytes dropped since the process began. */
  droppedBytes = 0
  private droppedSinceNote = 0
  private lastFailure: string | undefined

  constructor(
    private readonly fd: number,
    private readonly writeSync: WriteSync = fs.writeSync
  ) {}

  /** Writes every byte, or drops the rest at the first error. Never throws. */
  write(bytes: Uint8Array): void {
    if (this.droppedSinceNote > 0) {
      const note = Buffer.from(
        `core: ${this.droppedSinceNote} bytes of output were dropped (${this.lastFailure}); writing again\n`
      )
      // a note that cannot be written whole is not counted: it is written again with the next text
      if (this.unwritten(note) > 0) {
        this.drop(bytes.length)
        return
      }
      this.droppedSinceNote = 0
    }
    this.drop(this.unwritten(bytes))
  }

  private drop(count: number) {
    this.droppedBytes += count
    this.droppedSinceNote += count
  }

  /** Writes what it can of `bytes`; returns how many bytes it could not write (0: all of them written). */
  private unwritten(bytes: Uint8Array): number {
    let offset = 0
    try {
      while (offset < bytes.length) offset += this.writeSync(this.fd, bytes, offset, bytes.length - offset)
    } catch (error) {
      const e = error as NodeJS.ErrnoException
      this.lastFailure = e.code === "ENOSPC" ? "no space left on device" : (e.code ?? e.message)
    }
    return bytes.length - offset
  }
}

const writers: Array<ResilientWriter> = []
let streamErrors = 0

/** Bytes of this process's own output dropped so far (stdout and stderr together). */
export const droppedOutputBytes = (): number => writers.reduce((sum, w) => sum + w.droppedBytes, 0) + streamErrors

const isFileOrDevice = (fd: number): boolean => {
  try {
    const info = fs.fstatSync(fd)
    return info.isFile() || info.isCharacterDevice()
  } catch {
    return false
  }
}

const kept = new WeakSet<NodeJS.WriteStream>()

const onStdoutClosed = new Set<() => void>()
let stdoutClosed = false

/**
 * Calls `f` once this process's stdout has been closed by its reader (a pipe to `head` or `grep -m1` that
 * ended: EPIPE), at once if it is already: a command that only prints (`logs --follow`) then has no one left to
 * print to and ends, as `tail -f | head` does. Returns a function that cancels the call.
 */
export const whenStdoutClosed = (f: () => void): (() => void) => {
  if (stdoutClosed) {
    f()
    return () => {}
  }
  onStdoutClosed.add(f)
  return () => onStdoutClosed.delete(f)
}

/** Makes `stream` (process.stdout or process.stderr) survive write errors as described above; once is enough. */
export const keepWriting = (stream: NodeJS.WriteStream): void => {
  if (kept.has(stream)) return
  kept.add(stream)
  const fd = (stream as NodeJS.WriteStream & { fd?: number }).fd
  if (fd !== undefined && !stream.isTTY && isFileOrDevice(fd)) {
    const writer = new ResilientWriter(fd)
    writers.push(writer)
    stream.write = ((chunk: string | Uint8Array, encoding?: unknown, callback?: unknown) => {
      const done = typeof encoding === "function" ? encoding : callback
      writer.write(
        typeof chunk === "string"
          ? Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8")
          : chunk
      )
      if (typeof done === "function") process.nextTick(done as () => void)
      return true
    }) as typeof stream.write
  }
  stream.on("error", (error: NodeJS.ErrnoException) => {
    streamErrors++
    if (stream === process.stdout && error.code === "EPIPE" && !stdoutClosed) {
      stdoutClosed = true
      for (const f of onStdoutClosed) f()
      onStdoutClosed.clear()
    }
  })
}
