/**
 * Loads a stack directory into a `StackSpec`: every `services/<name>/service.json` read, decoded,
 * its placeholders resolved and defaults applied, and the stack checked as a whole.
 *
 * Loading is a list of named steps (like process-compose's loader). Every step runs and records its
 * problems; a step skips the services an earlier step already found broken. When anything was found,
 * loading fails with one `ManifestError` that lists every problem, one per line.
 *
 * Steps, in order: `dotenv`, `discover`, `parse`, `schema`, `port-overrides`, `placeholders`, `settings`,
 * `dependencies`, `cycles`, `ports`, `commands`. `checkPortsFree` (step `ports-free`) is separate: it is
 * run by `stack up` just before spawning.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect, Either, Option, Schema } from "effect"
import * as net from "node:net"
import * as os from "node:os"
import { findCycle } from "../stack/StackGraph.js"
import { mergeDotEnv, parseDotEnv } from "./DotEnv.js"
import { describeJsonError, describeParseIssue, formatPath, ManifestError, type Problem } from "./ManifestError.js"
import { bindAddress, type PlaceholderContext, resolvePlaceholders } from "./Placeholders.js"
import { type Probe, ServiceManifest, type ServiceName } from "./ServiceManifest.js"
import { Defaults, type ProbeCheck, type ProbeSpec, type ServiceSpec, type StackSpec } from "./ServiceSpec.js"

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

// ---------------------------------------------------------------------------------------------
// pure helpers

const SERVICE_NAME = /^[a-z][a-z0-9_-]*$/

/** The environment variable that overrides a port: `CORE_PORT_<SERVICE>_<PORT>`, uppercased, other characters as `_`. */
export const portOverrideVariable = (service: string, port: string): string =>
  `CORE_PORT_${service}_${port}`.toUpperCase().replace(/[^A-Z0-9]/g, "_")

/** A port number from text, or undefined when the text is not an integer in 1..65535. */
export const parsePort = (text: string): number | undefined => {
  if (!/^\d{1,5}$/.test(text.trim())) return undefined
  const port = Number(text.trim())
  return port >= 1 && port <= 65535 ? port : undefined
}

/** A signal by number (`15`) or name (`SIGTERM`, `TERM`, `term`) as a Node signal name, or undefined if unknown. */
export const signalName = (ref: number | string): NodeJS.Signals | undefined => {
  const table = os.constants.signals as Readonly<Record<string, number>>
  const text = typeof ref === "number" ? String(ref) : ref.trim()
  const asNumber = /^\d+$/.test(text) ? Number(text) : undefined
  if (asNumber !== undefined) return Object.keys(table).find((name) => table[name] === asNumber) as NodeJS.Signals
  const upper = text.toUpperCase()
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`
  return name in table ? (name as NodeJS.Signals) : undefined
}

const seconds = (value: number | undefined, fallbackMs: number): number =>
  value === undefined ? fallbackMs : Math.round(value * 1000)

/** A key as a JSON path suffix: `.name`, or `["odd.name"]`. */
const keyPath = (key: string): string => formatPath(["_", key]).slice(1)

const list = (names: Iterable<string>): string => {
  const sorted = [...names].sort()
  return sorted.length === 0 ? "none" : sorted.join(", ")
}

// ---------------------------------------------------------------------------------------------
// state shared by the steps

interface ResolvedProbe {
  readonly raw: Probe
  readonly path: string
  readonly httpGet?: {
    host: string
    scheme: "http" | "https"
    path: string
    port: number
    headers: Record<string, string>
  }
  readonly exec?: { command: string; workingDir: string | undefined }
  readonly tcp?: { host: string; port: number }
}

interface Resolved {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly workingDir: string | undefined
  readonly readiness: ResolvedProbe | undefined
  readonly liveness: ResolvedProbe | undefined
  readonly shutdownCommand: string | undefined
}

interface Entry {
  readonly name: string
  /** Absolute service folder. */
  readonly dir: string
  /** Absolute path of service.json. */
  readonly manifestPath: string
  /** service.json relative to the stack directory. */
  readonly file: string
  json?: unknown
  manifest?: ServiceManifest
  ports?: Record<string, number>
  resolved?: Resolved
  spec?: ServiceSpec
}

interface LoadState {
  readonly dir: string
  readonly dataDir: string
  readonly depDir: string
  readonly stateDir: string
  env: Readonly<Record<string, string | undefined>>
  readonly portable: boolean
  entries: Array<Entry>
  readonly problems: Array<Problem>
}

/** One named step of loading; records problems in the state instead of failing. */
interface Step {
  readonly name: string
  readonly run: (state: LoadState) => Effect.Effect<void, never, FileSystem.FileSystem | Path.Path>
}

const problem = (step: string, file: string, path: string, message: string): Problem => ({ step, file, path, message })

const errorText = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

// ---------------------------------------------------------------------------------------------
// steps

/** The variables of `<dir>/.env` (none when there is no such file), or the problems found in it. */
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

const dotenvStep: Step = {
  name: "dotenv",
  run: (state) =>
    Effect.gen(function* () {
      if (state.portable) return
      const result = yield* readDotEnv(state.dir)
      if (Either.isLeft(result)) state.problems.push(...result.left)
      else state.env = mergeDotEnv(state.env, result.right)
    })
}

const discoverStep: Step = {
  name: "discover",
  run: (state) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const isDirectory = (p: string) =>
        fs.stat(p).pipe(
          Effect.map((info) => info.type === "Directory"),
          Effect.orElseSucceed(() => false)
        )
      if (!(yield* isDirectory(state.dir))) {
        state.problems.push(problem("discover", "", "", `stack directory ${state.dir} does not exist`))
        return
      }
      const servicesDir = path.join(state.dir, "services")
      if (!(yield* isDirectory(servicesDir))) {
        state.problems.push(
          problem("discover", "services/", "", "no services directory (expected services/<name>/service.json)")
        )
        return
      }
      const names = (yield* fs.readDirectory(servicesDir).pipe(Effect.orElseSucceed(() => []))).sort()
      for (const name of names) {
        if (name.startsWith(".")) continue
        const dir = path.join(servicesDir, name)
        const manifestPath = path.join(dir, "service.json")
        if (!(yield* isDirectory(dir)) || !(yield* fs.exists(manifestPath).pipe(Effect.orElseSucceed(() => false)))) {
          continue
        }
        const file = `services/${name}/service.json`
        if (!SERVICE_NAME.test(name)) {
          state.problems.push(
            problem(
              "discover",
              file,
              "",
              `folder name "${name}" is not a valid service name (lowercase letters, digits, '-' or '_', starting with a letter)`
            )
          )
          continue
        }
        state.entries.push({ name, dir, manifestPath, file })
      }
      if (state.entries.length === 0 && !state.problems.some((p) => p.step === "discover")) {
        state.problems.push(
          problem("discover", "services/", "", "no service found (expected services/<name>/service.json)")
        )
      }
    })
}

const parseStep: Step = {
  name: "parse",
  run: (state) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      for (const entry of state.entries) {
        const text = yield* fs.readFileString(entry.manifestPath).pipe(Effect.either)
        if (Either.isLeft(text)) {
          state.problems.push(problem("parse", entry.file, "", `cannot read: ${errorText(text.left)}`))
          continue
        }
        try {
          entry.json = JSON.parse(text.right)
        } catch (error) {
          state.problems.push(problem("parse", entry.file, "", describeJsonError(text.right, error)))
        }
      }
    })
}

const decodeManifest = Schema.decodeUnknownEither(ServiceManifest, { errors: "all", onExcessProperty: "error" })

const schemaStep: Step = {
  name: "schema",
  run: (state) =>
    Effect.sync(() => {
      for (const entry of state.entries) {
        if (entry.json === undefined) continue
        const decoded = decodeManifest(entry.json)
        if (Either.isRight(decoded)) entry.manifest = decoded.right
        else {
          for (const line of describeParseIssue(decoded.left.issue)) {
            state.problems.push(problem("schema", entry.file, line.path, line.message))
          }
        }
      }
    })
}

const portOverridesStep: Step = {
  name: "port-overrides",
  run: (state) =>
    Effect.sync(() => {
      for (const entry of state.entries) {
        if (entry.manifest === undefined) continue
        const ports: Record<string, number> = {}
        for (const [portName, port] of Object.entries(entry.manifest.ports ?? {})) {
          const variable = portOverrideVariable(entry.name, portName)
          const override = state.env[variable]
          if (override === undefined || override === "") {
            ports[portName] = port
            continue
          }
          const parsed = parsePort(override)
          if (parsed === undefined) {
            state.problems.push(
              problem(
                "port-overrides",
                entry.file,
                formatPath(["ports", portName]),
                `${variable}=${JSON.stringify(override)} in the environment: expected a port number between 1 and 65535`
              )
            )
            ports[portName] = port
          } else ports[portName] = parsed
        }
        entry.ports = ports
      }
    })
}

const placeholdersStep: Step = {
  name: "placeholders",
  run: (state) =>
    Effect.gen(function* () {
      const path = yield* Path.Path
      const binaries = new Set(state.entries.flatMap((entry) => Object.keys(entry.manifest?.binaries ?? {})))
      const servicePorts: Record<string, Record<string, number>> = {}
      const unavailable = new Set<string>()
      for (const entry of state.entries) {
        if (entry.ports !== undefined) servicePorts[entry.name] = entry.ports
        else unavailable.add(entry.name)
      }
      for (const entry of state.entries) {
        const manifest = entry.manifest
        if (manifest === undefined || entry.ports === undefined) continue
        const ctx: PlaceholderContext = {
          dataDir: state.dataDir,
          depDir: state.depDir,
          serviceDir: entry.dir,
          env: state.env,
          ports: entry.ports,
          servicePorts,
          binaries,
          unavailable,
          bind: bindAddress(state.env, manifest.deploy?.public !== undefined),
          keepUnsetEnv: state.portable
        }
        let failed = false
        const resolve = (text: string, field: string): string => {
          const result = resolvePlaceholders(text, ctx)
          if (Either.isRight(result)) return result.right
          failed = true
          for (const message of result.left) state.problems.push(problem("placeholders", entry.file, field, message))
          return text
        }
        const resolvePort = (ref: number | string, field: string): number => {
          if (typeof ref === "number") return ref
          const result = resolvePlaceholders(ref, ctx)
          if (Either.isLeft(result)) {
            resolve(ref, field)
            return 0
          }
          const port = parsePort(result.right)
          if (port !== undefined) return port
          failed = true
          const from = result.right === ref ? "" : ` (from ${JSON.stringify(ref)})`
          state.problems.push(
            problem(
              "placeholders",
              entry.file,
              field,
              `expected a port number between 1 and 65535, got ${JSON.stringify(result.right)}${from}`
            )
          )
          return 0
        }
        const resolveDir = (text: string, field: string): string => path.resolve(state.dir, resolve(text, field))
        const resolveProbe = (raw: Probe | undefined, field: string): ResolvedProbe | undefined => {
          if (raw === undefined) return undefined
          const at = `process.compose.${field}`
          const httpGet = raw.http_get
          const exec = raw.exec
          const tcp = raw.tcp
          return {
            raw,
            path: at,
            ...(httpGet !== undefined && {
              httpGet: {
                host: resolve(httpGet.host ?? Defaults.probeHost, `${at}.http_get.host`),
                scheme: httpGet.scheme ?? "http",
                path: resolve(httpGet.path ?? "/", `${at}.http_get.path`),
                port: resolvePort(httpGet.port, `${at}.http_get.port`),
                headers: Object.fromEntries(
                  Object.entries(httpGet.headers ?? {}).map(([key, value]) => [
                    key,
                    resolve(value, `${at}.http_get.headers${keyPath(key)}`)
                  ])
                )
              }
            }),
            ...(exec !== undefined && {
              exec: {
                command: resolve(exec.command, `${at}.exec.command`),
                workingDir:
                  exec.working_dir === undefined ? undefined : resolveDir(exec.working_dir, `${at}.exec.working_dir`)
              }
            }),
            ...(tcp !== undefined && {
              tcp: {
                host: resolve(tcp.host ?? Defaults.probeHost, `${at}.tcp.host`),
                port: resolvePort(tcp.port, `${at}.tcp.port`)
              }
            })
          }
        }
        const proc = manifest.process
        const compose = proc.compose ?? {}
        const resolved: Resolved = {
          command: resolve(proc.command, "process.command"),
          args: (proc.args ?? []).map((arg, index) => resolve(arg, `process.args[${index}]`)),
          env: Object.fromEntries(
            Object.entries(proc.env ?? {}).map(([key, value]) => [
              key,
              resolve(value, formatPath(["process", "env", key]))
            ])
          ),
          workingDir:
            compose.working_dir === undefined
              ? undefined
              : resolveDir(compose.working_dir, "process.compose.working_dir"),
          readiness: resolveProbe(compose.readiness_probe, "readiness_probe"),
          liveness: resolveProbe(compose.liveness_probe, "liveness_probe"),
          shutdownCommand:
            compose.shutdown?.command === undefined
              ? undefined
              : resolve(compose.shutdown.command, "process.compose.shutdown.command")
        }
        if (!failed) entry.resolved = resolved
      }
    })
}

const settingsStep: Step = {
  name: "settings",
  run: (state) =>
    Effect.gen(function* () {
      const path = yield* Path.Path
      for (const entry of state.entries) {
        const manifest = entry.manifest
        const resolved = entry.resolved
        if (manifest === undefined || resolved === undefined || entry.ports === undefined) continue
        const compose = manifest.process.compose ?? {}
        let failed = false
        const report = (field: string, message: string) => {
          failed = true
          state.problems.push(problem("settings", entry.file, field, message))
        }
        const workingDir = resolved.workingDir ?? state.dir

        const probeSpec = (probe: ResolvedProbe | undefined): ProbeSpec | undefined => {
          if (probe === undefined) return undefined
          const checks: Array<ProbeCheck> = []
          if (probe.httpGet !== undefined) checks.push({ _tag: "http_get", ...probe.httpGet })
          if (probe.exec !== undefined) {
            checks.push({ _tag: "exec", command: probe.exec.command, workingDir: probe.exec.workingDir ?? workingDir })
          }
          if (probe.tcp !== undefined) checks.push({ _tag: "tcp", ...probe.tcp })
          if (checks.length !== 1) {
            report(
              probe.path,
              checks.length === 0
                ? "a probe needs one check: http_get, exec or tcp"
                : `a probe has exactly one check, found ${checks.map((check) => check._tag).join(" and ")}`
            )
            return undefined
          }
          const raw = probe.raw
          return {
            check: checks[0]!,
            initialDelayMs: seconds(raw.initial_delay_seconds, Defaults.probe.initialDelayMs),
            periodMs: seconds(raw.period_seconds, Defaults.probe.periodMs),
            timeoutMs: seconds(raw.timeout_seconds, Defaults.probe.timeoutMs),
            successThreshold: raw.success_threshold ?? Defaults.probe.successThreshold,
            failureThreshold: raw.failure_threshold ?? Defaults.probe.failureThreshold
          }
        }

        const readiness = probeSpec(resolved.readiness)
        const liveness = probeSpec(resolved.liveness)

        let signal: NodeJS.Signals = Defaults.shutdown.signal
        if (compose.shutdown?.signal !== undefined) {
          const name = signalName(compose.shutdown.signal)
          if (name === undefined) {
            report(
              "process.compose.shutdown.signal",
              `unknown signal ${JSON.stringify(compose.shutdown.signal)} (expected a number such as 15 or a name such as "SIGTERM" or "TERM")`
            )
          } else signal = name
        }

        const publicPort = manifest.deploy?.public
        if (publicPort !== undefined && entry.ports[publicPort] === undefined) {
          report("deploy.public", `this service has no port "${publicPort}" (ports: ${list(Object.keys(entry.ports))})`)
        }

        if (compose.ready_log_line !== undefined) {
          try {
            new RegExp(compose.ready_log_line)
          } catch (error) {
            report("process.compose.ready_log_line", `expected a regular expression: ${errorText(error)}`)
          }
        }

        if (failed) continue
        const availability = compose.availability ?? {}
        const command = resolved.command.includes("/") ? path.resolve(workingDir, resolved.command) : resolved.command
        entry.spec = {
          name: entry.name as ServiceName,
          dir: entry.dir,
          manifestPath: entry.manifestPath,
          description: manifest.description ?? compose.description,
          command,
          args: resolved.args,
          env: resolved.env,
          workingDir,
          ports: entry.ports,
          dependsOn: Object.entries(compose.depends_on ?? {}).map(([name, dependency]) => ({
            name: name as ServiceName,
            condition: dependency.condition ?? "process_started"
          })),
          readiness,
          liveness,
          readyLogLine: compose.ready_log_line,
          readinessTimeoutMs: seconds(compose.readiness_timeout_seconds, Defaults.readinessTimeoutMs),
          restart: {
            policy: availability.restart ?? Defaults.restart.policy,
            backoffMs: seconds(availability.backoff_seconds, Defaults.restart.backoffMs),
            maxRestarts: availability.max_restarts ?? Defaults.restart.maxRestarts,
            exponential: availability.backoff_exponential ?? false,
            maxBackoffMs: seconds(availability.max_backoff_seconds, Defaults.restart.maxBackoffMs),
            exitOnEnd: availability.exit_on_end ?? false
          },
          shutdown: {
            signal,
            timeoutMs: seconds(compose.shutdown?.timeout_seconds, Defaults.shutdown.timeoutMs),
            command: resolved.shutdownCommand
          },
          disabled: compose.disabled ?? false,
          binaries: manifest.binaries ?? {},
          deploy: manifest.deploy ?? {},
          manifest
        }
      }
    })
}

const dependenciesStep: Step = {
  name: "dependencies",
  run: (state) =>
    Effect.sync(() => {
      const names = state.entries.map((entry) => entry.name)
      for (const entry of state.entries) {
        for (const dependency of Object.keys(entry.manifest?.process.compose?.depends_on ?? {})) {
          if (dependency === entry.name || names.includes(dependency)) continue
          state.problems.push(
            problem(
              "dependencies",
              entry.file,
              formatPath(["process", "compose", "depends_on", dependency]),
              `unknown service "${dependency}" (known: ${list(names.filter((name) => name !== entry.name))})`
            )
          )
        }
      }
    })
}

const cyclesStep: Step = {
  name: "cycles",
  run: (state) =>
    Effect.sync(() => {
      const nodes = state.entries.flatMap((entry) =>
        entry.manifest === undefined
          ? []
          : [
              {
                name: entry.name,
                dependsOn: Object.keys(entry.manifest.process.compose?.depends_on ?? {}).map((name) => ({ name }))
              }
            ]
      )
      const cycle = findCycle(nodes)
      if (cycle === undefined) return
      const first = state.entries.find((entry) => entry.name === cycle[0])!
      state.problems.push(
        problem(
          "cycles",
          first.file,
          formatPath(["process", "compose", "depends_on", cycle[1]!]),
          cycle.length === 2 ? `service "${cycle[0]}" depends on itself` : `dependency cycle: ${cycle.join(" -> ")}`
        )
      )
    })
}

const portsStep: Step = {
  name: "ports",
  run: (state) =>
    Effect.sync(() => {
      const owners = new Map<number, { service: string; port: string }>()
      for (const entry of state.entries) {
        if (entry.ports === undefined || entry.manifest?.process.compose?.disabled === true) continue
        for (const [portName, port] of Object.entries(entry.ports).sort(([a], [b]) => (a < b ? -1 : 1))) {
          const owner = owners.get(port)
          if (owner === undefined) {
            owners.set(port, { service: entry.name, port: portName })
            continue
          }
          state.problems.push(
            problem(
              "ports",
              entry.file,
              formatPath(["ports", portName]),
              `port ${port} is used twice: by service "${owner.service}" (ports.${owner.port}) and by service "${entry.name}" (ports.${portName})`
            )
          )
        }
      }
    })
}

const commandsStep: Step = {
  name: "commands",
  run: (state) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const binaries = new Set(state.entries.flatMap((entry) => Object.keys(entry.manifest?.binaries ?? {})))
      const executable = (file: string) =>
        fs.stat(file).pipe(
          Effect.map((info) =>
            info.type !== "File"
              ? ("not a file" as const)
              : (info.mode & 0o111) === 0
                ? ("not executable" as const)
                : "ok"
          ),
          Effect.orElseSucceed(() => "missing" as const)
        )
      for (const entry of state.entries) {
        const spec = entry.spec
        if (spec === undefined || spec.disabled) continue
        const raw = entry.manifest!.process.command
        const shown =
          raw === spec.command ? JSON.stringify(raw) : `${JSON.stringify(spec.command)} (from ${JSON.stringify(raw)})`
        if (spec.command.includes("/")) {
          if (path.dirname(spec.command) === state.depDir && binaries.has(path.basename(spec.command))) continue
          const status = yield* executable(spec.command)
          if (status === "ok") continue
          const why = status === "missing" ? "does not exist" : `is ${status}`
          state.problems.push(problem("commands", entry.file, "process.command", `${shown} ${why}`))
          continue
        }
        const searchPath = (state.env["PATH"] ?? "").split(":").filter((dir) => dir !== "")
        let found = false
        for (const dir of searchPath) {
          if ((yield* executable(path.join(dir, spec.command))) === "ok") {
            found = true
            break
          }
        }
        if (!found) {
          state.problems.push(
            problem(
              "commands",
              entry.file,
              "process.command",
              `${shown} is not found on PATH (write a path, or \${dep.NAME} for a provisioned binary)`
            )
          )
        }
      }
    })
}

/** The loading steps, in the order they run. */
export const loadSteps: ReadonlyArray<Step> = [
  dotenvStep,
  discoverStep,
  parseStep,
  schemaStep,
  portOverridesStep,
  placeholdersStep,
  settingsStep,
  dependenciesStep,
  cyclesStep,
  portsStep,
  commandsStep
]

// ---------------------------------------------------------------------------------------------
// public API

/**
 * Loads and validates the stack in `dir`. Fails with one `ManifestError` holding every problem found.
 * Services are sorted by name; disabled ones are included with `disabled: true`.
 */
export const loadStack = Effect.fn("StackLoader.loadStack")(function* (dir: string, options?: LoadOptions) {
  const path = yield* Path.Path
  const root = path.resolve(dir)
  const env = options?.env ?? process.env
  const dataDirOption = options?.dataDir ?? (env["CORE_DATA_DIR"] === "" ? undefined : env["CORE_DATA_DIR"])
  const state: LoadState = {
    dir: root,
    dataDir: dataDirOption === undefined ? path.join(root, ".data") : path.resolve(dataDirOption),
    depDir: path.join(root, ".dep"),
    stateDir: path.join(root, ".core-stack"),
    env,
    portable: options?.portable ?? false,
    entries: [],
    problems: []
  }
  for (const step of loadSteps) {
    yield* step.run(state)
  }
  if (state.problems.length > 0) return yield* new ManifestError({ problems: state.problems })
  const stack: StackSpec = {
    dir: root,
    dataDir: state.dataDir,
    depDir: state.depDir,
    stateDir: state.stateDir,
    services: state.entries.map((entry) => entry.spec!).sort((a, b) => (a.name < b.name ? -1 : 1))
  }
  return stack
})

/**
 * The environment of the stack in `dir`: `env` (default `process.env`) with the variables of `.env`
 * added underneath (a variable already in `env` wins). What the loader resolves `${env.*}` against, and
 * what the services' processes should inherit.
 */
export const loadEnvironment = Effect.fn("StackLoader.loadEnvironment")(function* (
  dir: string,
  env: Readonly<Record<string, string | undefined>> = process.env
) {
  const path = yield* Path.Path
  const result = yield* readDotEnv(path.resolve(dir))
  if (Either.isLeft(result)) return yield* new ManifestError({ problems: result.left })
  return mergeDotEnv(env, result.right)
})

/** Whether `port` can be bound on `host` right now: undefined if so, else why not. */
const bindProblem = (host: string, port: number): Effect.Effect<string | undefined> =>
  Effect.async<string | undefined>((resume) => {
    const server = net.createServer()
    server.once("error", (error: NodeJS.ErrnoException) => {
      server.close()
      resume(
        Effect.succeed(
          error.code === "EADDRINUSE"
            ? `already in use on ${host}`
            : error.code === "EACCES"
              ? `cannot be bound on ${host}: permission denied`
              : `cannot be bound on ${host}: ${error.message}`
        )
      )
    })
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resume(Effect.succeed(undefined)))
    })
    return Effect.sync(() => {
      server.close()
    })
  })

const relativeTo = (dir: string, file: string): string =>
  file.startsWith(dir.endsWith("/") ? dir : `${dir}/`) ? file.slice(dir.length).replace(/^\/+/, "") : file

/**
 * Checks that every port of the named services can be bound on 127.0.0.1 and 0.0.0.0 (each briefly
 * bound and released). Fails with a `ManifestError` (step `ports-free`) naming service and port.
 */
export const checkPortsFree = Effect.fn("StackLoader.checkPortsFree")(function* (
  stack: StackSpec,
  names: ReadonlyArray<string>
) {
  const problems: Array<Problem> = []
  for (const service of stack.services) {
    if (!names.includes(service.name)) continue
    for (const [portName, port] of Object.entries(service.ports)) {
      for (const host of ["127.0.0.1", "0.0.0.0"]) {
        const why = yield* bindProblem(host, port)
        if (why === undefined) continue
        problems.push(
          problem(
            "ports-free",
            relativeTo(stack.dir, service.manifestPath),
            formatPath(["ports", portName]),
            `port ${port} of service "${service.name}" is ${why}`
          )
        )
        break
      }
    }
  }
  if (problems.length > 0) return yield* new ManifestError({ problems })
})

/**
 * The stack directory to work on: the `--dir` value, else `CORE_DIR` from `env`, else the current
 * directory; made absolute.
 */
export const resolveDirectory = Effect.fn("StackLoader.resolveDirectory")(function* (
  dirOption: Option.Option<string> | string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env
) {
  const path = yield* Path.Path
  const given = Option.isOption(dirOption) ? Option.getOrUndefined(dirOption) : dirOption
  const fromEnv = env["CORE_DIR"] === "" ? undefined : env["CORE_DIR"]
  return path.resolve(given ?? fromEnv ?? ".")
})
