/**
 * Provisioning: puts every binary the chosen services need into `.dep/NAME`, with a record of where it came
 * from in `.dep/NAME.json`.
 *
 * Sources, tried in order for each binary, each failure's reason kept for the final error:
 * 1. `dep`: `.dep/NAME` already there, its record matching the pinned version (and override, and Go sources);
 * 2. `override`: `CORE_BIN_<NAME>=/path` in the environment, linked as is;
 * 3. `path`: the manifest's `path` command found on PATH (its `version_args` output must show the version), linked;
 * 4. `download`: the release archive for this platform, its sha256 checked before anything is extracted;
 * 5. `build`: `go build` of a module at `v<version>`, or of the Go main in the service folder.
 *
 * Everything lands in a temporary file in `.dep` first and is renamed into place, so `.dep/NAME` is either the
 * old binary or the complete new one. Binaries are provisioned concurrently, Go builds one at a time.
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Data, Effect, Either, Fiber } from "effect"
import type { BinarySpec } from "../manifest/ServiceManifest.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { withDependencies } from "../stack/StackGraph.js"
import { ArchiveProblem, extractMember } from "./Archive.js"
import { type DownloadTimeouts, defaultTimeouts, downloadToFile } from "./Download.js"
import {
  archiveFormat,
  expandTemplate,
  formatBytes,
  overrideVariable,
  type Platform,
  platformKey,
  platformOf,
  templateValues
} from "./Platform.js"
import {
  type Expectation,
  type Provenance,
  parseProvenance,
  provenanceMismatch,
  type SourceKind
} from "./Provenance.js"
import { type BinaryFailure, ProvisionError, type SourceAttempt } from "./ProvisionError.js"
import { lastLines, runTool } from "./RunTool.js"

/** A binary in `.dep`, ready to run. */
export interface Provisioned {
  readonly name: string
  readonly version: string
  /** Absolute path `.dep/NAME` (what `${dep.NAME}` resolves to). */
  readonly path: string
  /** Where it came from originally (a reused binary keeps its recorded source). */
  readonly source: Provenance["source"]
  /** URL, `module@version`, Go main folder, or linked path. */
  readonly origin: string
  /** True when an earlier provisioning was reused without any work. */
  readonly reused: boolean
}

/** What happened, without its text. */
type ProvisionEventBody =
  | { readonly _tag: "Reused"; readonly binary: string; readonly version: string; readonly source: string }
  | { readonly _tag: "SourceFailed"; readonly binary: string; readonly source: SourceKind; readonly reason: string }
  | { readonly _tag: "DownloadStarted"; readonly binary: string; readonly url: string }
  | {
      readonly _tag: "DownloadProgress"
      readonly binary: string
      readonly received: number
      readonly total: number | undefined
    }
  | { readonly _tag: "BuildStarted"; readonly binary: string; readonly description: string }
  | {
      readonly _tag: "BuildProgress"
      readonly binary: string
      readonly description: string
      readonly elapsedMs: number
    }
  | {
      readonly _tag: "Provisioned"
      readonly binary: string
      readonly version: string
      readonly source: SourceKind
      readonly elapsedMs: number
    }

/** Progress of provisioning, for a CLI to print; `message` is a one-line text for people. */
export type ProvisionEvent = ProvisionEventBody & { readonly message: string }

/** Options of `provision`. */
export interface ProvisionOptions {
  /** Called for each progress event (synchronously; keep it cheap). */
  readonly onProgress?: ((event: ProvisionEvent) => void) | undefined
  /** Environment for `CORE_BIN_*`, `PATH` and `go`; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Download timeouts; default 10 s to the response headers, 20 s of silence in the body. */
  readonly timeouts?: Partial<DownloadTimeouts> | undefined
  /** Seconds between build progress events; default 10. */
  readonly buildProgressSeconds?: number | undefined
}

/** A source that did not deliver, with the reason. */
class SourceFailed extends Data.TaggedError("SourceFailed")<{
  readonly reason: string
  /** The source is not configured (not declared, variable not set): nothing was tried. */
  readonly skipped: boolean
}> {}

/** What one provisioning run shares between binaries. */
interface Context {
  readonly depDir: string
  readonly stackDir: string
  readonly env: Readonly<Record<string, string | undefined>>
  readonly platform: Platform | undefined
  readonly timeouts: DownloadTimeouts
  readonly buildLock: Effect.Semaphore
  readonly buildProgressMs: number
  readonly emit: (event: ProvisionEventBody) => void
}

/** A binary to provision, as declared by one or more services. */
interface Wanted {
  readonly name: string
  readonly spec: BinarySpec
  /** Folder of the first service that declares it (for `build.main`). */
  readonly serviceDir: string
  readonly services: ReadonlyArray<string>
}

const fail = (reason: string) => new SourceFailed({ reason, skipped: false })

const skip = (reason: string) => new SourceFailed({ reason, skipped: true })

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const io = <A>(what: string, run: () => Promise<A>): Effect.Effect<A, SourceFailed> =>
  Effect.tryPromise({ try: run, catch: (error) => fail(`${what}: ${message(error)}`) })

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
const tempPath = (ctx: Context, name: string, suffix: string) =>
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
const install = (
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
const installLink = (ctx: Context, wanted: Wanted, executable: string, source: "override" | "path") =>
  Effect.scoped(
    Effect.gen(function* () {
      const temp = yield* tempPath(ctx, wanted.name, "link")
      yield* io("cannot create the link", () => fs.symlink(executable, temp))
      return yield* install(ctx, wanted, temp, source, executable, undefined)
    })
  )

const isExecutableFile = async (file: string): Promise<boolean> => {
  try {
    const stat = await fs.stat(file)
    if (!stat.isFile()) return false
    await fs.access(file, fs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Removes temp files of `name` left in `.dep` by a provisioning process that no longer runs (killed hard). */
const removeStaleTemps = (ctx: Context, name: string) =>
  Effect.promise(async () => {
    const prefix = `.${name}.`
    const entries = await fs.readdir(ctx.depDir).catch(() => [] as Array<string>)
    for (const entry of entries) {
      if (!entry.startsWith(prefix)) continue
      const match = /^(\d+)-[a-z0-9]+\.(tmp|build|download|link)$/.exec(entry.slice(prefix.length))
      if (match && !isAlive(Number(match[1])))
        await fs.rm(path.join(ctx.depDir, entry), { recursive: true, force: true })
    }
  })

// ---------------------------------------------------------------------------------------------
// Go sources of a `build.main`

const goInputsHash = async (dir: string): Promise<string> => {
  const files: Array<string> = []
  const walk = async (current: string) => {
    const entries = await fs.readdir(current, { withFileTypes: true })
    for (const entry of entries) {
      if (entry.name.startsWith(".") || entry.name === "testdata" || entry.name === "node_modules") continue
      const full = path.join(current, entry.name)
      if (entry.isDirectory()) await walk(full)
      else if (
        (entry.name.endsWith(".go") && !entry.name.endsWith("_test.go")) ||
        entry.name === "go.mod" ||
        entry.name === "go.sum"
      )
        files.push(full)
    }
  }
  await walk(dir)
  files.sort()
  const hash = createHash("sha256")
  for (const file of files) {
    hash.update(path.relative(dir, file))
    hash.update("\0")
    hash.update(await fs.readFile(file))
    hash.update("\0")
  }
  return hash.digest("hex")
}

const mainDir = (wanted: Wanted): string | undefined =>
  wanted.spec.build?.main === undefined ? undefined : path.resolve(wanted.serviceDir, wanted.spec.build.main)

// ---------------------------------------------------------------------------------------------
// the sources

const fromDep = (ctx: Context, wanted: Wanted, expected: Expectation) =>
  Effect.gen(function* () {
    const target = path.join(ctx.depDir, wanted.name)
    const text = yield* Effect.promise(() =>
      fs.readFile(path.join(ctx.depDir, `${wanted.name}.json`), "utf8").catch(() => undefined)
    )
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

const fromOverride = (ctx: Context, wanted: Wanted, override: string | undefined) =>
  Effect.gen(function* () {
    const variable = overrideVariable(wanted.name)
    if (override === undefined) return yield* skip(`${variable} is not set`)
    const executable = path.resolve(ctx.stackDir, override)
    if (!(yield* Effect.promise(() => isExecutableFile(executable)))) {
      return yield* fail(`${variable}=${override} is not an executable file`)
    }
    return yield* installLink(ctx, wanted, executable, "override")
  })

const searchPath = async (command: string, pathVariable: string | undefined, depDir: string) => {
  for (const dir of (pathVariable ?? "").split(path.delimiter)) {
    if (dir === "" || path.resolve(dir) === depDir) continue
    const candidate = path.resolve(dir, command)
    if (await isExecutableFile(candidate)) return candidate
  }
  return undefined
}

const fromPath = (ctx: Context, wanted: Wanted) =>
  Effect.gen(function* () {
    const source = wanted.spec.path
    if (source === undefined) return yield* skip("no `path` source in the manifest")
    const command = source.command ?? wanted.name
    const found = command.includes("/")
      ? path.resolve(ctx.stackDir, command)
      : yield* Effect.promise(() => searchPath(command, ctx.env.PATH, ctx.depDir))
    if (found === undefined || !(yield* Effect.promise(() => isExecutableFile(found)))) {
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

const fromDownload = (ctx: Context, wanted: Wanted) =>
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
      const result = yield* Effect.tryPromise({
        try: (signal) =>
          downloadToFile(url, archive, {
            timeouts: ctx.timeouts,
            signal,
            onProgress: (received, total) => {
              const now = Date.now()
              if (now - lastEmit < 1_000 && received !== total) return
              lastEmit = now
              ctx.emit({ _tag: "DownloadProgress", binary: wanted.name, received, total })
            }
          }),
        catch: (error) => fail(`${url}: ${message(error)}`)
      })
      if (result.sha256 !== expected) {
        return yield* fail(`${url}: sha256 mismatch: expected ${expected}, got ${result.sha256}; nothing installed`)
      }
      if (format === "raw") {
        yield* io("cannot move the download", () => fs.rename(archive, binary))
      } else {
        const bytes = yield* io("cannot read the download", () => fs.readFile(archive))
        const member = download.member === undefined ? undefined : expandTemplate(download.member, values)
        const contents = yield* Effect.try({
          try: () => extractMember(bytes, format, wanted.name, member),
          catch: (error) => fail(`${url}: ${error instanceof ArchiveProblem ? error.message : message(error)}`)
        })
        yield* io("cannot write the binary", () => fs.writeFile(binary, contents))
      }
      yield* io("cannot make the binary executable", () => fs.chmod(binary, 0o755))
      return yield* install(ctx, wanted, binary, "download", url, undefined)
    })
  )

const goEnv = (ctx: Context, extra: Readonly<Record<string, string>> | undefined, goflags: string | undefined) => {
  const env: Record<string, string | undefined> = { ...ctx.env, ...extra }
  if (goflags !== undefined) env.GOFLAGS = [env.GOFLAGS, goflags].filter((flag) => flag).join(" ")
  return env
}

const runGo = (args: ReadonlyArray<string>, cwd: string, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function* () {
    const result = yield* runTool("go", args, { cwd, env }).pipe(Effect.mapError((error) => fail(error.message)))
    if (result.code !== 0) {
      const ended = result.code === undefined ? `signal ${result.signal}` : `exit ${result.code}`
      return yield* fail(`go ${args.join(" ")} failed (${ended}):\n${lastLines(result.output, 12)}`)
    }
    return result.output
  })

const withBuildProgress = <A, E, R>(
  ctx: Context,
  wanted: Wanted,
  description: string,
  build: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.gen(function* () {
    const started = Date.now()
    ctx.emit({ _tag: "BuildStarted", binary: wanted.name, description })
    const ticker = yield* Effect.fork(
      Effect.sync(() =>
        ctx.emit({ _tag: "BuildProgress", binary: wanted.name, description, elapsedMs: Date.now() - started })
      ).pipe(Effect.delay(ctx.buildProgressMs), Effect.forever)
    )
    return yield* build.pipe(Effect.ensuring(Fiber.interrupt(ticker)))
  })

const fromBuild = (ctx: Context, wanted: Wanted, inputs: string | undefined) =>
  Effect.scoped(
    Effect.gen(function* () {
      const build = wanted.spec.build
      if (build === undefined) return yield* skip("no `build` source in the manifest")
      if (build.module === undefined && build.main === undefined) return yield* fail("`build` names no module or main")
      const goVersion = yield* runGo(["env", "GOVERSION"], ctx.stackDir, ctx.env).pipe(
        Effect.map((output) => output.trim()),
        Effect.mapError((error) => fail(`go is not usable: ${error.reason}`))
      )
      const binary = yield* tempPath(ctx, wanted.name, "tmp")
      const flags = ["-trimpath", ...(build.flags ?? [])]
      const version = wanted.spec.version
      if (build.main !== undefined) {
        const dir = mainDir(wanted)!
        const description = `building ${wanted.name} ${version} with ${goVersion} from ${path.relative(ctx.stackDir, dir) || "."}`
        yield* withBuildProgress(
          ctx,
          wanted,
          description,
          runGo(["build", "-buildvcs=false", ...flags, "-o", binary, "."], dir, goEnv(ctx, build.env, undefined))
        )
        return yield* install(ctx, wanted, binary, "build", path.relative(ctx.stackDir, dir) || ".", inputs)
      }
      const pkg = build.module!
      const ref = `${pkg}@${version.startsWith("v") ? version : `v${version}`}`
      const work = yield* tempPath(ctx, wanted.name, "build")
      yield* io("cannot create the build folder", () => fs.mkdir(work))
      const env = goEnv(ctx, build.env, "-mod=mod")
      const description = `building ${wanted.name} ${version} with ${goVersion} (${ref})`
      yield* withBuildProgress(
        ctx,
        wanted,
        description,
        Effect.gen(function* () {
          yield* runGo(["mod", "init", "core.provision/build"], work, env)
          yield* runGo(["get", ref], work, env)
          yield* runGo(["build", "-buildvcs=false", ...flags, "-o", binary, pkg], work, env)
        })
      )
      return yield* install(ctx, wanted, binary, "build", ref, undefined)
    })
  )

// ---------------------------------------------------------------------------------------------
// one binary, then the whole request

const provisionOne = (ctx: Context, wanted: Wanted): Effect.Effect<Provisioned, BinaryFailure> =>
  Effect.gen(function* () {
    let started = Date.now()
    /** Restarts the clock when a source really begins (a build after waiting for the build lock). */
    const timed = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        started = Date.now()
        return effect
      })
    yield* removeStaleTemps(ctx, wanted.name)
    const override = ctx.env[overrideVariable(wanted.name)] || undefined
    const dir = mainDir(wanted)
    const inputs =
      dir === undefined || override !== undefined
        ? undefined
        : yield* Effect.promise(() => goInputsHash(dir).catch(() => undefined))
    const expected: Expectation = { version: wanted.spec.version, override, inputs }
    const sources: ReadonlyArray<readonly [SourceKind, Effect.Effect<Provisioned, SourceFailed>]> = [
      ["dep", timed(fromDep(ctx, wanted, expected))],
      ["override", timed(fromOverride(ctx, wanted, override))],
      ["path", timed(fromPath(ctx, wanted))],
      ["download", timed(fromDownload(ctx, wanted))],
      ["build", ctx.buildLock.withPermits(1)(timed(fromBuild(ctx, wanted, inputs)))]
    ]
    const attempts: Array<SourceAttempt> = []
    for (const [source, attempt] of sources) {
      // An override is the user's explicit choice: never fall back to other sources when it is set.
      if (override !== undefined && source !== "dep" && source !== "override") {
        attempts.push({ source, reason: `skipped: ${overrideVariable(wanted.name)} is set` })
        continue
      }
      const result = yield* Effect.either(attempt)
      if (Either.isRight(result)) {
        const provisioned = result.right
        if (provisioned.reused) {
          ctx.emit({
            _tag: "Reused",
            binary: wanted.name,
            version: provisioned.version,
            source: provisioned.source
          })
        } else {
          ctx.emit({
            _tag: "Provisioned",
            binary: wanted.name,
            version: wanted.spec.version,
            source,
            elapsedMs: Date.now() - started
          })
          yield* Effect.logDebug(`provisioned ${wanted.name} ${wanted.spec.version} from ${source}`)
        }
        return provisioned
      }
      attempts.push({ source, reason: result.left.reason })
      if (source !== "dep" && !result.left.skipped)
        ctx.emit({ _tag: "SourceFailed", binary: wanted.name, source, reason: result.left.reason })
    }
    return yield* Effect.fail({
      binary: wanted.name,
      version: wanted.spec.version,
      services: wanted.services,
      attempts
    } satisfies BinaryFailure)
  }).pipe(Effect.annotateLogs({ binary: wanted.name }))

/** The binaries of the chosen services, each once; an error when two services declare one differently. */
const wantedBinaries = (
  stack: StackSpec,
  serviceNames: ReadonlyArray<string>
): Either.Either<ReadonlyArray<Wanted>, string> => {
  const known = new Set(stack.services.map((service) => service.name as string))
  const unknown = serviceNames.filter((name) => !known.has(name))
  if (unknown.length > 0) {
    return Either.left(
      `unknown service${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")} (known: ${[...known].join(", ")})`
    )
  }
  const chosen =
    serviceNames.length === 0
      ? stack.services.filter((service) => !service.disabled).map((service) => service.name as string)
      : withDependencies(stack.services, serviceNames)
  const byName = new Map<string, Wanted>()
  for (const service of stack.services) {
    if (!chosen.includes(service.name)) continue
    for (const [name, spec] of Object.entries(service.binaries)) {
      const existing = byName.get(name)
      if (existing === undefined) {
        byName.set(name, { name, spec, serviceDir: service.dir, services: [service.name] })
        continue
      }
      const same =
        JSON.stringify(existing.spec) === JSON.stringify(spec) &&
        (spec.build?.main === undefined || existing.serviceDir === service.dir)
      if (!same) {
        return Either.left(
          `binary ${name} is declared differently by services ${existing.services.join(", ")} and ${service.name}`
        )
      }
      byName.set(name, { ...existing, services: [...existing.services, service.name] })
    }
  }
  return Either.right([...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1)))
}

/**
 * Provisions the binaries of `serviceNames` and their dependencies (all enabled services when empty) into
 * the stack's `.dep`. Each binary is provisioned once, independent binaries concurrently, Go builds one at a
 * time. Fails with one `ProvisionError` naming every binary that could not be had and why each source failed.
 */
export const provision = Effect.fn("Provisioner.provision")(function* (
  stack: StackSpec,
  serviceNames: ReadonlyArray<string>,
  options: ProvisionOptions = {}
) {
  const wanted = wantedBinaries(stack, serviceNames)
  if (Either.isLeft(wanted)) return yield* Effect.fail(ProvisionError.invalid(wanted.left))
  if (wanted.right.length === 0) return [] as ReadonlyArray<Provisioned>
  yield* Effect.tryPromise({
    try: () => fs.mkdir(stack.depDir, { recursive: true }),
    catch: (error) => ProvisionError.invalid(`cannot create ${stack.depDir}: ${message(error)}`)
  })
  const ctx: Context = {
    depDir: path.resolve(stack.depDir),
    stackDir: stack.dir,
    env: options.env ?? process.env,
    platform: platformOf(process.platform, process.arch),
    timeouts: { ...defaultTimeouts, ...options.timeouts },
    buildLock: yield* Effect.makeSemaphore(1),
    buildProgressMs: (options.buildProgressSeconds ?? 10) * 1_000,
    emit: (event) => options.onProgress?.({ ...event, message: describeEvent(event) })
  }
  const results = yield* Effect.forEach(wanted.right, (one) => Effect.either(provisionOne(ctx, one)), {
    concurrency: "unbounded"
  })
  const failures = results.flatMap((result) => (Either.isLeft(result) ? [result.left] : []))
  if (failures.length > 0) return yield* Effect.fail(ProvisionError.failed(failures))
  return results.flatMap((result) => (Either.isRight(result) ? [result.right] : []))
})

/** The one-line text of a progress event. */
const describeEvent = (event: ProvisionEventBody): string => {
  switch (event._tag) {
    case "Reused":
      return `${event.binary}: ${event.version} already provisioned (${event.source})`
    case "SourceFailed":
      return `${event.binary}: ${event.source} failed: ${lastLines(event.reason, 1)}`
    case "DownloadStarted":
      return `${event.binary}: downloading ${event.url}`
    case "DownloadProgress":
      return `${event.binary}: ${formatBytes(event.received)}${event.total === undefined ? "" : ` of ${formatBytes(event.total)}`}`
    case "BuildStarted":
      return `${event.binary}: ${event.description} ...`
    case "BuildProgress":
      return `${event.binary}: ${event.description} ... ${Math.round(event.elapsedMs / 1000)}s`
    case "Provisioned":
      return `${event.binary}: ${event.version} ready from ${event.source} (${(event.elapsedMs / 1000).toFixed(1)}s)`
  }
}
