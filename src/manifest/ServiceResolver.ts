/**
 * Resolving one service: a pure function from its decoded manifest and the stack context to a `ServiceSpec`,
 * or every problem found, each with its file and JSON path.
 *
 * Two named steps, in order: `placeholders` (every string of the manifest with its placeholders resolved) and
 * `settings` (defaults applied, probes, signal and `ready_log_line` checked). A step runs only when the one
 * before found nothing.
 */
import { Either } from "effect"
import * as nodePath from "node:path"
import * as os from "node:os"
import { formatPath, type Problem } from "./ManifestError.js"
import { bindAddress, ownValue, type PlaceholderContext, resolvePlaceholders } from "./Placeholders.js"
import type { Probe, ServiceManifest, ServiceName } from "./ServiceManifest.js"
import { Defaults, type ProbeCheck, type ProbeSpec, type ServiceSpec } from "./ServiceSpec.js"

/**
 * What every service of a stack may refer to while it is resolved: the placeholder values shared by the
 * stack, and the stack directory. A plain record: a new placeholder value is a new field of
 * `PlaceholderContext`, filled in where the loader builds this context.
 */
export type StackContext = Omit<PlaceholderContext, "serviceDir" | "ports"> & {
  /** Absolute stack directory; relative working directories and commands are resolved against it. */
  readonly dir: string
}

/** One service's decoded manifest and where it came from. */
export interface ManifestSource {
  readonly name: string
  /** Absolute service folder. */
  readonly dir: string
  /** Absolute path of service.json. */
  readonly manifestPath: string
  /** service.json relative to the stack directory, for problems. */
  readonly file: string
  readonly manifest: ServiceManifest
}

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

/** Step `port-overrides`: the service's ports, each replaced by `CORE_PORT_<SERVICE>_<PORT>` when that is set. */
export const resolvePorts = (
  source: ManifestSource,
  env: Readonly<Record<string, string | undefined>>
): { readonly ports: Record<string, number>; readonly problems: ReadonlyArray<Problem> } => {
  const ports: Record<string, number> = {}
  const problems: Array<Problem> = []
  for (const [portName, port] of Object.entries(source.manifest.ports ?? {})) {
    const variable = portOverrideVariable(source.name, portName)
    const override = env[variable]
    const parsed = override === undefined || override === "" ? port : parsePort(override)
    if (parsed === undefined) {
      problems.push({
        step: "port-overrides",
        file: source.file,
        path: formatPath(["ports", portName]),
        message: `${variable}=${JSON.stringify(override)} in the environment: expected a port number between 1 and 65535`
      })
    }
    ports[portName] = parsed ?? port
  }
  return { ports, problems }
}

// ---------------------------------------------------------------------------------------------

const seconds = (value: number | undefined, fallbackMs: number): number =>
  value === undefined ? fallbackMs : Math.round(value * 1000)

/** A key as a JSON path suffix: `.name`, or `["odd.name"]`. */
const keyPath = (key: string): string => formatPath(["_", key]).slice(1)

/** The problems of one step of one service, each with the service's file. */
const collector = (step: string, file: string) => {
  const problems: Array<Problem> = []
  return {
    problems,
    report: (path: string, message: string) => {
      problems.push({ step, file, path, message })
    }
  }
}

interface ResolvedProbe {
  readonly raw: Probe
  readonly path: string
  readonly checks: ReadonlyArray<ProbeCheck>
}

/** The strings of a manifest after step `placeholders`. */
interface Resolved {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly workingDir: string | undefined
  readonly readiness: ResolvedProbe | undefined
  readonly liveness: ResolvedProbe | undefined
  readonly shutdownCommand: string | undefined
}

/** Step `placeholders`. Exec probes without a working directory get the service's. */
const resolveStrings = (
  source: ManifestSource,
  ports: Readonly<Record<string, number>>,
  ctx: StackContext
): Either.Either<Resolved, ReadonlyArray<Problem>> => {
  const { problems, report } = collector("placeholders", source.file)
  const placeholders: PlaceholderContext = {
    ...ctx,
    serviceDir: source.dir,
    ports,
    bind: bindAddress(ctx.env, source.manifest.deploy?.public !== undefined)
  }
  const resolve = (text: string, field: string): string => {
    const result = resolvePlaceholders(text, placeholders)
    if (Either.isRight(result)) return result.right
    for (const message of result.left) report(field, message)
    return text
  }
  const resolvePort = (ref: number | string, field: string): number => {
    if (typeof ref === "number") return ref
    const result = resolvePlaceholders(ref, placeholders)
    if (Either.isLeft(result)) {
      resolve(ref, field)
      return 0
    }
    const port = parsePort(result.right)
    if (port !== undefined) return port
    const from = result.right === ref ? "" : ` (from ${JSON.stringify(ref)})`
    report(field, `expected a port number between 1 and 65535, got ${JSON.stringify(result.right)}${from}`)
    return 0
  }
  const resolveDir = (text: string, field: string): string => nodePath.resolve(ctx.dir, resolve(text, field))
  const proc = source.manifest.process
  const compose = proc.compose ?? {}
  const command = resolve(proc.command, "process.command")
  const args = (proc.args ?? []).map((arg, index) => resolve(arg, `process.args[${index}]`))
  const env = Object.fromEntries(
    Object.entries(proc.env ?? {}).map(([key, value]) => [key, resolve(value, formatPath(["process", "env", key]))])
  )
  const workingDir =
    compose.working_dir === undefined ? undefined : resolveDir(compose.working_dir, "process.compose.working_dir")
  const resolveProbe = (raw: Probe | undefined, field: string): ResolvedProbe | undefined => {
    if (raw === undefined) return undefined
    const at = `process.compose.${field}`
    const { http_get: httpGet, exec, tcp } = raw
    const checks: Array<ProbeCheck> = []
    if (httpGet !== undefined) {
      checks.push({
        _tag: "http_get",
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
      })
    }
    if (exec !== undefined) {
      checks.push({
        _tag: "exec",
        command: resolve(exec.command, `${at}.exec.command`),
        workingDir:
          exec.working_dir === undefined
            ? (workingDir ?? ctx.dir)
            : resolveDir(exec.working_dir, `${at}.exec.working_dir`)
      })
    }
    if (tcp !== undefined) {
      checks.push({
        _tag: "tcp",
        host: resolve(tcp.host ?? Defaults.probeHost, `${at}.tcp.host`),
        port: resolvePort(tcp.port, `${at}.tcp.port`)
      })
    }
    return { raw, path: at, checks }
  }
  const resolved: Resolved = {
    command,
    args,
    env,
    workingDir,
    readiness: resolveProbe(compose.readiness_probe, "readiness_probe"),
    liveness: resolveProbe(compose.liveness_probe, "liveness_probe"),
    shutdownCommand:
      compose.shutdown?.command === undefined
        ? undefined
        : resolve(compose.shutdown.command, "process.compose.shutdown.command")
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(resolved)
}

/** Step `settings`: defaults applied; a probe has one check, the signal exists, `ready_log_line` compiles. */
const applySettings = (
  source: ManifestSource,
  ports: Readonly<Record<string, number>>,
  resolved: Resolved,
  ctx: StackContext
): Either.Either<ServiceSpec, ReadonlyArray<Problem>> => {
  const { problems, report } = collector("settings", source.file)
  const manifest = source.manifest
  const compose = manifest.process.compose ?? {}
  const workingDir = resolved.workingDir ?? ctx.dir

  const probeSpec = (probe: ResolvedProbe | undefined): ProbeSpec | undefined => {
    if (probe === undefined) return undefined
    const { checks, raw } = probe
    if (checks.length !== 1) {
      report(
        probe.path,
        checks.length === 0
          ? "a probe needs one check: http_get, exec or tcp"
          : `a probe has exactly one check, found ${checks.map((check) => check._tag).join(" and ")}`
      )
      return undefined
    }
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
  if (publicPort !== undefined && ownValue(ports, publicPort) === undefined) {
    const names = Object.keys(ports).sort()
    report(
      "deploy.public",
      `this service has no port "${publicPort}" (ports: ${names.length > 0 ? names.join(", ") : "none"})`
    )
  }

  if (compose.ready_log_line !== undefined) {
    try {
      new RegExp(compose.ready_log_line)
    } catch (error) {
      report("process.compose.ready_log_line", `expected a regular expression: ${(error as Error).message}`)
    }
  }
  if (problems.length > 0) return Either.left(problems)

  const availability = compose.availability ?? {}
  return Either.right({
    name: source.name as ServiceName,
    dir: source.dir,
    manifestPath: source.manifestPath,
    description: manifest.description ?? compose.description,
    command: resolved.command.includes("/") ? nodePath.resolve(workingDir, resolved.command) : resolved.command,
    args: resolved.args,
    env: resolved.env,
    workingDir,
    ports,
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
  })
}

/** The steps of `resolveService`, in order. */
export const serviceSteps = ["placeholders", "settings"] as const

/**
 * One service resolved against its stack: steps `placeholders` then `settings`. `ports` are the service's
 * ports after step `port-overrides`.
 */
export const resolveService = (
  source: ManifestSource,
  ports: Readonly<Record<string, number>>,
  ctx: StackContext
): Either.Either<ServiceSpec, ReadonlyArray<Problem>> =>
  Either.flatMap(resolveStrings(source, ports, ctx), (resolved) => applySettings(source, ports, resolved, ctx))
