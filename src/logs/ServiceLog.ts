/**
 * The log of one service: every line of its stdout and stderr, across restarts of its process, kept in a
 * rotated file and in memory.
 *
 * File format: the raw output, one line per line, exactly as the process wrote it (a final line without `\n`
 * gets one). stdout and stderr share the file, in arrival order, interleaved only at line boundaries. Lines the
 * supervisor adds (`note`) are written as `[core] text`. So `grep` on `.core-stack/logs/<name>.log` sees what
 * the service printed.
 *
 * The hot path (`write`) is plain synchronous JavaScript over Buffers: split into lines, push into a ring buffer,
 * call the listeners, queue the bytes for a batched file write. Effect is used only at the edges.
 */
import { Data, Effect, Stream } from "effect"
import * as Scope from "effect/Scope"
import { LineSplitter, type SplitResult } from "./LineSplitter.js"
import { LogFile } from "./LogFile.js"

/** Which pipe of the process a line came from. */
export type LogStream = "stdout" | "stderr"

/** One line of a service's output. */
export interface LogLine {
  /** 1, 2, 3, ... over the life of the ServiceLog (not reset by restarts). */
  readonly seq: number
  /** When the supervisor received it, epoch milliseconds. */
  readonly time: number
  readonly stream: LogStream
  /** The line without its terminator (`\n` or `\r\n`). */
  readonly text: string
  /** Present (true) on lines the supervisor added itself (state transitions), absent on the service's output. */
  readonly supervisor?: true
}

/** The log file could not be opened. */
export class LogError extends Data.TaggedError("LogError")<{
  readonly file: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message() {
    return `${this.file}: ${this.reason}`
  }
}

/** Why a log file cannot be opened, in words (the system's code kept for searching). */
const openFailure = (cause: unknown): string => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case "ENOTDIR":
    case "EEXIST":
      return `cannot open the log file: a part of its path is a file, not a directory (${code})`
    case "ELOOP":
      return "cannot open the log file: it is a symbolic link, which is never followed (ELOOP)"
    case "EACCES":
    case "EPERM":
      return `cannot open the log file: permission denied (${code})`
    case "ENOSPC":
      return "cannot open the log file: no space left on device (ENOSPC)"
    default:
      return `cannot open the log file: ${cause instanceof Error ? cause.message : String(cause)}`
  }
}

/** The log of one service. Lives as long as the supervisor, not the process. */
export interface ServiceLog {
  readonly name: string
  /** Hot path, synchronous: called from the child's 'data' events. */
  readonly write: (stream: LogStream, chunk: Buffer) => void
  /** The stream ended: flush its partial last line. Call it for each stream when the process's pipes close. */
  readonly end: (stream: LogStream) => void
  /** Adds a line of the supervisor's own (a state transition), marked `supervisor: true` and `[core]` in the file. */
  readonly note: (text: string) => void
  /** The last n lines kept in memory (at most `memoryLines`). */
  readonly tail: (n: number) => Effect.Effect<ReadonlyArray<LogLine>>
  /**
   * The last n lines, then every new line, until the stream is interrupted. Survives restarts of the process
   * and file rotation. A consumer more than 100 000 lines behind loses the oldest of the lines not yet taken.
   */
  readonly follow: (n: number) => Stream.Stream<LogLine>
  /**
   * Registers a synchronous listener for every new line; returns an unsubscribe function.
   * A listener that throws is ignored for that line (it must not break the output path).
   */
  readonly onLine: (listener: (line: LogLine) => void) => () => void
  /** Resolves once everything written so far is on disk (logs a warning if a write failed since last time). */
  readonly flush: Effect.Effect<void>
  /** Bytes that could not be written to the file (a full disk, say); writing resumes when it can. */
  readonly droppedBytes: () => number
}

/** Options of `makeServiceLog`. */
export interface ServiceLogOptions {
  /** The service name. */
  readonly name: string
  /** Path of the log file, normally `.core-stack/logs/<name>.log`; its directory is created. */
  readonly file: string
  /** Rotation size in bytes. Default 10 MiB. */
  readonly maxBytes?: number
  /** Rotated files kept besides the current one (`<file>.1` is the newest). Default 3. */
  readonly maxFiles?: number
  /** Lines kept in memory for `tail` and `follow`. Default 1000. */
  readonly memoryLines?: number
}

/** How far a `follow` consumer may fall behind before its oldest pending lines are dropped. */
const FOLLOW_BUFFER_LINES = 100_000

/**
 * A fixed-size ring of the most recent lines. Its array grows with the lines up to `capacity` rather than being
 * allocated whole: 1000 empty slots were 8 KB per service before it wrote a line (1.6 MB at 200 services).
 */
class Ring {
  private readonly items: Array<LogLine> = []
  private next = 0
  private count = 0
  constructor(private readonly capacity: number) {}
  push(line: LogLine): void {
    if (this.capacity === 0) return
    this.items[this.next] = line
    this.next = (this.next + 1) % this.capacity
    if (this.count < this.capacity) this.count++
  }
  last(n: number): Array<LogLine> {
    const k = Math.max(0, Math.min(Math.floor(n), this.count))
    const out = new Array<LogLine>(k)
    const start = (this.next - k + this.capacity) % Math.max(this.capacity, 1)
    for (let i = 0; i < k; i++) out[i] = this.items[(start + i) % this.capacity]!
    return out
  }
}

/**
 * Opens the log of one service. The file is closed, after a final flush, when the scope closes; lines written
 * after that are still kept in memory and passed to listeners.
 */
export const makeServiceLog = (options: ServiceLogOptions): Effect.Effect<ServiceLog, LogError, Scope.Scope> =>
  Effect.gen(function* () {
    // Scope.addFinalizer rather than acquireRelease: closing needs nothing of the fiber's context, which
    // acquireRelease's finalizer restores first (a FiberRefs diff, ~0.25 ms: 50 ms of a 200-service stack's exit)
    const scope = yield* Effect.scope
    const file = yield* Effect.uninterruptible(
      Effect.tap(
        Effect.try({
          try: () =>
            new LogFile({
              file: options.file,
              maxBytes: options.maxBytes ?? 10 * 1024 * 1024,
              maxFiles: options.maxFiles ?? 3
            }),
          catch: (cause) => new LogError({ file: options.file, reason: openFailure(cause), cause })
        }),
        (file) =>
          Scope.addFinalizer(
            scope,
            Effect.async<void>((resume) => file.close(() => resume(Effect.void)))
          )
      )
    )
    const ring = new Ring(Math.max(0, options.memoryLines ?? 1000))
    const listeners = new Set<(line: LogLine) => void>()
    const splitters: Record<LogStream, LineSplitter> = { stdout: new LineSplitter(), stderr: new LineSplitter() }
    let seq = 0

    const publish = (line: LogLine): void => {
      ring.push(line)
      for (const listener of listeners) {
        try {
          listener(line)
        } catch {
          // A broken listener must not break the output path.
        }
      }
    }

    const accept = (stream: LogStream, result: SplitResult): void => {
      if (result.lines.length === 0) return
      file.append(result.bytes)
      const time = Date.now()
      for (const text of result.lines) publish({ seq: ++seq, time, stream, text })
    }

    const onLine = (listener: (line: LogLine) => void): (() => void) => {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    }

    const flush = Effect.async<void>((resume) => file.whenIdle(() => resume(Effect.void))).pipe(
      Effect.zipRight(
        Effect.suspend(() => {
          const error = file.lastError
          if (error === undefined) return Effect.void
          file.lastError = undefined
          return Effect.logWarning(`log file ${options.file}: a write failed, some lines are only in memory`).pipe(
            Effect.annotateLogs({ service: options.name, error: String(error) })
          )
        })
      )
    )

    const log: ServiceLog = {
      name: options.name,
      droppedBytes: () => file.droppedBytes,
      write: (stream, chunk) => accept(stream, splitters[stream].push(chunk)),
      end: (stream) => accept(stream, splitters[stream].end()),
      note: (text) => {
        const lines = text.split(/\r?\n/)
        file.append(Buffer.from(lines.map((l) => `[core] ${l}\n`).join("")))
        const time = Date.now()
        for (const line of lines) publish({ seq: ++seq, time, stream: "stdout", text: line, supervisor: true })
      },
      tail: (n) => Effect.sync(() => ring.last(n)),
      follow: (n) =>
        Stream.asyncPush<LogLine>(
          (emit) =>
            Effect.acquireRelease(
              Effect.sync(() => {
                const backlog = ring.last(n)
                if (backlog.length > 0) emit.array(backlog)
                return onLine((line) => emit.single(line))
              }),
              (unsubscribe) => Effect.sync(unsubscribe)
            ),
          { bufferSize: FOLLOW_BUFFER_LINES, strategy: "sliding" }
        ),
      onLine,
      flush
    }
    return log
  })
