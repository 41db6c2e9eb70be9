/**
 * `core deploy fly`: the files that run a stack on one Fly.io machine, under `core stack up`.
 *
 * - `Dockerfile`: a build stage (Node and Go) that installs with `npm ci`, builds the CLI and runs
 *   `core stack provision`, so the image holds the binaries the manifests pin, built with their flags; a slim
 *   runtime stage with Node, tini as PID 1, the unprivileged `node` user and `core stack up` as the command.
 *   The same image serves Kubernetes, where each pod runs `core <service> run --no-deps`.
 * - `.dockerignore` (and `Dockerfile.dockerignore`, the name a local `docker build -f` reads): `.dep`, `.data`,
 *   `.core-stack`, `node_modules`, `.env` and the other local state never enter the build context.
 * - `fly.toml`: flyctl's app configuration (keys from flyctl v0.4.87's `appconfig` structs): `kill_signal`
 *   SIGTERM with a `kill_timeout` above the stack's longest graceful shutdown, one volume for the data
 *   directory, the public entry as `[http_service]` with a check from its readiness probe, `[env]` with the
 *   bind and data settings and the manifests' non-secret defaults, `[[vm]]` sized from the manifests' hints.
 * - `SECRETS.md`: every variable read without a default (a secret), where it is read, and how to set it.
 *
 * Pure: the same stack and options give the same bytes. Nothing from `.env` or the environment is written:
 * the only values come from the manifests and the options.
 */
import { Either } from "effect"
import { ManifestError, type Problem } from "../manifest/ManifestError.js"
import { placeholdersIn } from "../manifest/Placeholders.js"
import type { ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"
import { stopLevels } from "../stack/StackGraph.js"
import type { GeneratedFile } from "./GeneratedFile.js"
import { manifestFile, type PublicEntry, publicEntry } from "./PublicEntry.js"
import { type StackVariables, stackVariables } from "./StackVariables.js"

/** The flyctl release whose configuration structs `fly.toml` is written against. */
export const FlyctlVersion = "v0.4.87"

/** Fixed choices of the generated files, documented in docs/DEPLOYMENT.md. */
export const FlyDefaults = {
  region: "iad",
  /** Where the Fly volume is mounted; `CORE_DATA_DIR` points there. */
  dataMount: "/data",
  volume: "core_data",
  /** Memory per service without a `deploy.memory_mb` hint. */
  memoryMbPerService: 256,
  /** Added to the longest graceful shutdown for core's own exit. */
  killMarginSeconds: 5,
  /** How often Fly restarts a machine whose stack could not start, before it gives up. */
  restartRetries: 10,
  /** The longest `kill_timeout` written: above it, a stack must shorten its shutdown timeouts. */
  maxKillTimeoutSeconds: 300,
  /** Base images: the build stage's Node and Go, the runtime's slim Node. */
  nodeImage: "node:20-bookworm",
  goImage: "golang:1.26-bookworm",
  runtimeImage: "node:20-bookworm-slim",
  /** Where the stack lives inside the image. */
  workdir: "/app",
  /** The base image's unprivileged `node` user, by number (a name may not resolve on the host). */
  user: "1000:1000"
} as const

export interface FlyOptions {
  /** The Fly app name. */
  readonly app: string
  /** The primary region, e.g. `iad`. */
  readonly region: string
}

/** What `core deploy fly` writes and prints. */
export interface FlyDeployment {
  readonly files: ReadonlyArray<GeneratedFile>
  /** Names of the secrets, sorted. */
  readonly secrets: ReadonlyArray<string>
  /** The `fly secrets set` line to run, with the names only (each value read from a shell variable). */
  readonly secretsCommand: string | undefined
  /** Seconds written as `kill_timeout`. */
  readonly killTimeoutSeconds: number
}

const STEP = "deploy-fly"

// ---------------------------------------------------------------------------------------------
// checks

const problem = (file: string, path: string, message: string): Problem => ({ step: STEP, file, path, message })

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const REGION = /^[a-z]{3}$/

const optionProblems = (options: FlyOptions): ReadonlyArray<Problem> => [
  ...(APP_NAME.test(options.app)
    ? []
    : [problem("", "--app", `"${options.app}" is not a Fly app name (lowercase letters, digits and '-', at most 63)`)]),
  ...(REGION.test(options.region)
    ? []
    : [problem("", "--region", `"${options.region}" is not a Fly region code (three lowercase letters, e.g. iad)`)])
]

/** Binaries the image cannot provision: its build stage has no binary on PATH, only downloads and Go builds. */
const binaryProblems = (stack: StackSpec): ReadonlyArray<Problem> =>
  stack.services.flatMap((service) =>
    Object.entries(service.binaries)
      .filter(([, binary]) => binary.download === undefined && binary.build === undefined)
      .map(([name]) =>
        problem(
          manifestFile(stack, service),
          `binaries.${name}`,
          "the image provisions every binary in its build stage, where nothing is on PATH: give a download or a build"
        )
      )
  )

/** The public entry must listen on `${bind}` (all interfaces on Fly), and nothing else may take its port. */
const entryProblems = (stack: StackSpec, entry: PublicEntry): ReadonlyArray<Problem> => {
  const file = manifestFile(stack, entry.service)
  const process = entry.service.manifest.process
  const texts = [process.command, ...(process.args ?? []), ...Object.values(process.env ?? {})]
  const listensOnBind = texts.some((text) => placeholdersIn(text).includes("bind"))
  const problems: Array<Problem> = []
  if (!listensOnBind) {
    problems.push(
      problem(
        file,
        "process",
        `the public entry must listen on \${bind} (in its args or env): Fly's proxy reaches port ${entry.port} on the machine's own address, not on loopback`
      )
    )
  }
  for (const service of stack.services) {
    for (const [name, port] of Object.entries(service.ports)) {
      if (port !== entry.port || (service === entry.service && name === entry.portName)) continue
      problems.push(
        problem(
          manifestFile(stack, service),
          `ports.${name}`,
          `port ${port} is the public entry's (${entry.service.name} ports.${entry.portName}), which listens on 0.0.0.0`
        )
      )
    }
  }
  return problems
}

// ---------------------------------------------------------------------------------------------
// pure helpers

/** The default app name for a stack directory: its folder name as a Fly app name. */
export const defaultAppName = (stackDir: string): string => {
  const base =
    stackDir
      .split("/")
      .filter((part) => part !== "")
      .pop() ?? ""
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
  return name === "" ? "core-stack" : name
}

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

/** A TOML basic string (JSON's escapes are TOML's). */
const str = (value: string): string => JSON.stringify(value)

/** A TOML key: bare when it can be, quoted otherwise. */
const key = (name: string): string => (/^[A-Za-z0-9_-]+$/.test(name) ? name : str(name))

/**
 * Whole seconds of a duration as a Fly duration string, within the limits flyctl applies to checks: 1 s to
 * 1 min (top-level checks: an interval of 2 s at least).
 */
const checkDuration = (ms: number, least = 1): string => `${Math.min(60, Math.max(least, Math.ceil(ms / 1000)))}s`

// ---------------------------------------------------------------------------------------------
// the files

const HEADER = "Generated by `core deploy fly` from services/*/service.json: edit the manifests, then run it again."

/** Fly's checks from the public entry's readiness probe: in `[http_service]` for http_get, top-level for tcp. */
interface Checks {
  readonly inService: ReadonlyArray<string>
  readonly topLevel: ReadonlyArray<string>
}

const renderChecks = (entry: PublicEntry): Either.Either<Checks, Problem> => {
  const readiness = entry.service.readiness
  if (readiness === undefined) return Either.right({ inService: [], topLevel: [] })
  const check = readiness.check
  const file = "process.compose.readiness_probe"
  if (check._tag === "exec" || check.port !== entry.port) {
    return Either.left(
      problem(
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
  const secret = [check.path, ...Object.values(check.headers)].find((text) => text.includes("${env."))
  if (secret !== undefined) {
    return Either.left(
      problem(
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

const renderFlyToml = (
  stack: StackSpec,
  options: FlyOptions,
  entry: PublicEntry,
  variables: StackVariables,
  checks: Checks,
  killTimeoutSeconds: number,
  shutdownMs: number
): string => {
  const vm = vmSize(stack.services)
  const env: Array<[string, string]> = [
    ["CORE_DATA_DIR", FlyDefaults.dataMount],
    ["CORE_PUBLIC_BIND", "0.0.0.0"],
    ...variables.settings.flatMap(
      (setting): Array<[string, string]> => (setting.value === undefined ? [] : [[setting.name, setting.value]])
    )
  ]
  const ambiguous = variables.settings.filter((setting) => setting.value === undefined).map((s) => s.name)
  return [
    `# ${HEADER}`,
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

const renderDockerfile = (): string => {
  const d = FlyDefaults
  return [
    "# syntax=docker/dockerfile:1",
    `# ${HEADER}`,
    "# Build from the stack directory: fly deploy --config deploy/fly/fly.toml (see docs/DEPLOYMENT.md).",
    "# One image for Fly.io (core stack up) and Kubernetes (core <service> run --no-deps).",
    "",
    `FROM ${d.goImage} AS go`,
    "",
    "# Build stage: core's CLI, and every binary of the stack provisioned as the manifests pin it",
    "# (downloads checked against their sha256, Go builds with the manifests' flags).",
    `FROM ${d.nodeImage} AS build`,
    "COPY --from=go /usr/local/go /usr/local/go",
    "ENV PATH=/usr/local/go/bin:$PATH",
    `WORKDIR ${d.workdir}`,
    "COPY package.json package-lock.json ./",
    "RUN npm ci --no-audit --no-fund",
    "COPY tsconfig.json ./",
    "COPY src ./src",
    "COPY services ./services",
    "RUN npm run build && node dist/core.cjs stack provision",
    "",
    "# Runtime stage: Node, tini as PID 1 (signals forwarded, zombies reaped), the unprivileged user node.",
    `FROM ${d.runtimeImage}`,
    "# Debian's tini of the base image's release; its version follows the base image (hence no pin).",
    "# hadolint ignore=DL3008",
    "RUN apt-get update \\",
    "  && apt-get install -y --no-install-recommends tini \\",
    "  && rm -rf /var/lib/apt/lists/*",
    `WORKDIR ${d.workdir}`,
    `COPY --from=build ${d.workdir}/dist ./dist`,
    `COPY --from=build ${d.workdir}/services ./services`,
    `COPY --from=build ${d.workdir}/.dep ./.dep`,
    "# `core` on PATH (for fly ssh console); .core-stack: core's runtime state; the data directory: a volume",
    "# on Fly (mounted owned by the image's user), an empty directory otherwise",
    `RUN ln -s ${d.workdir}/dist/core.cjs /usr/local/bin/core \\`,
    `  && mkdir -p .core-stack ${d.dataMount} \\`,
    `  && chown ${d.user} .core-stack ${d.dataMount}`,
    `USER ${d.user}`,
    `ENV NODE_ENV=production CORE_DIR=${d.workdir}`,
    `ENTRYPOINT ["/usr/bin/tini", "--"]`,
    `CMD ["node", "dist/core.cjs", "stack", "up"]`,
    ""
  ].join("\n")
}

const renderDockerignore = (): string =>
  [
    `# ${HEADER}`,
    "# Local state and secrets never enter the build context.",
    ".dep",
    ".data",
    ".core-stack",
    "node_modules",
    ".env",
    ".env.*",
    "dist",
    "deploy",
    ".git",
    "scratchpad",
    "test",
    "*.log",
    ""
  ].join("\n")

const renderSecrets = (options: FlyOptions, variables: StackVariables, command: string | undefined): string => {
  const lines = [
    "# Secrets",
    "",
    `<!-- ${HEADER} -->`,
    "",
    "Every variable that a manifest reads as `${env.NAME}` without a default is a secret. Its value is never",
    "written into a generated file (nor taken from `.env`): set it on Fly, where the machine reads it as an",
    "environment variable."
  ]
  if (command === undefined) {
    return [...lines, "", `The stack reads no secret: app \`${options.app}\` needs no \`fly secrets set\`.`, ""].join(
      "\n"
    )
  }
  return [
    ...lines,
    "",
    "| name | read by |",
    "|---|---|",
    ...variables.secrets.map(
      (secret) =>
        `| \`${secret.name}\` | ${secret.uses.map((use) => `${use.service} (\`${use.field}\` in ${use.file})`).join(", ")} |`
    ),
    "",
    "With each value in a shell variable of the same name (never in a file that is committed):",
    "",
    "```sh",
    command,
    "```",
    "",
    "`fly secrets set` restarts the machine with the new values; `fly secrets list` shows the names set.",
    ""
  ].join("\n")
}

/**
 * The files of `core deploy fly` for `stack`, or a `ManifestError` listing why it cannot be deployed this way
 * (no or two public entries, a binary the image cannot provision, a public entry not on `${bind}`, a port
 * taken from the public entry, a readiness probe Fly cannot run, a shutdown longer than Fly waits).
 */
export const flyDeployment = (stack: StackSpec, options: FlyOptions): Either.Either<FlyDeployment, ManifestError> => {
  const problems: Array<Problem> = [...optionProblems(options), ...binaryProblems(stack)]
  const entry = publicEntry(stack, STEP)
  if (Either.isLeft(entry)) problems.push(...entry.left)
  let checks: Checks = { inService: [], topLevel: [] }
  if (Either.isRight(entry)) {
    problems.push(...entryProblems(stack, entry.right))
    const rendered = renderChecks(entry.right)
    if (Either.isRight(rendered)) checks = rendered.right
    else problems.push({ ...rendered.left, file: manifestFile(stack, entry.right.service) })
  }
  const shutdownMs = longestShutdownMs(stack.services)
  const killTimeoutSeconds = Math.ceil(shutdownMs / 1000) + FlyDefaults.killMarginSeconds
  if (killTimeoutSeconds > FlyDefaults.maxKillTimeoutSeconds) {
    problems.push(
      problem(
        "services/",
        "",
        `the stack's graceful shutdown takes up to ${Math.ceil(shutdownMs / 1000)} s (dependents first); core writes a kill_timeout of at most ${FlyDefaults.maxKillTimeoutSeconds} s: shorten process.compose.shutdown.timeout_seconds`
      )
    )
  }
  if (problems.length > 0 || Either.isLeft(entry)) return Either.left(new ManifestError({ problems }))

  const variables = stackVariables(stack)
  const secrets = variables.secrets.map((secret) => secret.name)
  const secretsCommand =
    secrets.length === 0
      ? undefined
      : `fly secrets set --app ${options.app} ${secrets.map((name) => `${name}="$${name}"`).join(" ")}`
  const dockerignore = renderDockerignore()
  return Either.right({
    files: [
      { path: ".dockerignore", content: dockerignore },
      { path: "Dockerfile", content: renderDockerfile() },
      { path: "Dockerfile.dockerignore", content: dockerignore },
      { path: "SECRETS.md", content: renderSecrets(options, variables, secretsCommand) },
      {
        path: "fly.toml",
        content: renderFlyToml(stack, options, entry.right, variables, checks, killTimeoutSeconds, shutdownMs)
      }
    ],
    secrets,
    secretsCommand,
    killTimeoutSeconds
  })
}
