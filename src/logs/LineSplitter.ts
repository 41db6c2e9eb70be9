/**
 * Splits a byte stream into lines. Pure and synchronous: it is on the hot path of every service's output.
 *
 * - A line ends at `\n`; a `\r` right before it is dropped from the text (CRLF), any other `\r` is kept.
 * - No length limit: a line spread over many chunks is kept whole (its pieces are joined once, at its end).
 * - Bytes are decoded as UTF-8 only per complete line, so a character split across chunks is decoded intact.
 */

const NEWLINE = 0x0a
const CARRIAGE_RETURN = 13

/** What one `push` or `end` yields. */
export interface SplitResult {
  /** The complete lines, without their line terminator. */
  readonly lines: ReadonlyArray<string>
  /**
   * The same lines as bytes, exactly as received, each ending with `\n` (a final line without one gets it added
   * by `end`). Empty when `lines` is. Written to the log file as is, so the file holds the raw output.
   */
  readonly bytes: Buffer
}

const EMPTY: SplitResult = { lines: [], bytes: Buffer.alloc(0) }

const splitText = (bytes: Buffer): Array<string> => {
  const lines = bytes.toString("utf8").split("\n")
  lines.pop()
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line.charCodeAt(line.length - 1) === CARRIAGE_RETURN) lines[i] = line.slice(0, -1)
  }
  return lines
}

/** A line splitter for one stream. Feed it chunks with `push`; call `end` when the stream ends. */
export class LineSplitter {
  private pending: Array<Buffer> = []
  private pendingBytes = 0

  /** Bytes held back as the start of a line not yet ended. */
  get bufferedBytes(): number {
    return this.pendingBytes
  }

  /** Adds a chunk; returns the lines it completes. */
  push(chunk: Buffer): SplitResult {
    const last = chunk.lastIndexOf(NEWLINE)
    if (last === -1) {
      if (chunk.length > 0) {
        this.pending.push(chunk)
        this.pendingBytes += chunk.length
      }
      return EMPTY
    }
    let complete = last === chunk.length - 1 ? chunk : chunk.subarray(0, last + 1)
    if (this.pendingBytes > 0) {
      this.pending.push(complete)
      complete = Buffer.concat(this.pending, this.pendingBytes + complete.length)
      this.pending = []
      this.pendingBytes = 0
    }
    if (last < chunk.length - 1) {
      // Copied: the caller may reuse the chunk's memory, and a small rest must not pin a large chunk.
      const rest = Buffer.from(chunk.subarray(last + 1))
      this.pending.push(rest)
      this.pendingBytes = rest.length
    }
    return { lines: splitText(complete), bytes: complete }
  }

  /** The stream ended: returns its last line if it had no `\n`, and resets the splitter. */
  end(): SplitResult {
    if (this.pendingBytes === 0) return EMPTY
    const bytes = Buffer.concat([...this.pending, Buffer.from("\n")], this.pendingBytes + 1)
    this.pending = []
    this.pendingBytes = 0
    return { lines: splitText(bytes), bytes }
  }
}
