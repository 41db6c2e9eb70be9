/**
 * A strict Schema of `fly.toml`, written from flyctl's own configuration structs: `internal/appconfig`
 * (`config.go`, `service.go`, `toplevelcheck.go`) of flyctl v0.4.87 and the `fly-go` v0.9.6 types they embed
 * (`MachineGuest`, `MachinePort`, `TLSOptions`, `HTTPOptions`, `MachineServiceConcurrency`, `Duration`,
 * `MachineAutostop`). Keys are the structs' `toml` tags; an unknown key is an error at every level, as
 * flyctl's `StrictValidate` reports it. Limits that flyctl's `validation.go` checks (check intervals and
 * timeouts, mount sizes and snapshot retention, deploy strategies) are checked too.
 */
import { Schema } from "effect"

const opt = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })
const Int = Schema.Number.pipe(Schema.int())
const Strings = Schema.Array(Schema.String)
const StringMap = Schema.Record({ key: Schema.String, value: Schema.String })

/** Go's `time.ParseDuration` syntax, as `fly.Duration` reads a string. */
const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/
const durationMs = (text: string): number => {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  let total = 0
  for (const [, amount, name] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(amount) * unit[name!]!
  }
  return total
}
/** `fly.Duration`: a Go duration string (a bare number would be nanoseconds: never what is meant). */
const Duration = Schema.String.pipe(Schema.pattern(GO_DURATION, { message: () => 'a Go duration such as "5s"' }))
/** A check duration: flyctl raises below 1 s and lowers above 1 min. */
const CheckDuration = Duration.pipe(
  Schema.filter((d) => (durationMs(d) >= 1000 && durationMs(d) <= 60_000) || "between 1s and 1m")
)
const GracePeriod = Duration.pipe(
  Schema.filter(
    (d) => durationMs(d) === 0 || (durationMs(d) >= 1000 && durationMs(d) <= 60_000) || "0, or between 1s and 1m"
  )
)

/** `MachineAutostop`: a boolean (old form) or "off", "stop", "suspend". */
const Autostop = Schema.Union(Schema.Boolean, Schema.Literal("off", "stop", "suspend"))

const Concurrency = Schema.Struct({
  type: opt(Schema.Literal("connections", "requests")),
  hard_limit: opt(Int),
  soft_limit: opt(Int)
})

const TlsOptions = Schema.Struct({
  alpn: opt(Strings),
  versions: opt(Strings),
  default_self_signed: opt(Schema.Boolean)
})

const HttpOptions = Schema.Struct({
  compress: opt(Schema.Boolean),
  response: opt(
    Schema.Struct({
      headers: opt(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
      pristine: opt(Schema.Boolean)
    })
  ),
  h2_backend: opt(Schema.Boolean),
  idle_timeout: opt(Int),
  headers_read_timeout: opt(Int),
  replay_cache: opt(
    Schema.Array(
      Schema.Struct({
        path_prefix: Schema.String,
        ttl_seconds: Int,
        type: Schema.Literal("cookie", "header"),
        name: Schema.String,
        allow_bypass: opt(Schema.Boolean)
      })
    )
  )
})

const ServiceHttpCheck = Schema.Struct({
  interval: opt(CheckDuration),
  timeout: opt(CheckDuration),
  grace_period: opt(GracePeriod),
  method: opt(Schema.String),
  path: opt(Schema.String),
  protocol: opt(Schema.Literal("http", "https")),
  tls_skip_verify: opt(Schema.Boolean),
  tls_server_name: opt(Schema.String),
  headers: opt(StringMap)
})

const ServiceTcpCheck = Schema.Struct({
  interval: opt(CheckDuration),
  timeout: opt(CheckDuration),
  grace_period: opt(GracePeriod)
})

const MachineCheck = Schema.Struct({
  command: opt(Strings),
  image: opt(Schema.String),
  entrypoint: opt(Strings),
  kill_signal: opt(Schema.String),
  kill_timeout: opt(Duration)
})

const Port = Schema.Number.pipe(Schema.int(), Schema.between(1, 65535))

const MachinePort = Schema.Struct({
  port: opt(Port),
  start_port: opt(Port),
  end_port: opt(Port),
  handlers: opt(Strings),
  force_https: opt(Schema.Boolean),
  tls_options: opt(TlsOptions),
  http_options: opt(HttpOptions),
  proxy_proto_options: opt(Schema.Struct({ version: opt(Schema.String) }))
})

const HttpService = Schema.Struct({
  internal_port: Port,
  force_https: opt(Schema.Boolean),
  auto_stop_machines: opt(Autostop),
  auto_start_machines: opt(Schema.Boolean),
  min_machines_running: opt(Int.pipe(Schema.nonNegative())),
  processes: opt(Strings),
  concurrency: opt(Concurrency),
  tls_options: opt(TlsOptions),
  http_options: opt(HttpOptions),
  checks: opt(Schema.Array(ServiceHttpCheck)),
  machine_checks: opt(Schema.Array(MachineCheck))
})

const Service = Schema.Struct({
  protocol: Schema.Literal("tcp", "udp"),
  internal_port: Port,
  auto_stop_machines: opt(Autostop),
  auto_start_machines: opt(Schema.Boolean),
  min_machines_running: opt(Int.pipe(Schema.nonNegative())),
  ports: opt(Schema.Array(MachinePort)),
  concurrency: opt(Concurrency),
  tcp_checks: opt(Schema.Array(ServiceTcpCheck)),
  http_checks: opt(Schema.Array(ServiceHttpCheck)),
  machine_checks: opt(Schema.Array(MachineCheck)),
  processes: opt(Strings)
})

/** `[checks.NAME]`; flaps wants an interval of 2 s at least and a timeout of 60 s at most. */
const ToplevelCheck = Schema.Struct({
  port: opt(Port),
  type: opt(Schema.Literal("tcp", "http")),
  interval: opt(Duration.pipe(Schema.filter((d) => durationMs(d) >= 2000 || "at least 2s"))),
  timeout: opt(Duration.pipe(Schema.filter((d) => durationMs(d) <= 60_000 || "at most 60s"))),
  grace_period: opt(Duration),
  method: opt(Schema.String),
  path: opt(Schema.String),
  protocol: opt(Schema.Literal("http", "https")),
  tls_skip_verify: opt(Schema.Boolean),
  tls_server_name: opt(Schema.String),
  headers: opt(StringMap),
  processes: opt(Strings)
})

/** A size such as "1gb" or "10GB" (docker's units), at least 1 GB where flyctl checks it. */
const Size = Schema.String.pipe(Schema.pattern(/^\d+\s*(?:[kmgt]i?b?)?$/i, { message: () => "a size such as 1gb" }))

const Mount = Schema.Struct({
  source: Schema.String.pipe(Schema.pattern(/^[a-z0-9_]{1,30}$/, { message: () => "a volume name: a-z, 0-9, _" })),
  destination: Schema.String.pipe(Schema.pattern(/^\/./, { message: () => "an absolute path other than /" })),
  initial_size: opt(Size),
  snapshot_retention: opt(Int.pipe(Schema.between(1, 60))),
  scheduled_snapshots: opt(Schema.Boolean),
  auto_extend_size_threshold: opt(Int.pipe(Schema.between(50, 99))),
  auto_extend_size_increment: opt(Size),
  auto_extend_size_limit: opt(Size),
  processes: opt(Strings)
})

const Build = Schema.Struct({
  builder: opt(Schema.String),
  args: opt(StringMap),
  buildpacks: opt(Strings),
  image: opt(Schema.String),
  settings: opt(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  builtin: opt(Schema.String),
  dockerfile: opt(Schema.String),
  ignorefile: opt(Schema.String),
  "build-target": opt(Schema.String),
  compose: opt(Schema.Struct({ file: opt(Schema.String) })),
  compression: opt(Schema.Literal("gzip", "zstd")),
  compression_level: opt(Int)
})

/** `Compute`: `size`, `memory`, `processes` and the inlined `MachineGuest`. */
const Compute = Schema.Struct({
  size: opt(Schema.String),
  memory: opt(Schema.String),
  cpu_kind: opt(Schema.Literal("shared", "performance")),
  cpus: opt(Int.pipe(Schema.positive())),
  memory_mb: opt(Int.pipe(Schema.positive(), Schema.multipleOf(256))),
  max_memory_mb: opt(Int),
  gpus: opt(Int),
  gpu_kind: opt(Schema.String),
  host_dedication_id: opt(Schema.String),
  persist_rootfs: opt(Schema.Literal("never", "always", "restart")),
  kernel_args: opt(Strings),
  processes: opt(Strings)
})

const Deploy = Schema.Struct({
  strategy: opt(Schema.Literal("canary", "rolling", "immediate", "bluegreen")),
  max_unavailable: opt(Schema.Number),
  wait_timeout: opt(Duration),
  release_command: opt(Schema.String),
  release_command_timeout: opt(Duration),
  release_command_vm: opt(Compute),
  seed_command: opt(Schema.String)
})

const Experimental = Schema.Struct({
  cmd: opt(Strings),
  entrypoint: opt(Strings),
  exec: opt(Strings),
  auto_rollback: opt(Schema.Boolean),
  enable_consul: opt(Schema.Boolean),
  enable_etcd: opt(Schema.Boolean),
  lazy_load_images: opt(Schema.Boolean),
  attached: opt(Schema.Struct({ secrets: opt(Schema.Struct({ export: opt(StringMap) })) })),
  machine_config: opt(Schema.String)
})

const File = Schema.Struct({
  guest_path: Schema.String,
  local_path: opt(Schema.String),
  secret_name: opt(Schema.String),
  raw_value: opt(Schema.String),
  processes: opt(Strings)
})

const Static = Schema.Struct({
  guest_path: Schema.String,
  url_prefix: Schema.String,
  tigris_bucket: opt(Schema.String),
  index_document: opt(Schema.String)
})

const Restart = Schema.Struct({
  policy: opt(Schema.Literal("always", "never", "on-failure")),
  retries: opt(Int),
  processes: opt(Strings)
})

const Metrics = Schema.Struct({
  port: opt(Port),
  path: opt(Schema.String),
  https: opt(Schema.Boolean),
  processes: opt(Strings)
})

/** flyctl's `Config`: every key of `fly.toml`. */
export const FlyConfig = Schema.Struct({
  app: opt(Schema.String),
  primary_region: opt(Schema.String),
  kill_signal: opt(Schema.String.pipe(Schema.pattern(/^SIG[A-Z0-9]+$/))),
  /** A number is read as seconds (flyctl's `patchTopFields`), a string as a Go duration. */
  kill_timeout: opt(Schema.Union(Int.pipe(Schema.positive()), Duration)),
  swap_size_mb: opt(Int),
  console_command: opt(Schema.String),
  experimental: opt(Experimental),
  build: opt(Build),
  deploy: opt(Deploy),
  env: opt(StringMap),
  processes: opt(StringMap),
  mounts: opt(Schema.Array(Mount)),
  http_service: opt(HttpService),
  services: opt(Schema.Array(Service)),
  checks: opt(Schema.Record({ key: Schema.String, value: ToplevelCheck })),
  files: opt(Schema.Array(File)),
  host_dedication_id: opt(Schema.String),
  machine_config: opt(Schema.String),
  container: opt(Schema.String),
  machine_checks: opt(Schema.Array(MachineCheck)),
  restart: opt(Schema.Array(Restart)),
  vm: opt(Schema.Array(Compute)),
  statics: opt(Schema.Array(Static)),
  metrics: opt(Schema.Array(Metrics))
})
export type FlyConfig = typeof FlyConfig.Type

/** Decodes parsed TOML, every unknown key an error. */
export const decodeFlyConfig = Schema.decodeUnknownEither(FlyConfig, { errors: "all", onExcessProperty: "error" })
