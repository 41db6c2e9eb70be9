/**
 * The `.dep` folder: temporary paths that vanish with their scope, binaries moved into place atomically with
 * a provenance record beside them, and leftovers of killed runs cleared.
 */
import { createHash } from "node:crypto"
import { createReadStream, type Stats } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { isRunning } from "../state/ProcessIdentity.js"
import { declarationHash, type Provenance } from "./Provenance.js"
import { type Context, io, type Wanted } from "./ProvisionContext.js"

/** sha256 of a file's contents (following links), in hex. */
export const hashFile = (file: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const hash = createHash("sha256")
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")))
  })

const randomSuffix = (): string => `${process.pid}-${Math.random().toString(36).slice(2, 10)}`

/** The names a binary's files take in `.dep`: the binary, its provenance record, a temporary file. */
const fileNames = {
  binary: (name: string) => name,
  record: (name: string) => `${name}.json`,
  temp: (name: string, suffix: string) => `.${name}.${randomSuffix()}.${suffix}`
}

/**
 * Why binary `name` cannot have its files in `.dep`, if it cannot (`../x` resolves elsewhere). The manifest's
 * Schema refuses such names at load; `provision` checks again, once per binary, before it creates anything, so
 * the paths below are plain joins.
 */
export const outsideDep = (depDir: string, name: string): string | undefined => {
  for (const file of [fileNames.binary(name), fileNames.record(name), fileNames.temp(name, "tmp")]) {
    const resolved = path.resolve(depDir, file)
    if (!resolved.startsWith(depDir + path.sep))
      return `binary name ${JSON.stringify(name)} is not a file name in .dep: ${JSON.stringify(file)} resolves to ${resolved}, outside ${depDir}`
  }
  return undefined
}

/** `.dep/NAME`. */
export const binaryPath = (ctx: Context, name: string): string => path.join(ctx.depDir, fileNames.binary(name))

/** `.dep/NAME.json`. */
export const recordPath = (ctx: Context, name: string): string => path.join(ctx.depDir, fileNames.record(name))

/** A temporary path in `.dep`, removed when the scope closes (a no-op once it was renamed into place). */
export const tempPath = (ctx: Context, name: string, suffix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => path.join(ctx.depDir, fileNames.temp(name, suffix))),
    (file) => Effect.promise(() => fs.rm(file, { recursive: true, force: true }))
  )

/**
 * Why a file or folder of `.dep` cannot be trusted, if it cannot: another user owns it, or others may write to
 * it (and so may have replaced what it holds). Root may own it: an image provisions `.dep` as root and runs as
 * an unprivileged user. A symbolic link is judged by its owner alone (its own mode means nothing); pass what
 * `lstat` returned for it.
 */
export const untrusted = (file: string, stat: Stats): string | undefined => {
  const user = process.geteuid?.()
  if (user !== undefined && stat.uid !== user && stat.uid !== 0) {
    return `${file} is owned by another user (uid ${stat.uid}; only this user, uid ${user}, or root may own it)`
  }
  if (!stat.isSymbolicLink() && (stat.mode & 0o022) !== 0) {
    return `${file} is writable by other users (mode ${(stat.mode & 0o7777).toString(8).padStart(4, "0")})`
  }
  return undefined
}

const writeRecord = (ctx: Context, record: Provenance) =>
  Effect.scoped(
    Effect.gen(function* () {
      const file = recordPath(ctx, record.name)
      const temp = yield* tempPath(ctx, record.name, "tmp")
      yield* io("cannot write the provenance record", async () => {
        await fs.writeFile(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600, flag: "wx" })
        await fs.chmod(temp, 0o644)
        await fs.rename(temp, file)
      })
    })
  )

/** Moves a finished temp file (or link) into `.dep/NAME` and records where it came from. */
export const install = (
  ctx: Context,
  wanted: Wanted,
  temp: string,
  source: Provenance["source"],
  origin: string,
  inputs: string | undefined
) =>
  Effect.gen(function* () {
    const target = binaryPath(ctx, wanted.name)
    const sha256 = yield* io("cannot hash the binary", () => hashFile(temp))
    const made = yield* io("cannot stat the binary", () => fs.lstat(temp))
    if (!made.isSymbolicLink() && (made.mode & 0o022) !== 0) {
      yield* io("cannot make the binary read-only for other users", () => fs.chmod(temp, made.mode & 0o7755))
    }
    yield* io(`cannot move the binary into ${target}`, () => fs.rename(temp, target))
    const stat = yield* io("cannot stat the binary", () => fs.stat(target))
    yield* writeRecord(ctx, {
      name: wanted.name,
      version: wanted.spec.version,
      source,
      origin,
      sha256,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      ...(inputs === undefined ? {} : { inputs }),
      declared: declarationHash(wanted.spec),
      time: new Date().toISOString()
    })
    return { name: wanted.name, version: wanted.spec.version, path: target, source, origin, reused: false }
  })

/** Links `.dep/NAME` to an existing executable (override or PATH). */
export const installLink = (ctx: Context, wanted: Wanted, executable: string, source: "override" | "path") =>
  Effect.scoped(
    Effect.gen(function* () {
      const temp = yield* tempPath(ctx, wanted.name, "link")
      yield* io("cannot create the link", () => fs.symlink(executable, temp))
      return yield* install(ctx, wanted, temp, source, executable, undefined)
    })
  )

/** Removes temp files of `name` left in `.dep` by a provisioning process that no longer runs (killed hard). */
export const removeStaleTemps = (ctx: Context, name: string) =>
  Effect.promise(async () => {
    const prefix = `.${name}.`
    const entries = await fs.readdir(ctx.depDir).catch(() => [] as Array<string>)
    for (const entry of entries) {
      if (!entry.startsWith(prefix)) continue
      const match = /^(\d+)-[a-z0-9]+\.(tmp|build|download|link)$/.exec(entry.slice(prefix.length))
      if (match && !isRunning({ pid: Number(match[1]), startTime: null }))
        await fs.rm(path.join(ctx.depDir, entry), { recursive: true, force: true })
    }
  })
