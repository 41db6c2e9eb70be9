/**
 * The `.dep` folder: temporary paths that vanish with their scope, binaries moved into place atomically with
 * a provenance record beside them, and leftovers of killed runs cleared.
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { isRunning } from "../state/ProcessIdentity.js"
import type { Provenance } from "./Provenance.js"
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

/** A temporary path in `.dep`, removed when the scope closes (a no-op once it was renamed into place). */
export const tempPath = (ctx: Context, name: string, suffix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => path.join(ctx.depDir, `.${name}.${randomSuffix()}.${suffix}`)),
    (file) => Effect.promise(() => fs.rm(file, { recursive: true, force: true }))
  )

const writeRecord = (ctx: Context, record: Provenance) =>
  Effect.gen(function* () {
    const file = path.join(ctx.depDir, `${record.name}.json`)
    const temp = `${file}.${randomSuffix()}.tmp`
    yield* io("cannot write the provenance record", async () => {
      await fs.writeFile(temp, `${JSON.stringify(record, null, 2)}\n`)
      await fs.rename(temp, file)
    }).pipe(Effect.tapError(() => Effect.promise(() => fs.rm(temp, { force: true }))))
  })

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
    const target = path.join(ctx.depDir, wanted.name)
    const sha256 = yield* io("cannot hash the binary", () => hashFile(temp))
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
