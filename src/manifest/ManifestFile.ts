/**
 * Reading a manifest file safely: only a regular file is read (a FIFO would block the read until a writer
 * comes, /dev/zero never ends), at most `MAX_MANIFEST_BYTES`, and only valid UTF-8. The file is opened
 * without blocking and checked on the opened descriptor, so a file swapped after a check is still caught.
 */
import { Data, Effect } from "effect"
import * as fs from "node:fs"

/** The largest manifest read, in bytes. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** A manifest file that cannot be read as text; `reason` completes "cannot read: ". */
export class ManifestFileError extends Data.TaggedError("ManifestFileError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `${this.file}: cannot read: ${this.reason}`
  }
}

const kindOf = (info: fs.Stats): string =>
  info.isDirectory()
    ? "a directory"
    : info.isFIFO()
      ? "a FIFO (named pipe)"
      : info.isCharacterDevice()
        ? "a character device"
        : info.isBlockDevice()
          ? "a block device"
          : info.isSocket()
            ? "a socket"
            : "not a regular file"

const openReason = (error: NodeJS.ErrnoException): string =>
  error.code === "ELOOP"
    ? "a symbolic link loop"
    : error.code === "ENOENT"
      ? "a symbolic link to a file that does not exist"
      : error.code === "EACCES"
        ? "permission denied"
        : (error.code ?? error.message)

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The offset of the first byte at which `bytes` stops being UTF-8. */
const firstInvalidByte = (bytes: Uint8Array): number => {
  let valid = 0
  let invalid = bytes.length
  while (invalid - valid > 1) {
    const mid = (valid + invalid) >> 1
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, mid), { stream: true })
      valid = mid
    } catch {
      invalid = mid
    }
  }
  // the valid prefix may end inside the bad sequence (cut, so not yet wrong): then its lead byte is the first bad one
  for (let at = valid - 1; at >= Math.max(0, valid - 3); at--) {
    const byte = bytes[at]!
    if (byte < 0x80) break
    if (byte >= 0xc0) return at + (byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2) > valid ? at : valid
  }
  return valid
}

/** The text of `file`, or why it cannot be read. Synchronous: a regular file of a few MiB at most. */
const readText = (file: string): { readonly text: string } | { readonly reason: string } => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY)
  } catch (error) {
    return { reason: openReason(error as NodeJS.ErrnoException) }
  }
  try {
    const info = fs.fstatSync(fd)
    if (!info.isFile()) return { reason: `it is ${kindOf(info)}, not a regular file` }
    if (info.size > MAX_MANIFEST_BYTES) {
      return { reason: `it is ${info.size} bytes; a manifest may have at most ${MAX_MANIFEST_BYTES}` }
    }
    const bytes = Buffer.alloc(info.size)
    let read = 0
    for (let n = -1; n !== 0 && read < info.size; read += n) n = fs.readSync(fd, bytes, read, info.size - read, read)
    try {
      return { text: utf8.decode(bytes.subarray(0, read)) }
    } catch {
      return { reason: `it is not UTF-8 text (an invalid byte at offset ${firstInvalidByte(bytes.subarray(0, read))})` }
    }
  } catch (error) {
    return { reason: openReason(error as NodeJS.ErrnoException) }
  } finally {
    fs.closeSync(fd)
  }
}

/** What a path leads to, following symbolic links. */
export type PathKind =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Directory" }
  | { readonly _tag: "Other" }
  /** A symbolic link that leads nowhere: a loop, or to a missing file; `reason` says which. */
  | { readonly _tag: "BrokenLink"; readonly reason: string }

/** What `file` is, following links; a link that leads nowhere is told apart from nothing at all. */
export const pathKind = (file: string): Effect.Effect<PathKind> =>
  Effect.sync((): PathKind => {
    try {
      return fs.statSync(file).isDirectory() ? { _tag: "Directory" } : { _tag: "Other" }
    } catch (error) {
      try {
        if (fs.lstatSync(file).isSymbolicLink()) {
          return { _tag: "BrokenLink", reason: openReason(error as NodeJS.ErrnoException) }
        }
      } catch {}
      return { _tag: "Missing" }
    }
  })

/** The text of `file` (an absolute path); `shown` is how errors name it. */
export const readManifestText = (file: string, shown: string): Effect.Effect<string, ManifestFileError> =>
  Effect.suspend(() => {
    const result = readText(file)
    return "text" in result
      ? Effect.succeed(result.text)
      : Effect.fail(new ManifestFileError({ file: shown, reason: result.reason }))
  })
