/**
 * The Schema of `services/<name>/service.json`.
 *
 * This is the manifest as written: strings may still hold placeholders (`${port.http}`), so fields that
 * end up numeric after resolution (probe ports) accept a number or a string here. `ServiceSpec` is the
 * resolved form the runtime works with.
 *
 * Unknown keys are an error everywhere, except keys starting with `x-` (free for users' own notes).
 */
import { Schema } from "effect"
import safeRegex from "safe-regex2"

/** A struct whose unknown keys are rejected, except `x-*` extension keys. */
const strict = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields, Schema.Record({ key: Schema.TemplateLiteral("x-", Schema.String), value: Schema.Unknown }))

/** An optional key that, when present, must hold a value (JSON has no `undefined`). */
const opt = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const NonNegative = Schema.Number.pipe(Schema.nonNegative())
const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive())

/**
 * Text handed to the kernel (an argument, an environment value, a path): no NUL byte, which it cannot take,
 * and at most 128 KiB, its limit for one argument or variable (a longer one fails the spawn with E2BIG).
 */
const OsText = Schema.String.pipe(
  Schema.filter((s) => !s.includes("\0") || "text without a NUL byte (a process cannot receive one)"),
  Schema.maxLength(128 * 1024 - 1, {
    message: () => "at most 128 KiB (the kernel's limit for one argument or environment value)"
  })
).annotations({ description: "a string" })

/** An environment variable's name: not empty, without `=` or a NUL byte. */
const EnvName = Schema.String.pipe(Schema.pattern(/^[^=\0]+$/)).annotations({
  description: "an environment variable name: not empty, without '=' or a NUL byte"
})

const EnvMap = Schema.Record({ key: EnvName, value: OsText })

/** A TCP port number, 1..65535. */
export const PortNumber = Schema.Number.pipe(
  Schema.finite({ message: () => "a port number between 1 and 65535" }),
  Schema.int(),
  Schema.between(1, 65535, { message: () => "a port number between 1 and 65535" })
)

/** A port written as a number or as a string holding a placeholder such as `${port.http}`. */
export const PortRef = Schema.Union(PortNumber, Schema.String)

/** Service names: lowercase letters, digits, `-` and `_`, starting with a letter. Also the folder name. */
export const ServiceName = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9_-]*$/, {
    message: () => "a service name: lowercase letters, digits, '-' or '_', starting with a letter"
  }),
  Schema.brand("ServiceName")
)
export type ServiceName = typeof ServiceName.Type

// ---------------------------------------------------------------------------------------------
// binaries

/** `download`: an official release archive. `${version}`, `${os}`, `${arch}` are expanded in `url`. */
export const DownloadSource = strict({
  /** URL template, e.g. `https://example.org/v${version}/tool-${os}-${arch}.tar.gz`. */
  url: Schema.String,
  /** `tar.gz` or `zip`; default: guessed from the URL. `raw` is the binary itself. */
  format: opt(Schema.Literal("tar.gz", "zip", "raw")),
  /** Path of the member to extract, templated like `url`; default: the binary's name anywhere in the archive. */
  member: opt(Schema.String),
  /** sha256 of the archive per platform, keyed `${os}-${arch}` (e.g. `linux-amd64`). Required. */
  sha256: Schema.Record({
    key: Schema.String,
    value: Schema.String.pipe(
      Schema.pattern(/^[0-9a-f]{64}$/, { message: () => "a sha256 digest: 64 lowercase hexadecimal digits" })
    )
  }),
  /** How the release names an OS where it differs from ours, e.g. `{ "darwin": "mac" }`; used for `${os}` in `url` and `member`. */
  os_names: opt(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** How the release names an architecture where it differs from ours (`amd64`, `arm64`), e.g. `{ "amd64": "x86_64" }`. */
  arch_names: opt(Schema.Record({ key: Schema.String, value: Schema.String }))
})
export type DownloadSource = typeof DownloadSource.Type

/** `build`: `go build` a module at a version (`module`), or a Go main in the service folder (`main`). */
export const BuildSource = strict({
  /** Go package path to build, e.g. `github.com/nats-io/nats-server/v2`; versioned by the binary's `version`. */
  module: opt(
    Schema.String.pipe(Schema.pattern(/^[^\s-]\S*$/)).annotations({
      description: "a Go package path: no spaces, not starting with '-' (go would read it as a flag)"
    })
  ),
  /** A Go main package inside the service folder, relative to it (e.g. `.`); built with its own go.mod. */
  main: opt(
    Schema.String.pipe(Schema.pattern(/^[^-]/)).annotations({
      description: "a folder of the service, not starting with '-' (go would read it as a flag)"
    })
  ),
  /** Extra `go build` flags, e.g. `["-tags", "nobadger"]`. */
  flags: opt(Schema.Array(Schema.String)),
  /** Extra environment for `go`, e.g. `{ "CGO_ENABLED": "0" }`. */
  env: opt(Schema.Record({ key: Schema.String, value: Schema.String }))
})
export type BuildSource = typeof BuildSource.Type

/** `path`: a command already on PATH, accepted when `version_args` output contains the version. */
export const PathSource = strict({
  /** Command name to look up on PATH; default: the binary's name. */
  command: opt(Schema.String),
  /** Arguments that print the version, e.g. `["--version"]`; without them any version is accepted. */
  version_args: opt(Schema.Array(Schema.String))
})
export type PathSource = typeof PathSource.Type

/**
 * A binary's name, which is also its file name in `.dep` (`.dep/NAME`, `.dep/NAME.json`): letters, digits, `.`,
 * `-`, `_` and `+`, starting with a letter or digit, with no `..`, at most 100 characters. Anything else (a `/`,
 * a leading `.`) could name a file outside `.dep`.
 */
export const BinaryName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9](?:[A-Za-z0-9_+-]|\.(?!\.))*$/),
  Schema.maxLength(100)
).annotations({
  description:
    "a binary name: letters, digits, '.', '-', '_' or '+', starting with a letter or digit, without '..', at most 100 characters"
})

/** A binary the service needs, provisioned into `.dep/<name>`. Sources are tried in the order below. */
export const BinarySpec = strict({
  /** Pinned version, without a leading `v` (e.g. `2.11.4`). */
  version: Schema.String.pipe(Schema.pattern(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,99}$/)).annotations({
    description:
      "a version: letters, digits, '.', '+', '_' or '-', starting with a letter or digit, at most 100 characters (e.g. 2.11.4)"
  }),
  path: opt(PathSource),
  download: opt(DownloadSource),
  build: opt(BuildSource)
})
export type BinarySpec = typeof BinarySpec.Type

// ---------------------------------------------------------------------------------------------
// probes (process-compose's fields and defaults, plus `tcp`)

/** A host name or address: no spaces or control characters. */
const Host = Schema.String.pipe(
  Schema.pattern(/^[^\s\x00-\x1f\x7f]+$/, {
    message: () => "a host name or address, without spaces or control characters"
  })
)

export const HttpGetProbe = strict({
  host: opt(Host),
  scheme: opt(Schema.Literal("http", "https")),
  /** The request path: starts with `/`; no spaces or control characters (they cannot go in a request line). */
  path: opt(
    Schema.String.pipe(
      Schema.pattern(/^\/[^\s\x00-\x1f\x7f]*$/, {
        message: () => "a URL path starting with '/', without spaces or control characters (encode them, e.g. %20)"
      })
    )
  ),
  port: PortRef,
  headers: opt(
    Schema.Record({
      key: Schema.String.pipe(
        Schema.pattern(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, {
          message: () => "an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)"
        })
      ),
      value: Schema.String.pipe(
        Schema.pattern(/^[^\r\n\0]*$/, { message: () => "an HTTP header value without CR, LF or NUL" })
      )
    })
  )
})

export const ExecProbe = strict({
  /** Run with `sh -c`, as process-compose does. */
  command: OsText,
  working_dir: opt(OsText)
})

/** An addition to process-compose: ready when a TCP connection is accepted. */
export const TcpProbe = strict({
  host: opt(Host),
  port: PortRef
})

export const Probe = strict({
  http_get: opt(HttpGetProbe),
  exec: opt(ExecProbe),
  tcp: opt(TcpProbe),
  /** Grace period in seconds: failures inside it do not count, successes do. Default 0. */
  initial_delay_seconds: opt(NonNegative),
  /** Seconds between checks once settled. Default 10. Probing starts fast and slows down to this. */
  period_seconds: opt(NonNegative),
  /** Seconds one check may take. Default 1. */
  timeout_seconds: opt(NonNegative),
  /** Consecutive successes to count as healthy. Default 1. */
  success_threshold: opt(PositiveInt),
  /** Consecutive failures to count as unhealthy. Default 3. */
  failure_threshold: opt(PositiveInt)
})
export type Probe = typeof Probe.Type

// ---------------------------------------------------------------------------------------------
// process-compose keys

export const DependencyCondition = Schema.Literal(
  "process_started",
  "process_healthy",
  "process_log_ready",
  "process_completed",
  "process_completed_successfully"
)
export type DependencyCondition = typeof DependencyCondition.Type

export const DependsOn = Schema.Record({
  key: Schema.String,
  value: strict({ condition: opt(DependencyCondition) })
})

export const RestartPolicy = Schema.Literal("no", "on_failure", "always", "exit_on_failure")
export type RestartPolicy = typeof RestartPolicy.Type

export const Availability = strict({
  /** Default `no`. */
  restart: opt(RestartPolicy),
  /** Seconds before a restart. Default 1. */
  backoff_seconds: opt(NonNegative),
  /** Restarts allowed; 0 means unlimited (process-compose's meaning). Default 0. */
  max_restarts: opt(Schema.Number.pipe(Schema.int(), Schema.nonNegative())),
  /** Stop the whole stack when this process ends (process-compose's `exit_on_end`). */
  exit_on_end: opt(Schema.Boolean),
  /** An addition: double the backoff after each consecutive restart, up to `max_backoff_seconds`. */
  backoff_exponential: opt(Schema.Boolean),
  /** Cap of the exponential backoff in seconds. Default 60. */
  max_backoff_seconds: opt(NonNegative)
})

/** A signal by number (process-compose's form, e.g. 15) or by name (`SIGTERM`, `TERM`). */
export const SignalRef = Schema.Union(Schema.Number.pipe(Schema.int(), Schema.between(1, 64)), Schema.String)

export const Shutdown = strict({
  /** Signal sent to the process group. Default SIGTERM. */
  signal: opt(SignalRef),
  /** Seconds to wait after the signal before SIGKILL to the group. Default 10. */
  timeout_seconds: opt(NonNegative),
  /** A command (`sh -c`) run to stop the process instead of the signal; still escalates to SIGKILL. */
  command: opt(OsText)
})

const ReadyLogLine = Schema.String.pipe(
  Schema.filter((pattern) => {
    try {
      new RegExp(pattern)
    } catch (error) {
      return `a regular expression: ${error instanceof Error ? error.message : String(error)}`
    }
    return (
      safeRegex(pattern) ||
      "a regular expression without nested quantifiers such as (a+)+, which can backtrack catastrophically"
    )
  })
)

export const Compose = strict({
  depends_on: opt(DependsOn),
  readiness_probe: opt(Probe),
  liveness_probe: opt(Probe),
  /**
   * A regular expression; the service is log-ready when a line of its output matches. Patterns that can
   * backtrack catastrophically (nested quantifiers such as `(a+)+`, checked with safe-regex2) are refused: one
   * output line could pin the supervisor's CPU.
   */
  ready_log_line: opt(ReadyLogLine),
  availability: opt(Availability),
  shutdown: opt(Shutdown),
  disabled: opt(Schema.Boolean),
  /** Working directory of the process; default: the stack directory. Placeholders allowed. */
  working_dir: opt(OsText),
  description: opt(Schema.String),
  /** An addition: seconds to wait for readiness before the start counts as failed. Default 60. */
  readiness_timeout_seconds: opt(NonNegative)
})
export type Compose = typeof Compose.Type

export const ProcessSection = strict({
  /** One executable, looked up on PATH unless it contains a `/`. No shell. */
  command: OsText,
  args: opt(Schema.Array(OsText)),
  env: opt(EnvMap),
  compose: opt(Compose)
})

// ---------------------------------------------------------------------------------------------
// deployment hints (`core deploy fly`, `core deploy k8s`)

/** How the service is deployed: its public entry and sizing hints. Ignored by `core stack up`. */
export const Deploy = strict({
  /**
   * Name of one of this service's `ports`: the stack's public entry, the one port a deployment exposes
   * (at most one service of a stack declares it). This service's `${bind}` follows `CORE_PUBLIC_BIND`.
   */
  public: opt(Schema.String),
  /** Memory hint in MiB (Fly `[[vm]] memory_mb`, Kubernetes `requests.memory`). */
  memory_mb: opt(PositiveInt),
  /** CPU hint (Fly `[[vm]] cpus`, Kubernetes `requests.cpu`). */
  cpus: opt(Schema.Number.pipe(Schema.positive())),
  /** The service can run with a read-only root filesystem (Kubernetes `readOnlyRootFilesystem`). */
  read_only_root: opt(Schema.Boolean)
})
export type Deploy = typeof Deploy.Type

/**
 * A port's name: it goes into `${port.NAME}` and `${svc.S.port.NAME}` (no '.'), `CORE_PORT_<SERVICE>_<NAME>`,
 * the process-compose file, fly.toml and Kubernetes objects, so only these characters (a newline in one was
 * written into a fly.toml comment, and made the next line a table of its own).
 */
export const PortName = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]+$/), Schema.maxLength(63)).annotations({
  description: "a port name: letters, digits, '-' or '_', at most 63 characters"
})

/** A whole `service.json`. */
export const ServiceManifest = strict({
  $schema: opt(Schema.String),
  description: opt(Schema.String),
  /** Executables the service needs, keyed by `BinaryName`; `${dep.NAME}` is the path of one. */
  binaries: opt(Schema.Record({ key: BinaryName, value: BinarySpec })),
  process: ProcessSection,
  /** Named ports, e.g. `{ "client": 4222 }`. Each may be overridden by `CORE_PORT_<SERVICE>_<NAME>`. */
  ports: opt(Schema.Record({ key: PortName, value: PortNumber })),
  /** Deployment hints: see `Deploy`. */
  deploy: opt(Deploy)
})
export type ServiceManifest = typeof ServiceManifest.Type
