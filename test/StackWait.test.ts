/**
 * `core stack wait` (the verb that Kubernetes init containers run): returns once each named service answers
 * its own readiness probe, aimed at `CORE_HOST_<NAME>` when set; fails after `--timeout` with a message that
 * names the service, the check and its last failure.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { repoRoot } from "./support/DefaultStackCopy.js"
import { eventually } from "./support/Processes.js"
import { fixtureBin, freshPort, tempDir } from "./support/Specs.js"

const cli = join(repoRoot, "dist", "core.cjs")

/** A stack with `web` (an http readiness probe on 127.0.0.3, where nothing listens) and `plain` (no probe). */
const stackWith = (port: number) => {
  const dir = tempDir("core-wait-")
  const service = (name: string, manifest: object) => {
    mkdirSync(join(dir, "services", name), { recursive: true })
    writeFileSync(join(dir, "services", name, "service.json"), JSON.stringify(manifest))
  }
  service("web", {
    process: {
      command: process.execPath,
      args: [fixtureBin("http-server.mjs"), "${port.http}"],
      compose: {
        readiness_probe: { http_get: { host: "127.0.0.3", port: "${port.http}", path: "/ready" }, period_seconds: 1 }
      }
    },
    ports: { http: port }
  })
  service("plain", { process: { command: process.execPath } })
  return dir
}

const wait = (dir: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const run = spawnSync(process.execPath, [cli, "stack", "wait", "--dir", dir, ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", NO_COLOR: "1", ...env }
  })
  return { code: run.status, stderr: run.stderr }
}

const children: Array<ChildProcess> = []
const dirs: Array<string> = []
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill("SIGTERM")
    await eventually(() => child.exitCode !== null || child.signalCode !== null, 5000)
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe("core stack wait", () => {
  it("fails after --timeout naming the service, the check and its last failure", () => {
    const port = freshPort()
    const dir = stackWith(port)
    dirs.push(dir)
    const run = wait(dir, ["web", "--timeout", "1"], { CORE_HOST_WEB: "127.0.0.1" })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`core: web is not ready after 1 s`)
    expect(run.stderr).toContain(`GET http://127.0.0.1:${port}/ready`)
    expect(run.stderr).toContain("ECONNREFUSED")
  })

  it("returns once the service answers at CORE_HOST_<NAME>; a service without a probe is ready at once", async () => {
    const port = freshPort()
    const dir = stackWith(port)
    dirs.push(dir)
    // answers 503 for a while, then 200: the wait must see the 503s and go on
    const server = spawn(process.execPath, [fixtureBin("http-server.mjs"), String(port), "1500"], { stdio: "pipe" })
    children.push(server)
    let out = ""
    server.stdout!.on("data", (chunk) => {
      out += chunk
    })
    expect(await eventually(() => out.includes("listening"), 10_000)).toBe(true)
    const run = wait(dir, ["web", "plain", "--timeout", "60"], { CORE_HOST_WEB: "127.0.0.1" })
    expect(run.stderr).toContain("core: plain: no readiness probe, ready at once")
    expect(run.stderr).toContain(`core: web: waiting for GET http://127.0.0.1:${port}/ready (timeout 60 s)`)
    expect(run.stderr).toMatch(/core: web: ready after \d+\.\d s/)
    expect(run.code).toBe(0)
    // the server said it became ready (read once the synchronous wait has returned)
    expect(await eventually(() => out.includes("\nready"), 30_000)).toBe(true)
  })

  it("without CORE_HOST_<NAME> checks the probe's own host (where nothing listens here)", async () => {
    const port = freshPort()
    const dir = stackWith(port)
    dirs.push(dir)
    const server = spawn(process.execPath, [fixtureBin("http-server.mjs"), String(port)], { stdio: "pipe" })
    children.push(server)
    let out = ""
    server.stdout!.on("data", (chunk) => {
      out += chunk
    })
    expect(await eventually(() => out.includes("listening"), 10_000)).toBe(true)
    const run = wait(dir, ["web", "--timeout", "1"])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`GET http://127.0.0.3:${port}/ready`)
  })

  it("refuses an unknown service before waiting for any", () => {
    const dir = stackWith(freshPort())
    dirs.push(dir)
    const run = wait(dir, ["web", "nope", "--timeout", "30"])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('unknown service "nope" (known: plain, web)')
    expect(run.stderr).not.toContain("waiting for")
  })
})
