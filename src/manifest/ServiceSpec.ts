/**
 * A service as the runtime sees it: its manifest loaded, defaults applied and every placeholder resolved.
 * Produced by `StackLoader`, consumed by the supervisor, the compose generator and the library layers.
 */
import type {
  BinarySpec,
  DependencyCondition,
  Deploy,
  RestartPolicy,
  ServiceManifest,
  ServiceName
} from "./ServiceManifest.js"

export type ProbeCheck =
  | {
      readonly _tag: "http_get"
      readonly scheme: "http" | "https"
      readonly host: string
      readonly port: number
      readonly path: string
      readonly headers: Readonly<Record<string, string>>
    }
  | { readonly _tag: "exec"; readonly command: string; readonly workingDir: string }
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number }

/** A readiness or liveness probe with process-compose's defaults applied. Durations in milliseconds. */
export interface ProbeSpec {
  readonly check: ProbeCheck
  /** Grace period: failures inside it do not count, successes do. */
  readonly initialDelayMs: number
  /** Settled interval between checks. */
  readonly periodMs: number
  /** Time one check may take. */
  readonly timeoutMs: number
  readonly successThreshold: number
  readonly failureThreshold: number
}

export interface RestartSpec {
  readonly policy: RestartPolicy
  readonly backoffMs: number
  /** 0 = unlimited. */
  readonly maxRestarts: number
  readonly exponential: boolean
  readonly maxBackoffMs: number
  /** Stop the whole stack when this process ends. */
  readonly exitOnEnd: boolean
}

export interface ShutdownSpec {
  /** Signal name, e.g. `SIGTERM`. */
  readonly signal: NodeJS.Signals
  readonly timeoutMs: number
  /** `sh -c` command run instead of the signal, when set. */
  readonly command: string | undefined
}

export interface ServiceSpec {
  readonly name: ServiceName
  /** Absolute path of the service folder (`${dir}`). */
  readonly dir: string
  /** Absolute path of its service.json, for error messages. */
  readonly manifestPath: string
  readonly description: string | undefined
  /** Absolute path of the executable, or a bare name looked up on PATH. */
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** The process's own variables only (merged over the supervisor's environment at spawn). */
  readonly env: Readonly<Record<string, string>>
  /** Absolute working directory. */
  readonly workingDir: string
  /** Named ports after environment overrides. */
  readonly ports: Readonly<Record<string, number>>
  readonly dependsOn: ReadonlyArray<{ readonly name: ServiceName; readonly condition: DependencyCondition }>
  readonly readiness: ProbeSpec | undefined
  readonly liveness: ProbeSpec | undefined
  /** Source of a regular expression matched against each output line. */
  readonly readyLogLine: string | undefined
  /** How long the start may take before it counts as failed. */
  readonly readinessTimeoutMs: number
  readonly restart: RestartSpec
  readonly shutdown: ShutdownSpec
  readonly disabled: boolean
  readonly binaries: Readonly<Record<string, BinarySpec>>
  /** Deployment hints (`deploy` of the manifest; `public` names one of `ports`). */
  readonly deploy: Deploy
  /** The manifest as written, placeholders unresolved: what the deployment generators read. */
  readonly manifest: ServiceManifest
}

/** Defaults, shared by the loader, the generator and the docs. */
export const Defaults = {
  probe: { initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1_000, successThreshold: 1, failureThreshold: 3 },
  restart: { policy: "no" as RestartPolicy, backoffMs: 1_000, maxRestarts: 0, maxBackoffMs: 60_000 },
  shutdown: { signal: "SIGTERM" as NodeJS.Signals, timeoutMs: 10_000 },
  readinessTimeoutMs: 60_000,
  probeHost: "127.0.0.1"
} as const

/** A loaded stack directory. */
export interface StackSpec {
  /** Absolute stack directory. */
  readonly dir: string
  /** The data directory (`${data}`): `.data` under it unless `--data` or `CORE_DATA_DIR` moved it. */
  readonly dataDir: string
  /** `.dep` under it. */
  readonly depDir: string
  /** `.core-stack` under it. */
  readonly stateDir: string
  /** All services, enabled or not, sorted by name. */
  readonly services: ReadonlyArray<ServiceSpec>
}
