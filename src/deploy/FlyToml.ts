/**
 * `fly.toml`: flyctl's app configuration (keys from the `appconfig` structs of `FlyctlVersion`). `kill_signal`
 * SIGTERM with a `kill_timeout` above the stack's longest graceful shutdown, one volume for the data
 * directory, the public entry as `[http_service]` with a check from its readiness probe, `[env]` with the
 * bind and data settings and the manifests' non-secret defaults, `[[vm]]` sized from the manifests' hints.
 */
import { Either } from "effect"
import { envReferencesIn } from "../manifest/EnvReferences.js"
import type { Problem } from "../manifest/ManifestError.js"
import type { ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"
import { stopLevels } from "../stack/StackGraph.js"
import { FlyctlVersion, FlyDefaults, type FlyOptions, flyHeader } from "./FlyDefaults.js"
import { flyProblem } from "./FlyProblems.js"
import type { PublicEntry } from "./PublicEntry.js"
import type { StackVariables } from "./StackVariables.js"

/**
 * The longest graceful shutdown of the enabled services, in milliseconds: core stops them in levels, dependents
 * first, each level waiting for the slowest of its services (its `shutdown.timeout_seconds` before SIGKILL).
 */
export const longestShutdownMs = (services: ReadonlyArray<ServiceSpec>): number => {
  const enabled = services.filter((service) => !service.disabled)
  const timeout = new Map(enabled.map((service) => [service.name as string, service.shutdown.timeoutMs]))
  const nodes = enabled.map((service) => ({
    name: service.name as string,
    dependsOn: service.dependsOn.filter((dependency) => timeout.has(dependency.name))
  }))
  return stopLevels(nodes).reduce((sum, level) => sum + Math.max(0, ...level.map((name) => timeout.get(name)!)), 0)
}

/** `[[vm]]`: memory summed over the enabled services (hint or default), cpus summed, each rounded up. */
export const vmSize = (services: ReadonlyArray<ServiceSpec>): { readonly memoryMb: number; readonly cpus: number } => {
  const enabled = services.filter((service) => !service.disabled)
  const memory = enabled.reduce((sum, s) => sum + (s.deploy.memory_mb ?? FlyDefaults.memoryMbPerService), 0)
  const cpuHint = enabled.reduce((sum, s) => sum + (s.deploy.cpus ?? 0), 0)
  let cpus = 1
  while (cpus < cpuHint) cpus *= 2
  return { memoryMb: Math.max(256, Math.ceil(memory / 256) * 256), cpus }
}

/** A TOML basic string (JSON's escapes are TOML's; TOML also refuses DEL, which JSON leaves as it is). */
const str = (value: string): string => JSON.stringify(value).replace(/\x7f/g, "\\u007f")

/** A TOML key: bare when it can be, quoted otherwise. */
const key = (name: string): string => (/^[A-Za-z0-9_-]+$/.test(name) ? name : str(name))

/**
 * Whole seconds of a duration as a Fly duration string, within the limits flyctl applies to checks: 1 s to
 * 1 min (top-level checks: an interval of 2 s at least).
 */
const checkDuration = (ms: number, least = 1): string => `${Math.min(60, Math.max(least, Math.ceil(ms / 1000)))}s`

/** Fly's checks from the public entry's readiness probe: in `[http_service]` for http_get, top-level for tcp. */
export interface FlyChecks {
  readonly inService: ReadonlyArray<string>
  readonly topLevel: ReadonlyArray<string>
}

export const noChecks: FlyChecks = { inService: [], topLevel: [] }

/**
 * The lines of the public entry's checks, or why its readiness probe cannot be one (the problem's `file` is
 * left empty, for the caller to fill in).
 */
export const renderChecks = (entry: PublicEntry): Either.Either<FlyChecks, Problem> => {
  const readiness = entry.service.readiness
  if (readiness === undefined) return Either.right(noChecks)
  const check = readiness.check
  const file = "process.compose.readiness_probe"
  if (check._tag === "exec" || check.port !== entry.port) {
    return Either.left(
      flyProblem(
        "",
        file,
        `Fly checks the public entry on its port ${entry.port} only: its readiness probe must be an http_get or a tcp on that port`
      )
    )
  }
  const timing = (indent: string, leastInterval = 1) => [
    `${indent}interval = ${str(checkDuration(readiness.periodMs, leastInterval))}`,
    `${indent}timeout = ${str(checkDuration(readiness.timeoutMs))}`,
    // the stack starts (its dependencies first) before the entry can answer
    `${indent}grace_period = ${str(checkDuration(Math.max(readiness.initialDelayMs, 10_000)))}`
  ]
  const from = `# from ${entry.service.name}'s readiness probe`
  if (check._tag === "tcp") {
    return Either.right({
      inService: [],
      topLevel: [
        "",
        from,
        `[checks.${key(entry.service.name)}]`,
        `  type = "tcp"`,
        `  port = ${entry.port}`,
        ...timing("  ", 2)
      ]
    })
  }
  // resolved portably: a secret is still written as `${env.NAME}`
  const secret = [check.path, ...Object.values(check.headers)].find((text) => envReferencesIn(text).length > 0)
  if (secret !== undefined) {
    return Either.left(
      flyProblem(
        "",
        file,
        `the probe reads a secret (${secret}): a Fly check is written in fly.toml, where secrets never go`
      )
    )
  }
  const headers = Object.keys(check.headers)
    .sort()
    .map((name) => `${key(name)} = ${str(check.headers[name]!)}`)
  return Either.right({
    inService: [
      "",
      `  ${from}`,
      "  [[http_service.checks]]",
      ...timing("    "),
      `    method = "GET"`,
      `    path = ${str(check.path)}`,
      ...(check.scheme === "https" ? [`    protocol = "https"`, "    tls_skip_verify = true"] : []),
      ...(headers.length > 0 ? [`    headers = { ${headers.join(", ")} }`] : [])
    ],
    topLevel: []
  })
}

/** What `fly.toml` is written from. */
export interface FlyTomlInput {
  readonly stack: StackSpec
  readonly options: FlyOptions
  readonly entry: PublicEntry
  readonly variables: StackVariables
  readonly checks: FlyChecks
  readonly killTimeoutSeconds: number
  /** The stack's longest graceful shutdown (`longestShutdownMs`). */
  readonly shutdownMs: number
}

export const renderFlyToml = (input: FlyTomlInput): string => {
  const { stack, options, entry, variables, checks, killTimeoutSeconds, shutdownMs } = input
  const vm = vmSize(stack.services)
  const fixed: Array<[string, string]> = [
    ["CORE_DATA_DIR", FlyDefaults.dataMount],
    ["CORE_PUBLIC_BIND", "0.0.0.0"]
  ]
  // a manifest's default for one of these is only a default: the machine's own value stands, once (a key twice
  // is a file flyctl cannot read)
  const env: Array<[string, string]> = [
    ...fixed,
    ...variables.settings.flatMap(
      (setting): Array<[string, string]> =>
        setting.value === undefined || fixed.some(([name]) => name === setting.name)
          ? []
          : [[setting.name, setting.value]]
    )
  ]
  const ambiguous = variables.settings.filter((setting) => setting.value === undefined).map((s) => s.name)
  return [
    `# ${flyHeader}`,
    `# Keys as flyctl ${FlyctlVersion} reads them. First deploy and upgrades: docs/DEPLOYMENT.md.`,
    "",
    `app = ${str(options.app)}`,
    `primary_region = ${str(options.region)}`,
    `# core stops the stack dependents first: up to ${Math.ceil(shutdownMs / 1000)} s, then ${FlyDefaults.killMarginSeconds} s for itself`,
    `kill_signal = "SIGTERM"`,
    `kill_timeout = ${killTimeoutSeconds}`,
    "",
    "[build]",
    `  dockerfile = "Dockerfile"`,
    `  ignorefile = ".dockerignore"`,
    "",
    "# Not secret. Secrets (read without a default): SECRETS.md, set with `fly secrets set`.",
    ...(ambiguous.length > 0 ? [`# Left out, their manifests' defaults differ: ${ambiguous.join(", ")}`] : []),
    "[env]",
    ...env.map(([name, value]) => `  ${key(name)} = ${str(value)}`),
    "",
    "# The data directory (${data}) of every service: create the volume before the first deploy.",
    "[[mounts]]",
    `  source = ${str(FlyDefaults.volume)}`,
    `  destination = ${str(FlyDefaults.dataMount)}`,
    "",
    `# The public entry: ${entry.service.name}'s port ${entry.portName}. Every other port stays on loopback.`,
    "[http_service]",
    `  internal_port = ${entry.port}`,
    "  force_https = true",
    `  auto_stop_machines = "off"`,
    "  auto_start_machines = true",
    "  min_machines_running = 1",
    ...checks.inService,
    ...checks.topLevel,
    "",
    "# core exits non-zero when the stack cannot start (and 0 when stopped): Fly restarts the machine then.",
    "[[restart]]",
    `  policy = "on-failure"`,
    `  retries = ${FlyDefaults.restartRetries}`,
    "",
    "# The whole stack on one machine: memory summed over the services (deploy.memory_mb, default 256 each).",
    "[[vm]]",
    `  cpu_kind = "shared"`,
    `  cpus = ${vm.cpus}`,
    `  memory_mb = ${vm.memoryMb}`,
    ""
  ].join("\n")
}
