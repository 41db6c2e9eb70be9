/**
 * Reading one member out of a release archive (tar.gz or zip), in memory.
 *
 * Release archives are tens of MiB at most, so they are read whole. Supported: ustar/GNU/pax tar inside
 * gzip; zip with stored or deflated members (no ZIP64, no encryption).
 *
 * Ours rather than a library, for bundle size: `tar` (86 KB minified) with `yauzl` (25 KB) would add 111 KB to
 * the 1.2 MB CLI bundle that every command parses at start (`fflate`, 33 KB, reads no tar); this is 3.4 KB.
 */
import { Data, Effect } from "effect"
import { gunzipSync, inflateRawSync } from "node:zlib"

/** A regular file found in an archive. */
interface Entry {
  readonly path: string
  readonly read: () => Buffer
}

/** Why a member could not be taken from an archive. */
export class ArchiveError extends Data.TaggedError("ArchiveError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

const broken = (reason: string): never => {
  throw new ArchiveError({ reason })
}

const normalize = (path: string): string => path.replace(/^\.\//, "").replace(/\/+$/, "")

const cString = (block: Buffer, start: number, length: number): string => {
  const slice = block.subarray(start, start + length)
  const end = slice.indexOf(0)
  return slice.subarray(0, end === -1 ? slice.length : end).toString("utf8")
}

const tarNumber = (block: Buffer, start: number, length: number): number => {
  // GNU base-256 for large values: high bit of the first byte set.
  if ((block[start]! & 0x80) !== 0) {
    let value = block[start]! & 0x7f
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i]!
    return value
  }
  const text = cString(block, start, length).trim()
  return text === "" ? 0 : Number.parseInt(text, 8)
}

const paxPath = (data: Buffer): string | undefined => {
  let offset = 0
  let found: string | undefined
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset)
    if (space === -1) break
    const length = Number.parseInt(data.subarray(offset, space).toString("utf8"), 10)
    if (!Number.isFinite(length) || length <= 0) break
    const record = data.subarray(space + 1, offset + length - 1).toString("utf8")
    const equals = record.indexOf("=")
    if (record.slice(0, equals) === "path") found = record.slice(equals + 1)
    offset += length
  }
  return found
}

const tarEntries = (archive: Buffer): ReadonlyArray<Entry> => {
  const tar = gunzipSync(archive)
  const entries: Array<Entry> = []
  let offset = 0
  let longName: string | undefined
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512)
    if (header.every((byte) => byte === 0)) break
    const size = tarNumber(header, 124, 12)
    // a negative or unreadable size would stay on this header, or go back, for ever
    if (!Number.isSafeInteger(size) || size < 0) broken("a tar entry has no valid size")
    const type = String.fromCharCode(header[156]!)
    const dataStart = offset + 512
    const dataEnd = dataStart + size
    if (dataEnd > tar.length) broken("the tar archive is truncated")
    const data = tar.subarray(dataStart, dataEnd)
    offset = dataStart + Math.ceil(size / 512) * 512
    if (type === "L") {
      longName = cString(data, 0, data.length)
      continue
    }
    if (type === "x") {
      longName = paxPath(data) ?? longName
      continue
    }
    if (type === "g") continue
    const prefix = header.subarray(257, 262).toString("latin1") === "ustar" ? cString(header, 345, 155) : ""
    const name = longName ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100))
    longName = undefined
    if (type === "0" || type === "\0" || type === "7") entries.push({ path: normalize(name), read: () => data })
  }
  return entries
}

const zipEntries = (archive: Buffer): ReadonlyArray<Entry> => {
  let eocd = -1
  for (let i = archive.length - 22; i >= Math.max(0, archive.length - 22 - 65535); i--) {
    if (archive.readUInt32LE(i) === 0x06054b50) {
      eocd = i
      break
    }
  }
  if (eocd === -1) broken("not a zip archive (no end of central directory)")
  const count = archive.readUInt16LE(eocd + 10)
  let offset = archive.readUInt32LE(eocd + 16)
  const entries: Array<Entry> = []
  for (let n = 0; n < count; n++) {
    if (archive.readUInt32LE(offset) !== 0x02014b50) broken("corrupt zip central directory")
    const method = archive.readUInt16LE(offset + 10)
    const compressedSize = archive.readUInt32LE(offset + 20)
    const nameLength = archive.readUInt16LE(offset + 28)
    const extraLength = archive.readUInt16LE(offset + 30)
    const commentLength = archive.readUInt16LE(offset + 32)
    const localOffset = archive.readUInt32LE(offset + 42)
    const name = archive.subarray(offset + 46, offset + 46 + nameLength).toString("utf8")
    offset += 46 + nameLength + extraLength + commentLength
    if (name.endsWith("/")) continue
    entries.push({
      path: normalize(name),
      read: () => {
        if (compressedSize === 0xffffffff) broken("ZIP64 archives are not supported")
        if (archive.readUInt32LE(localOffset) !== 0x04034b50) broken("corrupt zip local header")
        const start = localOffset + 30 + archive.readUInt16LE(localOffset + 26) + archive.readUInt16LE(localOffset + 28)
        const data = archive.subarray(start, start + compressedSize)
        if (method === 0) return data
        if (method === 8) return inflateRawSync(data)
        return broken(`zip compression method ${method} is not supported`)
      }
    })
  }
  return entries
}

/**
 * The contents of one member of an archive: the path `member` when given (a leading `./` ignored), else the
 * one regular file whose base name is `binaryName`. Fails with an `ArchiveError` giving a readable reason.
 */
export const extractMember = (
  archive: Buffer,
  format: "tar.gz" | "zip",
  binaryName: string,
  member: string | undefined
): Effect.Effect<Buffer, ArchiveError> =>
  Effect.try({
    try: () => {
      let entries: ReadonlyArray<Entry>
      try {
        entries = format === "zip" ? zipEntries(archive) : tarEntries(archive)
      } catch (error) {
        if (error instanceof ArchiveError) throw error
        return broken(`cannot read the ${format} archive: ${error instanceof Error ? error.message : error}`)
      }
      const wanted = member === undefined ? undefined : normalize(member)
      const matches = entries.filter((entry) =>
        wanted === undefined ? entry.path.split("/").pop() === binaryName : entry.path === wanted
      )
      if (matches.length === 0) {
        const listing = entries
          .slice(0, 8)
          .map((entry) => entry.path)
          .join(", ")
        return broken(
          `no member ${wanted ?? `named ${binaryName}`} in the ${format} archive (it holds: ${listing || "nothing"})`
        )
      }
      if (matches.length > 1) {
        return broken(
          `several members named ${binaryName} (${matches.map((entry) => entry.path).join(", ")}); set download.member`
        )
      }
      return matches[0]!.read()
    },
    catch: (error) =>
      error instanceof ArchiveError
        ? error
        : new ArchiveError({
            reason: `cannot read the ${format} archive: ${error instanceof Error ? error.message : error}`
          })
  })
