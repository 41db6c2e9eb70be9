/**
 * The sources that need no compiler, each failing with its reason: `dep` (already provisioned, record
 * matching), `override` (`CORE_BIN_<NAME>`), `path` (a command on PATH, version checked) and `download`.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { executableStatus, findOnPath } from "../manifest/Executable.js"
import { extractMember } from "./Archive.js"
import { binaryPath, hashFile, install, installLink, recordPath, tempPath, untrusted } from "./DepStore.js"
import { downloadToFile } from "./Download.js"
import { archiveFormat, expandTemplate, overrideVariable, platformKey, templateValues } from "./Platform.js"
import { type Expectation, parseProvenance, provenanceMismatch } from "./Provenance.js"
import { type Context, fail, io, type Provisioned, skip, type Wanted } from "./ProvisionContext.js"
import { lastLines, runTool } from "./RunTool.js"

/** Source `dep`: `.dep/NAME` as recorded, when the record matches what is expected now. */
export const fromDep = (ctx: Context, wanted: Wanted, expected: Expectation) =>
  Effect.gen(function* () {
    const target = binaryPath(ctx, wanted.name)
    const recordFile = recordPath(ctx, wanted.name)
    for (const file of [recordFile, target]) {
      const stat = yield* Effect.promise(() => fs.lstat(file).catch(() => undefined))
      const distrust = stat === undefined ? undefined : untrusted(file, stat)
      if (distrust !== undefined) return yield* fail(`${distrust}: not reused`)
    }
    const text = yield* Effect.promise(() => fs.readFile(recordFile, "utf8").catch(() => undefined))
    if (text === undefined) return yield* fail(`no provenance record ${wanted.name}.json`)
    const record = parseProvenance(text)
    if (record === undefined) return yield* fail(`unreadable provenance record ${wanted.name}.json`)
    const mismatch = provenanceMismatch(record, expected)
    if (mismatch !== undefined) return yield* fail(mismatch)
    const stat = yield* Effect.promise(() => fs.stat(target).catch(() => undefined))
    if (stat === undefined || !stat.isFile()) return yield* fail(`${target} is missing`)
    if (stat.size !== record.size || stat.mtimeMs !== record.mtimeMs) {
      const sha256 = yield* io("cannot hash the binary", () => hashFile(target))
      if (sha256 !== record.sha256) return yield* fail(`${target} changed since it was recorded (sha256 differs)`)
    }
    return {
      name: wanted.name,
      version: record.version,
      path: target,
      source: record.source,
      origin: record.origin,
      reused: true
    } satisfies Provisioned
  })

/** Source `override`: a link to the executable `CORE_BIN_<NAME>` names. */
export const fromOverride = (ctx: Context, wanted: Wanted, override: string | undefined) =>
  Effect.gen(function* () {
    const variable = overrideVariable(wanted.name)
    if (override === undefined) return yield* skip(`${variable} is not set`)
    const executable = path.resolve(ctx.stackDir, override)
    if ((yield* executableStatus(executable)) !== "ok") {
      return yield* fail(`${variable}=${override} is not an executable file`)
    }
    return yield* installLink(ctx, wanted, executable, "override")
  })

/** Source `path`: a link to the command found on PATH, its `version_args` output showing the version. */
export const fromPath = (ctx: Context, wanted: Wanted) =>
  Effect.gen(function* () {
    const source = wanted.spec.path
    if (source === undefined) return yield* skip("no `path` source in the manifest")
    const command = source.command ?? wanted.name
    const found = command.includes("/")
      ? path.resolve(ctx.stackDir, command)
      : yield* findOnPath(command, ctx.env.PATH, [ctx.depDir])
    if (found === undefined || (yield* executableStatus(found)) !== "ok") {
      return yield* fail(`${command} not found on PATH`)
    }
    if (source.version_args !== undefined) {
      const result = yield* runTool(found, source.version_args, {
        cwd: ctx.stackDir,
        env: ctx.env,
        timeoutMs: 10_000
      }).pipe(Effect.mapError((error) => fail(error.message)))
      if (!result.output.includes(wanted.spec.version)) {
        const shown = lastLines(result.output, 1) || "nothing"
        return yield* fail(
          `${found} is not version ${wanted.spec.version} (\`${source.version_args.join(" ")}\`: ${shown})`
        )
      }
    }
    return yield* installLink(ctx, wanted, found, "path")
  })

/** Source `download`: the release archive for this platform, its sha256 checked before extracting. */
export const fromDownload = (ctx: Context, wanted: Wanted) =>
  Effect.scoped(
    Effect.gen(function* () {
      const download = wanted.spec.download
      if (download === undefined) return yield* skip("no `download` source in the manifest")
      if (ctx.platform === undefined) {
        return yield* fail(`no release for this platform (${process.platform}/${process.arch})`)
      }
      const key = platformKey(ctx.platform)
      const expected = download.sha256[key]
      if (expected === undefined) return yield* fail(`no sha256 for ${key} in the manifest`)
      const values = templateValues(download, wanted.spec.version, ctx.platform)
      const url = expandTemplate(download.url, values)
      const format = archiveFormat(download, url)
      const archive = yield* tempPath(ctx, wanted.name, "download")
      const binary = yield* tempPath(ctx, wanted.name, "tmp")
      ctx.emit({ _tag: "DownloadStarted", binary: wanted.name, url })
      let lastEmit = 0
      const result = yield* downloadToFile(url, archive, {
        timeouts: ctx.timeouts,
        onProgress: (received, total) => {
          const now = Date.now()
          if (now - lastEmit < 1_000 && received !== total) return
          lastEmit = now
          ctx.emit({ _tag: "DownloadProgress", binary: wanted.name, received, total })
        }
      }).pipe(Effect.mapError((error) => fail(`${url}: ${error.reason}`)))
      if (result.sha256 !== expected) {
        return yield* fail(`${url}: sha256 mismatch: expected ${expected}, got ${result.sha256}; nothing installed`)
      }
      if (format === "raw") {
        yield* io("cannot move the download", () => fs.rename(archive, binary))
      } else {
        const bytes = yield* io("cannot read the download", () => fs.readFile(archive))
        const member = download.member === undefined ? undefined : expandTemplate(download.member, values)
        const contents = yield* extractMember(bytes, format, wanted.name, member).pipe(
          Effect.mapError((error) => fail(`${url}: ${error.reason}`))
        )
        yield* io("cannot write the binary", () => fs.writeFile(binary, contents, { mode: 0o700 }))
      }
      yield* io("cannot make the binary executable", () => fs.chmod(binary, 0o755))
      return yield* install(ctx, wanted, binary, "download", url, undefined)
    })
  )
