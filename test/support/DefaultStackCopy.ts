/**
 * The default stack (this repository's `services/`) copied into a temp directory, on fresh ports, running the
 * binaries provisioned in this repository's `.dep/`: end-to-end tests never touch a developer's `.data/`,
 * `.core-stack/` or default ports, and build nothing.
 */
import { execFileSync } from "node:child_process"
import { accessSync, constants, cpSync, statSync } from "node:fs"
import { join, resolve } from "node:path"
import { overrideVariable } from "../../src/provision/Platform.js"
import { freshPort, tempDir } from "./Specs.js"

/** The repository root, whose `.dep/` holds the provisioned binaries. */
export const repoRoot = resolve(import.meta.dirname, "../..")

/** The binaries of the default stack, as its manifests name them. */
export const defaultBinaries = ["nats-server", "pocketbase", "caddy"] as const

const isExecutableFile = (file: string) => {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/** The default stack's binaries that the repository's `.dep/` lacks (`core stack provision` puts them there). */
export const missingBinaries = (): ReadonlyArray<string> =>
  defaultBinaries.filter((name) => !isExecutableFile(join(repoRoot, ".dep", name)))

/** True when running in CI (`CI` set to anything but empty, `0` or `false`). */
export const inCi = (): boolean => {
  const ci = process.env.CI
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false"
}

/** A temp copy of the default stack and the environment that runs it there. */
export interface DefaultStackCopy {
  /** The stack directory (`services/` copied in; `.dep/` and `.data/` made by the runtime). */
  readonly dir: string
  /** `${data}` of the stack. */
  readonly dataDir: string
  readonly ports: {
    readonly natsClient: number
    readonly natsMonitor: number
    readonly pocketbaseHttp: number
    readonly caddyHttp: number
    readonly caddyAdmin: number
  }
  /**
   * `CORE_DIR` (read by the typed layers), a `CORE_PORT_*` per port and a `CORE_BIN_*` per binary pointing at
   * the repository's `.dep/`.
   */
  readonly env: Readonly<Record<string, string>>
}

/** Copies `services/` into a fresh temp directory and picks fresh ports for it. */
export const defaultStackCopy = (): DefaultStackCopy => {
  const dir = tempDir("core-e2e-")
  cpSync(join(repoRoot, "services"), join(dir, "services"), { recursive: true })
  const ports = {
    natsClient: freshPort(),
    natsMonitor: freshPort(),
    pocketbaseHttp: freshPort(),
    caddyHttp: freshPort(),
    caddyAdmin: freshPort()
  }
  const env: Record<string, string> = {
    CORE_DIR: dir,
    CORE_PORT_NATS_CLIENT: String(ports.natsClient),
    CORE_PORT_NATS_MONITOR: String(ports.natsMonitor),
    CORE_PORT_POCKETBASE_HTTP: String(ports.pocketbaseHttp),
    CORE_PORT_CADDY_HTTP: String(ports.caddyHttp),
    CORE_PORT_CADDY_ADMIN: String(ports.caddyAdmin)
  }
  for (const name of defaultBinaries) env[overrideVariable(name)] = join(repoRoot, ".dep", name)
  return { dir, dataDir: join(dir, ".data"), ports, env }
}

/**
 * Creates (or updates) a PocketBase superuser in the copy's data directory with our build's own CLI
 * (`pocketbase superuser upsert`), before the stack starts PocketBase. Its first run also migrates the data.
 */
export const upsertSuperuser = (copy: DefaultStackCopy, email: string, password: string): void => {
  execFileSync(
    join(repoRoot, ".dep", "pocketbase"),
    ["superuser", "upsert", email, password, "--dir", join(copy.dataDir, "pocketbase")],
    {
      stdio: "pipe",
      timeout: 60_000,
      env: { ...process.env, NATS_URL: `nats://127.0.0.1:${copy.ports.natsClient}` }
    }
  )
}
