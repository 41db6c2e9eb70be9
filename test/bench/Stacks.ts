/**
 * The benchmark stacks: the service program (`svc/main.go`, built once into `.dep/tools/benchsvc`) and stack
 * directories of manifests generated in temp directories. Both orchestrators run the same manifests: core
 * directly, process-compose through the `process-compose.yaml` that `core stack generate` writes.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runOk } from "./Proc.js"

/** The repository root. */
export const repoRoot = path.resolve(import.meta.dirname, "..", "..")

/** The built CLI (`CORE_BENCH_CLI` may name another build, e.g. an older commit's for an A/B). */
export const coreCli = process.env.CORE_BENCH_CLI ?? path.join(repoRoot, "dist", "core.cjs")

/**
 * The command and arguments that run `core ARGS...` as a user does: the built file as a program, as npm links
 * it (its first lines are a shell script, see src/LauncherBuild.ts). A build that is not executable (an older
 * commit's, for an A/B) runs through `node`, as it was run then.
 */
export const coreCommand = (...args: ReadonlyArray<string>): [string, ReadonlyArray<string>] =>
  coreIsProgram ? [coreCli, args] : [process.execPath, [coreCli, ...args]]

const coreIsProgram = ((): boolean => {
  try {
    fs.accessSync(coreCli, fs.constants.X_OK)
    return true
  } catch {
    return false
  }
})()

const svcSource = path.join(import.meta.dirname, "svc", "main.go")
const svcBinary = path.join(repoRoot, ".dep", "tools", "benchsvc")

/**
 * Builds the service program with the machine's `go` unless the binary of this exact source is there already.
 * Returns its path.
 */
export const ensureBenchService = async (): Promise<string> => {
  const source = fs.readFileSync(svcSource)
  const digest = createHash("sha256").update(source).digest("hex")
  const stamp = `${svcBinary}.sha256`
  if (fs.existsSync(svcBinary) && fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8").trim() === digest) {
    return svcBinary
  }
  fs.mkdirSync(path.dirname(svcBinary), { recursive: true })
  const tmp = `${svcBinary}.tmp.${process.pid}`
  try {
    await runOk("go", ["build", "-trimpath", "-ldflags", "-s -w", "-o", tmp, "main.go"], {
      cwd: path.dirname(svcSource),
      env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod" },
      timeoutMs: 300_000
    })
    fs.renameSync(tmp, svcBinary)
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  fs.writeFileSync(stamp, `${digest}\n`)
  return svcBinary
}

/** One service of a generated stack. */
export interface BenchService {
  readonly name: string
  readonly args: ReadonlyArray<string>
  /** Its HTTP port, probed for readiness (`http_get` on `/`, period 1 s, the shortest process-compose has). */
  readonly port?: number
  /** A service that must be healthy before this one starts. */
  readonly dependsOn?: string
  readonly restart?: "no" | "always"
  /** A liveness probe too (the same `http_get`, every second, the shortest process-compose has). */
  readonly liveness?: boolean
}

/** The manifest placeholder of a service's `http` port. */
export const PORT_PLACEHOLDER = "${port.http}"

/** An HTTP service of `svc` ready `readyAfterMs` after its start. */
export const httpService = (
  name: string,
  port: number,
  readyAfterMs: number,
  extra: Partial<Pick<BenchService, "dependsOn" | "restart" | "liveness">> = {}
): BenchService => ({ name, port, args: ["http", PORT_PLACEHOLDER, String(readyAfterMs)], ...extra })

/** Every bench service's grace period after its stop signal (`shutdown.timeout_seconds`), in ms. */
export const SHUTDOWN_TIMEOUT_MS = 5_000

/** The manifest of `service`, running `binary`. */
export const manifestOf = (binary: string, service: BenchService): unknown => {
  const compose: Record<string, unknown> = {
    shutdown: { signal: 15, timeout_seconds: SHUTDOWN_TIMEOUT_MS / 1000 },
    availability:
      service.restart === "always" ? { restart: "always", backoff_seconds: 0, max_restarts: 0 } : { restart: "no" }
  }
  if (service.dependsOn !== undefined) compose.depends_on = { [service.dependsOn]: { condition: "process_healthy" } }
  if (service.port !== undefined) {
    const probe = {
      http_get: { host: "127.0.0.1", port: PORT_PLACEHOLDER, path: "/" },
      period_seconds: 1,
      timeout_seconds: 1
    }
    compose.readiness_probe = probe
    if (service.liveness === true) compose.liveness_probe = probe
  }
  return {
    process: { command: binary, args: service.args, compose },
    ...(service.port !== undefined ? { ports: { http: service.port } } : {})
  }
}

/** A stack directory in a temp directory. */
export interface StackDir {
  readonly dir: string
  readonly services: ReadonlyArray<BenchService>
  /** Removes the directory. */
  readonly remove: () => void
}

/** Writes `services/<name>/service.json` for each service into a new temp directory. */
export const writeStack = (label: string, binary: string, services: ReadonlyArray<BenchService>): StackDir => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `core-bench-${label}-`))
  for (const service of services) {
    const folder = path.join(dir, "services", service.name)
    fs.mkdirSync(folder, { recursive: true })
    fs.writeFileSync(path.join(folder, "service.json"), `${JSON.stringify(manifestOf(binary, service), null, 2)}\n`)
  }
  return { dir, services, remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}
