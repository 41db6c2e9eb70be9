/**
 * Building resolved stacks directly (without manifests) for tests.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import type { DependencyCondition, ServiceName } from "../../src/manifest/ServiceManifest.js"
import { Defaults, type ProbeSpec, type ServiceSpec, type StackSpec } from "../../src/manifest/ServiceSpec.js"

export const fixtureBin = (name: string) => resolve(import.meta.dirname, "../fixtures/bin", name)

export const tempDir = (prefix = "core-test-") => mkdtempSync(join(tmpdir(), prefix))

/** Overrides of a resolved service's fields. */
export type ServiceOverrides = Partial<Omit<ServiceSpec, "name">>

/**
 * A service as the loader resolves a manifest with nothing but `process.command` (every default applied),
 * in the stack at `dir`, with `overrides` on top.
 */
export const resolvedService = (name: string, overrides: ServiceOverrides = {}, dir = "/stack"): ServiceSpec => ({
  name: name as ServiceName,
  dir: `${dir}/services/${name}`,
  manifestPath: `${dir}/services/${name}/service.json`,
  description: undefined,
  command: "/usr/bin/true",
  args: [],
  env: {},
  workingDir: dir,
  ports: {},
  dependsOn: [],
  readiness: undefined,
  liveness: undefined,
  readyLogLine: undefined,
  readinessTimeoutMs: Defaults.readinessTimeoutMs,
  restart: { ...Defaults.restart, exponential: false, exitOnEnd: false },
  shutdown: { ...Defaults.shutdown, command: undefined },
  disabled: false,
  binaries: {},
  deploy: {},
  manifest: { process: { command: "/usr/bin/true" } },
  ...overrides
})

type Overrides = Partial<Omit<ServiceSpec, "dependsOn" | "restart" | "shutdown">> & {
  readonly dependsOn?: Record<string, DependencyCondition>
  readonly restart?: Partial<ServiceSpec["restart"]>
  readonly shutdown?: Partial<ServiceSpec["shutdown"]>
}

/** A service for supervisor tests: a real command, a 10 s readiness timeout, a 2 s shutdown timeout. */
export const service = (name: string, command: string, args: ReadonlyArray<string>, o: Overrides = {}): ServiceSpec =>
  resolvedService(name, {
    workingDir: process.cwd(),
    readinessTimeoutMs: 10_000,
    ...o,
    command,
    args,
    dependsOn: Object.entries(o.dependsOn ?? {}).map(([n, condition]) => ({ name: n as ServiceName, condition })),
    restart: { ...Defaults.restart, exponential: false, exitOnEnd: false, ...o.restart },
    shutdown: { ...Defaults.shutdown, command: undefined, timeoutMs: 2_000, ...o.shutdown }
  })

export const httpProbe = (port: number, o: Partial<ProbeSpec> = {}): ProbeSpec => ({
  ...Defaults.probe,
  periodMs: 1_000,
  ...o,
  check: { _tag: "http_get", scheme: "http", host: "127.0.0.1", port, path: "/", headers: {} }
})

/** An exec probe (`sh -c command` in the current directory), checked every second. */
export const execProbe = (command: string, o: Partial<ProbeSpec> = {}): ProbeSpec => ({
  ...Defaults.probe,
  periodMs: 1_000,
  ...o,
  check: { _tag: "exec", command, workingDir: process.cwd() }
})

/** A stack of the given services at `dir`, sorted by name as the loader sorts them. */
export const stackOf = (dir: string, services: ReadonlyArray<ServiceSpec>): StackSpec => ({
  dir,
  dataDir: `${dir}/.data`,
  depDir: `${dir}/.dep`,
  stateDir: `${dir}/.core-stack`,
  services: [...services].sort((a, b) => a.name.localeCompare(b.name))
})

/**
 * Ports for tests: below Linux's ephemeral range (32768+, where outgoing connections take theirs), and in a
 * band of its own per vitest worker, so that test files running at the same time do not collide.
 */
let nextPort = 20000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * 1200 + Math.floor(Math.random() * 1000)
/** A port number that no other test running at the same time uses. */
export const freshPort = () => nextPort++
