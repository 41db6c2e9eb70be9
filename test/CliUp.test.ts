/**
 * `core stack up` as a real child process: the built CLI (dist/core.cjs, made by `npm test`'s build step).
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, existsSync } from "node:fs"
import { join, resolve } from "node:path"
import { eventually, processesMentioning } from "./support/Processes.js"
import { freshPort, tempDir } from "./support/Specs.js"

const cli = resolve(import.meta.dirname, "../dist/core.cjs")
const fixtureStack = resolve(import.meta.dirname, "fixtures/stack")
const fixtureBin = resolve(import.meta.dirname, "fixtures/bin")

interface Running {
  readonly child: ChildProcess
  readonly dir: string
  output: string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const running: Array<Running> = []

/** A copy of the fixture stack in a temp dir (`<tmp>/stack`, scripts in `<tmp>/bin`). */
const fixtureCopy = () => {
  const root = tempDir("core-cli-")
  const dir = join(root, "stack")
  cpSync(join(fixtureStack, "services"), join(dir, "services"), { recursive: true })
  cpSync(fixtureBin, join(root, "bin"), { recursive: true })
  return dir
}

const portEnv = () => ({
  CORE_PORT_DB_HTTP: String(freshPort()),
  CORE_PORT_API_HTTP: String(freshPort()),
  CORE_PORT_WEB_HTTP: String(freshPort())
})

const runCore = (args: ReadonlyArray<string>, dir: string, env: Record<string, string> = {}): Running => {
  const child = spawn(process.execPath, [cli, ...args, "--dir", dir], {
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const run: Running = {
    child,
    dir,
    output: "",
    exited: new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })))
  }
  child.stdout!.on("data", (b) => (run.output += b))
  child.stderr!.on("data", (b) => (run.output += b))
  running.push(run)
  return run
}

afterEach(() => {
  for (const run of running.splice(0)) run.child.kill("SIGKILL")
})

describe("core stack up (foreground)", () => {
  it("starts the stack in order, prints name | line, and exits 0 on SIGINT leaving nothing", async () => {
    const dir = fixtureCopy()
    const run = runCore(["stack", "up"], dir, portEnv())
    expect(await eventually(() => run.output.includes("service(s) ready"), 30_000)).toBe(true)
    expect(run.output).toMatch(/db\s+\| listening on \d+/)
    // a service's own lines reach the output as they come, and may follow the ready line (seen once in CI)
    expect(await eventually(() => /web\s+\| listening on \d+/.test(run.output))).toBe(true)
    expect(run.output.indexOf("db   | [core] ready")).toBeLessThan(run.output.indexOf("api  | [core] starting"))
    expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(3)
    run.child.kill("SIGINT")
    const exit = await run.exited
    expect(exit).toEqual({ code: 0, signal: null })
    expect(processesMentioning(dir)).toEqual([])
    expect(existsSync(join(dir, ".core-stack", "logs", "db.log"))).toBe(true)
  })

  it("exits 0 on SIGTERM too", async () => {
    const dir = fixtureCopy()
    const run = runCore(["stack", "up", "db"], dir, portEnv())
    expect(await eventually(() => run.output.includes("service(s) ready"), 30_000)).toBe(true)
    expect(run.output).not.toContain("web ")
    run.child.kill("SIGTERM")
    expect((await run.exited).code).toBe(0)
    expect(processesMentioning(dir)).toEqual([])
  })

  it("a second Ctrl-C kills every group at once", async () => {
    const dir = fixtureCopy()
    cpSync(join(fixtureBin, "ignore-term.sh"), join(dir, "stubborn.sh"))
    const { mkdirSync, writeFileSync } = await import("node:fs")
    mkdirSync(join(dir, "services", "stubborn"))
    writeFileSync(
      join(dir, "services", "stubborn", "service.json"),
      JSON.stringify({
        process: {
          command: "${dir}/../../stubborn.sh",
          compose: { shutdown: { timeout_seconds: 60 } }
        }
      })
    )
    const run = runCore(["stack", "up", "stubborn"], dir)
    expect(await eventually(() => run.output.includes("service(s) ready"), 30_000)).toBe(true)
    run.child.kill("SIGINT")
    await new Promise((r) => setTimeout(r, 300))
    expect(processesMentioning(dir).length).toBeGreaterThan(0)
    run.child.kill("SIGINT")
    const exit = await run.exited
    expect(exit.code).toBe(130)
    expect(await eventually(() => processesMentioning(dir).length === 0, 10_000)).toBe(true)
  })

  it("a stack that fails to start exits non-zero with the reason and leaves nothing", async () => {
    const { writeFileSync } = await import("node:fs")
    const broken = fixtureCopy()
    writeFileSync(
      join(broken, "services", "db", "service.json"),
      JSON.stringify({
        process: {
          command: "sh",
          args: ["-c", "echo db is broken >&2; exit 7"],
          compose: { readiness_probe: { tcp: { port: "${port.http}" } } }
        },
        ports: { http: 18481 }
      })
    )
    const failing = runCore(["stack", "up"], broken, portEnv())
    const exit = await failing.exited
    expect(exit.code).not.toBe(0)
    expect(failing.output).toContain("db failed to start")
    expect(failing.output).toContain("exited with code 7")
    expect(failing.output).toContain("db is broken")
    expect(failing.output).not.toMatch(/\n\s+at /)
    expect(processesMentioning(broken)).toEqual([])
  })

  it("a service that ends the stack (exit_on_failure, exit_on_end) gives it its exit code, up and run alike", async () => {
    const { mkdirSync, rmSync, writeFileSync } = await import("node:fs")
    const dir = tempDir("core-cli-exit-")
    const manifest = (name: string, value: unknown) => {
      mkdirSync(join(dir, "services", name), { recursive: true })
      writeFileSync(join(dir, "services", name, "service.json"), JSON.stringify(value))
    }
    // `fails` ends the stack once `other` is running; `other` is stopped with it
    manifest("other", { process: { command: "sh", args: ["-c", `echo other up; exec sleep 600 # ${dir}`] } })
    manifest("fails", {
      process: {
        command: "sh",
        args: ["-c", `until [ -e ${dir}/go ]; do sleep 0.02; done; echo fails now >&2; exit 4`],
        compose: {
          availability: { restart: "exit_on_failure" },
          depends_on: { other: { condition: "process_started" } }
        }
      }
    })
    for (const args of [
      ["stack", "up"],
      ["fails", "run"]
    ]) {
      const run = runCore(args, dir)
      expect(await eventually(() => run.output.includes("ready in"))).toBe(true)
      writeFileSync(join(dir, "go"), "")
      const exit = await run.exited
      expect(run.output, args.join(" ")).toContain("stopping the stack: fails exited with code 4")
      expect(exit.code, `${args.join(" ")}: ${run.output}`).toBe(4)
      expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true)
      rmSync(join(dir, "go"))
    }
    // exit_on_end with a clean exit: 0
    manifest("fails", {
      process: {
        command: "sh",
        args: ["-c", `until [ -e ${dir}/go ]; do sleep 0.02; done; exit 0`],
        compose: { availability: { exit_on_end: true } }
      }
    })
    const run = runCore(["stack", "up"], dir)
    expect(await eventually(() => run.output.includes("ready in"))).toBe(true)
    writeFileSync(join(dir, "go"), "")
    expect((await run.exited).code, run.output).toBe(0)
    expect(run.output).toContain("stopping the stack: fails")
    // exit_on_failure, a run that exits 0 before its readiness check passed: a failure, so not 0
    rmSync(join(dir, "go"))
    manifest("fails", {
      process: {
        command: "sh",
        args: ["-c", "sleep 0.3; exit 0"],
        compose: {
          availability: { restart: "exit_on_failure" },
          readiness_probe: { tcp: { host: "127.0.0.1", port: String(freshPort()) } }
        }
      }
    })
    const early = runCore(["stack", "up"], dir)
    expect((await early.exited).code, early.output).toBe(1)
    expect(early.output).toContain("exited with code 0 before it was ready")
  }, 60_000)
})
