/**
 * A manifest's probes as Kubernetes probes, one to one: `http_get` → `httpGet`, `exec` → `exec`,
 * `tcp` → `tcpSocket`, with delays, periods, timeouts and thresholds kept (whole seconds, rounded up,
 * at least 1 where Kubernetes requires it).
 *
 * Placeholders are resolved as they will be inside the image (stack directory `appDir`), never with this
 * machine's paths or environment: `${env.X:-default}` gives the default, `${env.X}` without one (a
 * secret) cannot be written into an object and is an error, except in an `exec` command, which runs in
 * the container's shell where `${env.X}` becomes the shell's `${X}`.
 *
 * The probe's `host` is not used: the kubelet probes the pod's own address (the services of a pod listen
 * on all interfaces there). A host that is not a local address is reported.
 */
import { Either } from "effect"
import * as path from "node:path"
import { envReferencesIn } from "../manifest/EnvReferences.js"
import { formatPath, type Problem } from "../manifest/ManifestError.js"
import {
  type PlaceholderContext,
  parseEnvReference,
  replacePlaceholders,
  resolvePlaceholders
} from "../manifest/Placeholders.js"
import type { Probe } from "../manifest/ServiceManifest.js"
import { Defaults } from "../manifest/ServiceSpec.js"

/** A Kubernetes probe (the fields of core/v1 Probe that we write). */
export interface K8sProbe {
  readonly httpGet?: {
    readonly path: string
    readonly port: number | string
    readonly scheme: "HTTP" | "HTTPS"
    readonly httpHeaders?: ReadonlyArray<{ readonly name: string; readonly value: string }>
  }
  readonly tcpSocket?: { readonly port: number | string }
  readonly exec?: { readonly command: ReadonlyArray<string> }
  readonly initialDelaySeconds?: number
  readonly periodSeconds: number
  readonly timeoutSeconds: number
  readonly successThreshold: number
  readonly failureThreshold: number
}

/** Where one service's probe strings are resolved: the placeholder context inside the image. */
export interface ProbeContext {
  /** The manifest file, relative to the stack directory, for errors. */
  readonly file: string
  /** Placeholders as the image resolves them (its paths; only the environment known at generation). */
  readonly placeholders: PlaceholderContext
  /** The stack directory inside the image: the containers' working directory. */
  readonly appDir: string
  /** The service's working directory as the manifest gives it (`process.compose.working_dir`), if any. */
  readonly workingDir: string | undefined
  /** The service's named ports: a probe on one of them names it. */
  readonly ports: Readonly<Record<string, number>>
}

/** A probe's mapping: the Kubernetes probe and what did not map exactly, or the problems. */
export type ProbeMapping = Either.Either<
  { readonly probe: K8sProbe; readonly notes: ReadonlyArray<string> },
  ReadonlyArray<Problem>
>

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "0.0.0.0", "::1", "::", "${bind}"])

/** Whole seconds, rounded up, at least `min`. */
export const wholeSeconds = (value: number, min: number): number => Math.max(min, Math.ceil(value))

/** A string as one single-quoted shell word. */
export const shellQuote = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`

/** `${env.X}` and `${env.X:-d}` rewritten as literal shell expansions (`$${X}`, `$${X:-d}`); the rest kept. */
const envAsShell = (text: string): string =>
  replacePlaceholders(text, (body) => {
    const ref = parseEnvReference(body)
    return ref === undefined ? undefined : `$\${${ref.name}${ref.fallback === undefined ? "" : `:-${ref.fallback}`}}`
  })

/** Maps one manifest probe; `at` is its JSON path (`process.compose.readiness_probe`). */
export const mapProbe = (raw: Probe, at: string, ctx: ProbeContext, options: { liveness: boolean }): ProbeMapping => {
  const problems: Array<Problem> = []
  const notes: Array<string> = []
  const report = (field: string, message: string) =>
    problems.push({ step: "deploy-k8s", file: ctx.file, path: field, message })

  /** The text resolved, or undefined when a problem was reported. */
  const resolveOrReport = (text: string, field: string): string | undefined => {
    const secret = envReferencesIn(text).find((ref) => ref.fallback === undefined)
    if (secret !== undefined) {
      report(
        field,
        `\${env.${secret.name}} is a secret: it cannot be written into a Kubernetes probe (only an exec probe can read it)`
      )
      return undefined
    }
    const result = resolvePlaceholders(text, ctx.placeholders)
    if (Either.isRight(result)) return result.right
    for (const message of result.left) report(field, message)
    return undefined
  }
  const resolve = (text: string, field: string): string => resolveOrReport(text, field) ?? text
  const portOf = (ref: number | string, field: string): number | string => {
    const text = typeof ref === "number" ? String(ref) : resolveOrReport(ref, field)
    if (text === undefined) return 0
    const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
    if (!(port >= 1 && port <= 65535)) {
      report(field, `expected a port number between 1 and 65535, got ${JSON.stringify(text)}`)
      return 0
    }
    const named = Object.entries(ctx.ports).find(([, number]) => number === port)
    return named === undefined ? port : named[0]
  }
  const checkHost = (host: string | undefined, field: string) => {
    if (host === undefined || LOCAL_HOSTS.has(host)) return
    notes.push(`${field} is ${JSON.stringify(host)}: the kubelet probes the pod's own address, the host is not used`)
  }

  const handlers = [raw.http_get, raw.exec, raw.tcp].filter((handler) => handler !== undefined)
  if (handlers.length !== 1) {
    report(at, "a probe has exactly one check: http_get, exec or tcp")
    return Either.left(problems)
  }
  let handler: Pick<K8sProbe, "httpGet" | "tcpSocket" | "exec">
  if (raw.http_get !== undefined) {
    const get = raw.http_get
    checkHost(get.host, `${at}.http_get.host`)
    const headers = Object.entries(get.headers ?? {})
      .map(([name, value]) => ({ name, value: resolve(value, `${at}.http_get.${formatPath(["headers", name])}`) }))
      .sort((a, b) => (a.name < b.name ? -1 : 1))
    handler = {
      httpGet: {
        path: resolve(get.path ?? "/", `${at}.http_get.path`),
        port: portOf(get.port, `${at}.http_get.port`),
        scheme: get.scheme === "https" ? "HTTPS" : "HTTP",
        ...(headers.length > 0 && { httpHeaders: headers })
      }
    }
  } else if (raw.tcp !== undefined) {
    checkHost(raw.tcp.host, `${at}.tcp.host`)
    handler = { tcpSocket: { port: portOf(raw.tcp.port, `${at}.tcp.port`) } }
  } else {
    const exec = raw.exec!
    const command = resolve(envAsShell(exec.command), `${at}.exec.command`)
    const dirText = exec.working_dir ?? ctx.workingDir
    const dir =
      dirText === undefined
        ? ctx.appDir
        : path.posix.resolve(
            ctx.appDir,
            resolve(dirText, exec.working_dir === undefined ? "process.compose.working_dir" : `${at}.exec.working_dir`)
          )
    // the command on a line of its own, as written: `cd DIR && a & b` would run b in the image's directory,
    // and a command that is only a comment would be a syntax error
    handler = {
      exec: { command: ["sh", "-c", dir === ctx.appDir ? command : `cd ${shellQuote(dir)} || exit 1\n${command}`] }
    }
  }

  let successThreshold = raw.success_threshold ?? Defaults.probe.successThreshold
  if (options.liveness && successThreshold !== 1) {
    notes.push(`${at}.success_threshold ${successThreshold}: Kubernetes requires 1 for a liveness probe, 1 is used`)
    successThreshold = 1
  }
  const initialDelay = wholeSeconds(raw.initial_delay_seconds ?? 0, 0)
  const probe: K8sProbe = {
    ...handler,
    ...(initialDelay > 0 && { initialDelaySeconds: initialDelay }),
    periodSeconds: wholeSeconds(raw.period_seconds ?? Defaults.probe.periodMs / 1000, 1),
    timeoutSeconds: wholeSeconds(raw.timeout_seconds ?? Defaults.probe.timeoutMs / 1000, 1),
    successThreshold,
    failureThreshold: raw.failure_threshold ?? Defaults.probe.failureThreshold
  }
  return problems.length > 0 ? Either.left(problems) : Either.right({ probe, notes })
}

/**
 * The startup probe that stands for core's readiness timeout: the readiness check, every second, failing the
 * start once `readinessTimeoutSeconds` have passed without success (core probes fast at first too).
 */
export const startupProbe = (readiness: K8sProbe, readinessTimeoutSeconds: number): K8sProbe => {
  const { initialDelaySeconds: _delay, ...check } = readiness
  return {
    ...check,
    periodSeconds: 1,
    timeoutSeconds: readiness.timeoutSeconds,
    successThreshold: 1,
    failureThreshold: wholeSeconds(readinessTimeoutSeconds, 1)
  }
}
