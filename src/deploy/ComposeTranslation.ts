/**
 * The translation of one service into a process-compose process, and why each choice (see `ComposeFile`
 * for the whole file): pure, a `ServiceSpec` in, the process's YAML value and notes on what
 * process-compose does differently out.
 */
import { constants as osConstants } from "node:os"
import type { DependencyCondition } from "../manifest/ServiceManifest.js"
import type { ProbeCheck, ProbeSpec, ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"
import { serviceLogPath } from "../state/StateDir.js"
import { ownValue } from "../manifest/Placeholders.js"
import { compareNames } from "../stack/StackGraph.js"

/** The process-compose version the output is checked against (the compatibility test builds this one). */
export const ProcessComposeVersion = "v1.85.0"

/** Where the file lives inside a stack: `.core-stack/process-compose.yaml`. */
export const composeFileName = "process-compose.yaml"

/** Options of `renderComposeFile`. */
export interface ComposeFileOptions {
  /**
   * Absolute paths of bare command names (a name without `/`), looked up on PATH by the caller. A name
   * missing here is emitted as is, with a comment.
   */
  readonly commandPaths?: Readonly<Record<string, string>>
  /** Node executable used by the `exec` probe that stands in for a `tcp` probe. Default `node`. */
  readonly nodeExecutable?: string
  /** Rotation of each process's log file in process-compose. Default 10 MB, 3 backups. */
  readonly logRotation?: { readonly maxSizeMb: number; readonly maxBackups: number }
}

const defaultLogRotation = { maxSizeMb: 10, maxBackups: 3 } as const

/** Go template escape for the fields process-compose renders as templates. */
export const escapeTemplate = (value: string): string => value.replaceAll("{{", '{{"{{"}}')

/** process-compose's escape for a literal `$`, applied to the whole file text. */
export const escapeDollars = (text: string): string => text.replaceAll("$", "$$$$")

/** Whole seconds, rounded up, at least `min`. */
const seconds = (ms: number, min = 0): number => Math.max(min, Math.ceil(ms / 1000))

/** Signal number on this platform (process-compose takes numbers only). */
export const signalNumber = (signal: NodeJS.Signals): number | undefined =>
  (osConstants.signals as Readonly<Record<string, number | undefined>>)[signal]

const regexMeta = /[\\^$.|?*+()[\]{}]/

/**
 * The plain substring that a `ready_log_line` regular expression stands for, when it is one: anchors
 * dropped (a substring match accepts every line the anchored pattern does), `\.`-style escapes undone.
 * `undefined` when the pattern needs a real regular expression.
 */
export const readyLogLiteral = (pattern: string): string | undefined => {
  const body = pattern.replace(/^\^/, "").replace(/(?<!\\)\$$/, "")
  let literal = ""
  for (let i = 0; i < body.length; i++) {
    const char = body[i]!
    if (char === "\\") {
      const next = body[i + 1]
      if (next === undefined || !regexMeta.test(next)) return undefined
      literal += next
      i++
    } else if (regexMeta.test(char)) {
      return undefined
    } else {
      literal += char
    }
  }
  return literal.length > 0 ? literal : undefined
}

/** A shell single-quoted word. */
const shellQuote = (word: string): string =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`

/** The `exec` probe command that stands in for a `tcp` probe: exits 0 once a connection is accepted. */
export const tcpProbeCommand = (nodeExecutable: string, host: string, port: number, timeoutMs: number): string => {
  const script =
    `const s=require("net").connect(${port},${JSON.stringify(host)});` +
    `s.setTimeout(${Math.max(1, timeoutMs)},()=>process.exit(1));` +
    `s.on("connect",()=>process.exit(0));s.on("error",()=>process.exit(1))`
  return `${shellQuote(nodeExecutable)} -e ${shellQuote(script)}`
}

export interface Translated {
  readonly value: Record<string, unknown>
  /** Comments above the process. */
  readonly notes: ReadonlyArray<string>
}

const translateCheck = (
  check: ProbeCheck,
  timeoutMs: number,
  options: ComposeFileOptions
): { readonly probe: Record<string, unknown>; readonly note: string | undefined } => {
  switch (check._tag) {
    case "http_get": {
      const headers = Object.keys(check.headers).length > 0 ? { headers: sortedRecord(check.headers) } : {}
      return {
        probe: {
          http_get: {
            scheme: check.scheme,
            host: escapeTemplate(check.host),
            port: check.port,
            path: escapeTemplate(check.path),
            ...headers
          }
        },
        note: "http_get passes on status 200 only in process-compose, on 200 to 399 in core"
      }
    }
    case "exec":
      return {
        probe: { exec: { command: escapeTemplate(check.command), working_dir: check.workingDir } },
        note: undefined
      }
    case "tcp":
      return {
        probe: {
          exec: {
            command: escapeTemplate(
              tcpProbeCommand(options.nodeExecutable ?? "node", check.host, check.port, timeoutMs)
            ),
            // its own: without one process-compose gives it the process's working_dir as the file holds it,
            // escaped for the template rendering that probes never get ("{{" in it: a chdir that fails)
            working_dir: "/"
          }
        },
        note: `the tcp probe on ${check.host}:${check.port} is an exec probe here (process-compose has no tcp probe)`
      }
  }
}

/**
 * process-compose stops a process after `failure_threshold` failed readiness checks in a row, even before it
 * was ever ready; core keeps checking until the readiness timeout. The threshold that lets process-compose
 * check for as long as core waits: every check from the initial delay to the timeout, at least the manifest's.
 */
export const readinessFailureThreshold = (probe: ProbeSpec, readinessTimeoutMs: number): number => {
  const checks =
    Math.floor(Math.max(0, seconds(readinessTimeoutMs) - seconds(probe.initialDelayMs)) / seconds(probe.periodMs, 1)) +
    1
  return Math.max(probe.failureThreshold, checks)
}

const translateProbe = (
  kind: "readiness" | "liveness",
  probe: ProbeSpec,
  options: ComposeFileOptions,
  failureThreshold = probe.failureThreshold
): { readonly probe: Record<string, unknown>; readonly notes: ReadonlyArray<string> } => {
  const { probe: check, note } = translateCheck(probe.check, probe.timeoutMs, options)
  const notes: Array<string> = []
  if (note !== undefined) notes.push(`${kind}: ${note}`)
  if (probe.initialDelayMs > 0) {
    notes.push(
      `${kind}: process-compose does not probe during initial_delay_seconds; core probes and counts only successes then`
    )
  }
  return {
    probe: {
      ...check,
      initial_delay_seconds: seconds(probe.initialDelayMs),
      period_seconds: seconds(probe.periodMs, 1),
      timeout_seconds: seconds(probe.timeoutMs, 1),
      success_threshold: probe.successThreshold,
      failure_threshold: failureThreshold
    },
    notes
  }
}

const sortedRecord = (record: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(
    Object.keys(record)
      .sort()
      .map((key) => [key, record[key]!])
  )

/** The condition process-compose accepts for a dependency on `target`, and why it differs, if it does. */
const dependencyCondition = (
  condition: DependencyCondition,
  target: ServiceSpec | undefined
): { readonly condition: DependencyCondition; readonly note: string | undefined } => {
  if (target === undefined) return { condition, note: undefined }
  const hasProbe = target.readiness !== undefined || target.liveness !== undefined
  const hasLogLine = target.readyLogLine !== undefined && target.readiness === undefined
  if (condition === "process_healthy" && !hasProbe) {
    return hasLogLine
      ? {
          condition: "process_log_ready",
          note: `${target.name} is ready by its log line, so process_healthy is process_log_ready here`
        }
      : {
          condition: "process_started",
          note: `${target.name} has no probe, which process-compose refuses for process_healthy: process_started here`
        }
  }
  if (condition === "process_log_ready" && !hasLogLine) {
    return target.readiness !== undefined
      ? {
          condition: "process_healthy",
          note: `${target.name} has a readiness probe besides its log line, so process_log_ready is process_healthy here`
        }
      : {
          condition: "process_started",
          note: `${target.name} has no ready_log_line, which process-compose refuses for process_log_ready: process_started here`
        }
  }
  return { condition, note: undefined }
}

/** One service as a process-compose process, with notes on what runs differently. */
export const translateService = (
  service: ServiceSpec,
  byName: ReadonlyMap<string, ServiceSpec>,
  stack: StackSpec,
  options: ComposeFileOptions
): Translated => {
  const notes: Array<string> = []
  const value: Record<string, unknown> = {}

  if (service.description !== undefined) value.description = escapeTemplate(service.description)

  let command = service.command
  if (!command.includes("/")) {
    const resolved = options.commandPaths === undefined ? undefined : ownValue(options.commandPaths, command)
    if (resolved !== undefined) command = resolved
    else
      notes.push(`${command} was not found on PATH when this file was generated; process-compose looks it up at start`)
  }
  value.entrypoint = [command, ...service.args]
  value.working_dir = escapeTemplate(service.workingDir)

  const envKeys = Object.keys(service.env).sort()
  if (envKeys.length > 0) value.environment = envKeys.map((key) => escapeTemplate(`${key}=${service.env[key]}`))

  const rotation = options.logRotation ?? defaultLogRotation
  value.log_location = escapeTemplate(serviceLogPath(stack.stateDir, service.name))
  value.log_configuration = {
    fields_order: ["message"],
    disable_json: true,
    no_color: true,
    no_metadata: true,
    flush_each_line: true,
    rotation: { max_size_mb: rotation.maxSizeMb, max_backups: rotation.maxBackups }
  }

  const dependsOn: Record<string, { condition: DependencyCondition }> = {}
  for (const dependency of [...service.dependsOn].sort((a, b) => compareNames(a.name, b.name))) {
    const target = byName.get(dependency.name)
    if (target?.disabled === true && !service.disabled) {
      notes.push(
        `depends on ${dependency.name} (${dependency.condition}), which is disabled: left out, process-compose refuses it`
      )
      continue
    }
    const { condition, note } = dependencyCondition(dependency.condition, target)
    if (note !== undefined) notes.push(note)
    dependsOn[dependency.name] = { condition }
  }
  if (Object.keys(dependsOn).length > 0) value.depends_on = dependsOn

  if (service.readiness !== undefined) {
    const threshold = readinessFailureThreshold(service.readiness, service.readinessTimeoutMs)
    const { probe, notes: probeNotes } = translateProbe("readiness", service.readiness, options, threshold)
    value.readiness_probe = probe
    notes.push(...probeNotes)
    notes.push(
      `readiness: failure_threshold ${service.readiness.failureThreshold} is ${threshold} here, to cover core's ` +
        `readiness timeout of ${seconds(service.readinessTimeoutMs)} s: process-compose kills a process after that ` +
        "many failed checks in a row; core fails a start not ready in time and checks readiness no more once ready"
    )
  }
  if (service.liveness !== undefined) {
    const { probe, notes: probeNotes } = translateProbe("liveness", service.liveness, options)
    value.liveness_probe = probe
    notes.push(...probeNotes)
    if (service.readiness !== undefined || service.readyLogLine !== undefined) {
      notes.push("liveness: process-compose checks it from the start, core once the service is ready")
    }
  }

  if (service.readyLogLine !== undefined) {
    if (service.readiness !== undefined) {
      notes.push(
        `ready_log_line ${JSON.stringify(service.readyLogLine)} left out: process-compose refuses it beside a readiness probe`
      )
    } else {
      const literal = readyLogLiteral(service.readyLogLine)
      value.ready_log_line = literal ?? service.readyLogLine
      if (literal === undefined) {
        notes.push("ready_log_line is a regular expression for core but a plain substring for process-compose")
      }
    }
  }

  if (service.readiness === undefined && service.readyLogLine !== undefined) {
    notes.push(
      `readiness timeout: core fails the start without the log line after ${seconds(service.readinessTimeoutMs)} s; ` +
        "process-compose waits without limit"
    )
  }

  const restart = service.restart
  value.availability = {
    restart: restart.policy,
    backoff_seconds: seconds(restart.backoffMs, 1),
    max_restarts: restart.maxRestarts,
    ...(restart.exitOnEnd ? { exit_on_end: true } : {})
  }
  if (restart.policy !== "no") {
    if (restart.exponential) {
      notes.push(
        `restart backoff: core doubles it after each restart up to ${seconds(restart.maxBackoffMs)} s; process-compose keeps it fixed`
      )
    }
    if (restart.backoffMs < 1000) notes.push("restart backoff: process-compose waits at least 1 s")
  }

  const shutdown = service.shutdown
  const signal = signalNumber(shutdown.signal)
  value.shutdown = {
    ...(shutdown.command !== undefined ? { command: shutdown.command } : {}),
    ...(signal !== undefined ? { signal } : {}),
    timeout_seconds: seconds(shutdown.timeoutMs, 1)
  }
  if (signal === undefined || signal > 31) {
    notes.push(`shutdown signal ${shutdown.signal}: process-compose sends only signals 1 to 31, SIGTERM otherwise`)
  }
  if (shutdown.command !== undefined) {
    notes.push("shutdown command: process-compose sends no SIGKILL once it succeeds; core always kills what is left")
  }
  if (shutdown.timeoutMs < 1000) notes.push("shutdown timeout: process-compose waits at least 1 s before SIGKILL")

  if (service.disabled) value.disabled = true

  return { value, notes }
}
