/**
 * Loads a stack directory into a `StackSpec`: every `services/<name>/service.json` read, decoded,
 * its placeholders resolved and defaults applied, and the stack checked as a whole.
 *
 * Loading is a list of named steps (like process-compose's loader), `loadSteps`. Every step runs and returns
 * its problems with what it produced; a step skips the services an earlier step found broken. When anything
 * was found, loading fails with one `ManifestError` that lists every problem, one per line, in step order.
 * Resolving one service (`port-overrides`, `placeholders`, `settings`) is pure: see `ServiceResolver`. The
 * check that ports are free (step `ports-free`) is run by `stack up` just before spawning: see `PortCheck`.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect, Either, Schema } from "effect"
import { mergeDotEnv, parseDotEnv } from "./DotEnv.js"
import { type ExecutableStatus, executableStatus, findOnPath } from "./Executable.js"
import { checkCycles, checkDependencies, checkPortClashes, checkRawManifest, problem } from "./StackChecks.js"
import {
  describeJsonError,
  describeParseIssue,
  formatPath,
  loneSurrogates,
  PROTO_KEY_PROBLEM,
  protoKeys,
  ManifestError,
  type Problem
} from "./ManifestError.js"
import { type PathKind, pathKind, readManifestText } from "./ManifestFile.js"
import { ServiceManifest } from "./ServiceManifest.js"
import { type ManifestSource, resolvePorts, resolveService, type StackContext } from "./ServiceResolver.js"
import type { ServiceSpec, StackSpec } from "./ServiceSpec.js"
import { stateDirOf } from "../state/StateDir.js"

/** Options of `loadStack`. */
export interface LoadOptions {
  /** The environment for placeholders, port overrides and PATH; default `process.env`. `.env` is loaded under it. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** `--data PATH`: the data directory (`${data}`); default `CORE_DATA_DIR`, else `<dir>/.data`. Relative to the current directory. */
  readonly dataDir?: string
  /**
   * For the deployment generators, which must not depend on this machine: `.env` is not read, and an
   * `${env.VAR}` without a value stays as written instead of being an error (its value is the platform's).
   */
  readonly portable?: boolean
}

type Env = Readonly<Record<string, string | undefined>>

/** The loading steps, in the order they run; problems are reported in this order. */
export const loadSteps = [
  "dotenv",
  "discover",
  "parse",
  "schema",
  "port-overrides",
  "placeholders",
  "settings",
  "dependencies",
  "cycles",
  "ports",
  "commands"
] as const

/** What a step produced, and the problems it found on the way. */
interface Checked<A> {
  readonly value: A
  readonly problems: ReadonlyArray<Problem>
}

const SERVICE_NAME = /^[a-z][a-z0-9_-]*$/
/** Names of `core`'s own commands, which `core <service> run` cannot take: `core stack run` is not a service's run. */
export const RESERVED_SERVICE_NAMES: ReadonlySet<string> = new Set(["stack", "deploy"])

const errorText = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

// ---------------------------------------------------------------------------------------------
// steps that read files

/** Step `dotenv`: the variables of `<dir>/.env` (none when there is no such file), or the problems found in it. */
const readDotEnv = (dir: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.join(dir, ".env")
    if (!(yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false)))) {
      return Either.right<Record<string, string>>({})
    }
    const text = yield* fs.readFileString(file).pipe(Effect.either)
    if (Either.isLeft(text)) {
      return Either.left([problem("dotenv", ".env", "", `cannot read: ${errorText(text.left)}`)])
    }
    return Either.mapLeft(parseDotEnv(text.right), (problems) =>
      problems.map((p) => problem("dotenv", ".env", `line ${p.line}`, p.message))
    )
  })

/** A service folder holding a service.json. */
type Found = Omit<ManifestSource, "manifest">

/** Step `discover`: the service folders of `services/`, by name. */
const discover = (dir: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const isDirectory = (p: string) =>
      fs.stat(p).pipe(
        Effect.map((info) => info.type === "Directory"),
        Effect.orElseSucceed(() => false)
      )
    const none = (message: string, file = ""): Checked<ReadonlyArray<Found>> => ({
      value: [],
      problems: [problem("discover", file, "", message)]
    })
    if (!(yield* isDirectory(dir))) return none(`stack directory ${dir} does not exist`)
    const servicesDir = path.join(dir, "services")
    if (!(yield* isDirectory(servicesDir))) {
      return none("no services directory (expected services/<name>/service.json)", "services/")
    }
    const found: Array<Found> = []
    const problems: Array<Problem> = []
    const names = (yield* fs.readDirectory(servicesDir).pipe(Effect.orElseSucceed(() => []))).sort()
    for (const name of names) {
      if (name.startsWith(".")) continue
      const serviceDir = path.join(servicesDir, name)
      const manifestPath = path.join(serviceDir, "service.json")
      // a link that leads nowhere is reported, not skipped: it was meant to be a service
      const folder = yield* pathKind(serviceDir)
      if (folder._tag === "BrokenLink") {
        problems.push(problem("discover", `services/${name}`, "", `cannot read: ${folder.reason}`))
        continue
      }
      // anything at service.json, however broken, is read (and refused with its reason) by step parse
      if (folder._tag !== "Directory" || (yield* pathKind(manifestPath))._tag === "Missing") continue
      const file = `services/${name}/service.json`
      if (RESERVED_SERVICE_NAMES.has(name)) {
        problems.push(
          problem(
            "discover",
            file,
            "",
            `folder name "${name}" cannot be a service's: \`core ${name}\` is one of core's commands`
          )
        )
      } else if (SERVICE_NAME.test(name)) found.push({ name, dir: serviceDir, manifestPath, file })
      else {
        problems.push(
          problem(
            "discover",
            file,
            "",
            `folder name "${name}" is not a valid service name (lowercase letters, digits, '-' or '_', starting with a letter)`
          )
        )
      }
    }
    if (found.length === 0 && problems.length === 0) {
      return none("no service found (expected services/<name>/service.json)", "services/")
    }
    return { value: found, problems }
  })

const decodeManifest = Schema.decodeUnknownEither(ServiceManifest, { errors: "all", onExcessProperty: "error" })

/** A service.json that is JSON but fails its schema: its problems, and the JSON for `checkRawManifest`. */
interface Undecoded {
  readonly found: Found
  readonly json: unknown
}

/** Steps `parse` (read, JSON) and `schema` (decode) of one service.json. */
const readManifest = (found: Found, undecoded: Array<Undecoded>) =>
  Effect.gen(function* () {
    const text = yield* readManifestText(found.manifestPath, found.file).pipe(Effect.either)
    if (Either.isLeft(text)) {
      return Either.left([problem("parse", found.file, "", `cannot read: ${text.left.reason}`)])
    }
    let json: unknown
    try {
      json = JSON.parse(text.right)
    } catch (error) {
      return Either.left([problem("parse", found.file, "", describeJsonError(text.right, error))])
    }
    // only a `\uD800`-`\uDFFF` escape can make one: most manifests are spared the walk over every string
    const lone = /\\u[dD][89a-fA-F]/.test(text.right) ? loneSurrogates(json) : []
    // the key may be spelled with escapes (`"\u005f_proto__"`)
    const proto = /__proto__|\\u/.test(text.right) ? protoKeys(json) : []
    if (lone.length > 0 || proto.length > 0) {
      return Either.left([
        ...lone.map(({ path, unit }) =>
          problem(
            "parse",
            found.file,
            formatPath(path),
            `${unit} is half of a surrogate pair without its other half: no UTF-8 text can carry it (a process would get U+FFFD)`
          )
        ),
        ...proto.map((path) => problem("parse", found.file, formatPath(path), PROTO_KEY_PROBLEM))
      ])
    }
    return Either.mapBoth(decodeManifest(json), {
      onLeft: (error) => {
        undecoded.push({ found, json })
        return describeParseIssue(error.issue).map((line) => problem("schema", found.file, line.path, line.message))
      },
      onRight: (manifest): ManifestSource => ({ ...found, manifest })
    })
  })

/**
 * Step `commands`: every enabled service's command exists and can be run (provisioned binaries are not yet),
 * and its working directory, when it exists, is a directory.
 */
const checkCommands = (specs: ReadonlyArray<ServiceSpec>, sources: ReadonlyArray<ManifestSource>, ctx: StackContext) =>
  Effect.gen(function* () {
    const path = yield* Path.Path
    const problems: Array<Problem> = []
    // services often share a command and a working directory: each is looked at once (200 services: 400 stats)
    const kinds = new Map<string, PathKind>()
    const statuses = new Map<string, ExecutableStatus>()
    const found = new Map<string, string | undefined>()
    const bySource = new Map(sources.map((s) => [s.name, s]))
    for (const spec of specs) {
      if (spec.disabled) continue
      const source = bySource.get(spec.name)!
      // a working_dir that does not exist yet may be made before the start (under ${data}, say): checked then
      const workingDir = kinds.get(spec.workingDir) ?? (yield* pathKind(spec.workingDir))
      kinds.set(spec.workingDir, workingDir)
      if (workingDir._tag === "Other" || workingDir._tag === "BrokenLink") {
        const why = workingDir._tag === "Other" ? "is not a directory" : `cannot be used: ${workingDir.reason}`
        problems.push(problem("commands", source.file, "process.compose.working_dir", `${spec.workingDir} ${why}`))
      }
      const raw = source.manifest.process.command
      const shown =
        raw === spec.command ? JSON.stringify(raw) : `${JSON.stringify(spec.command)} (from ${JSON.stringify(raw)})`
      if (spec.command.includes("/")) {
        if (path.dirname(spec.command) === ctx.depDir && ctx.binaries.has(path.basename(spec.command))) continue
        const status = statuses.get(spec.command) ?? (yield* executableStatus(spec.command))
        statuses.set(spec.command, status)
        if (status === "ok") continue
        const why = status === "missing" ? "does not exist" : `is ${status}`
        problems.push(problem("commands", source.file, "process.command", `${shown} ${why}`))
      } else {
        if (!found.has(spec.command)) found.set(spec.command, yield* findOnPath(spec.command, ctx.env["PATH"]))
        if (found.get(spec.command) !== undefined) continue
        problems.push(
          problem(
            "commands",
            source.file,
            "process.command",
            `${shown} is not found on PATH (write a path, or \${dep.NAME} for a provisioned binary)`
          )
        )
      }
    }
    return problems
  })

// ---------------------------------------------------------------------------------------------
// public API

const stepIndex = (step: string): number => {
  const index = (loadSteps as ReadonlyArray<string>).indexOf(step)
  return index < 0 ? loadSteps.length : index
}

/**
 * Loads and validates the stack in `dir`. Fails with one `ManifestError` holding every problem found.
 * Services are sorted by name; disabled ones are included with `disabled: true`.
 */
export const loadStack = Effect.fn("StackLoader.loadStack")(function* (dir: string, options?: LoadOptions) {
  const path = yield* Path.Path
  const root = path.resolve(dir)
  const problems: Array<Problem> = []
  const baseEnv = options?.env ?? process.env
  const portable = options?.portable ?? false

  const dotenv = portable ? Either.right({}) : yield* readDotEnv(root)
  if (Either.isLeft(dotenv)) problems.push(...dotenv.left)
  const env: Env = Either.isRight(dotenv) ? mergeDotEnv(baseEnv, dotenv.right) : baseEnv
  const dataDir = options?.dataDir ?? (env["CORE_DATA_DIR"] === "" ? undefined : env["CORE_DATA_DIR"])
  const layout = {
    dir: root,
    dataDir: dataDir === undefined ? path.join(root, ".data") : path.resolve(dataDir),
    depDir: path.join(root, ".dep"),
    stateDir: stateDirOf(root)
  }

  const found = yield* discover(root)
  problems.push(...found.problems)

  const undecoded: Array<Undecoded> = []
  const read = yield* Effect.forEach(found.value, (f) => readManifest(f, undecoded))
  const sources = read.flatMap((result) => (Either.isRight(result) ? [result.right] : []))
  for (const result of read) if (Either.isLeft(result)) problems.push(...result.left)

  const ports = new Map<string, Record<string, number>>()
  for (const source of sources) {
    const resolved = resolvePorts(source, env)
    ports.set(source.name, resolved.ports)
    problems.push(...resolved.problems)
  }

  const ctx: StackContext = {
    dir: root,
    dataDir: layout.dataDir,
    depDir: layout.depDir,
    env,
    servicePorts: Object.fromEntries(ports),
    binaries: new Set(sources.flatMap((source) => Object.keys(source.manifest.binaries ?? {}))),
    unavailable: new Set(found.value.map((f) => f.name).filter((name) => !ports.has(name))),
    keepUnsetEnv: portable
  }
  const specs: Array<ServiceSpec> = []
  for (const source of sources) {
    const resolved = resolveService(source, ports.get(source.name)!, ctx)
    if (Either.isRight(resolved)) specs.push(resolved.right)
    else problems.push(...resolved.left)
  }

  problems.push(
    ...checkDependencies(
      sources,
      found.value.map((f) => f.name)
    ),
    ...checkCycles(sources),
    ...checkPortClashes(sources, ports),
    ...(yield* checkCommands(specs, sources, ctx)),
    ...undecoded.flatMap((u) =>
      checkRawManifest(
        u.found,
        u.json,
        found.value.map((f) => f.name),
        ctx
      )
    )
  )

  if (problems.length > 0) {
    // a stable sort: within a step, problems keep the order of the services
    return yield* new ManifestError({ problems: problems.sort((a, b) => stepIndex(a.step) - stepIndex(b.step)) })
  }
  const stack: StackSpec = { ...layout, services: specs.sort((a, b) => (a.name < b.name ? -1 : 1)) }
  return stack
})

/**
 * The environment of the stack in `dir`: `env` (default `process.env`) with the variables of `.env`
 * added underneath (a variable already in `env` wins). What the loader resolves `${env.*}` against, and
 * what the services' processes should inherit.
 */
export const loadEnvironment = Effect.fn("StackLoader.loadEnvironment")(function* (
  dir: string,
  env: Env = process.env
) {
  const path = yield* Path.Path
  const result = yield* readDotEnv(path.resolve(dir))
  if (Either.isLeft(result)) return yield* new ManifestError({ problems: result.left })
  return mergeDotEnv(env, result.right)
})
