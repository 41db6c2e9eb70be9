import { execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { readySummary } from "../src/cli/Foreground.js"
import { eventually, processesMentioning } from "./support/Processes.js"

const cli = path.resolve(import.meta.dirname, "..", "dist", "core.cjs")

const runCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env } }, (error, _stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr })
    )
  })

describe("CORE_TRACE", () => {
  it("prints the start's phases in time order when set, nothing when not", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "core-trace-"))
    try {
      const traced = await runCli(["stack", "status", "--dir", dir], { CORE_TRACE: "1" })
      const lines = traced.stderr.split("\n").filter((l) => l.startsWith("core trace "))
      const phases = lines.map((l) => /ms {2}cli +(.*) {2}@/.exec(l)?.[1])
      expect(phases[0]).toBe("node started, launcher running")
      expect(phases[1]).toMatch(/^bundle compiled \(code cache (absent|rejected|used)\)$/)
      expect(phases).toContain("bundle evaluated")
      expect(phases.at(-1)).toBe("exit")
      const times = lines.map((l) => Number(/\+([\d.]+) ms/.exec(l)?.[1]))
      expect(times).toEqual([...times].sort((a, b) => a - b))
      const plain = await runCli(["stack", "status", "--dir", dir], { CORE_TRACE: "" })
      expect(plain.code).toBe(traced.code)
      expect(plain.stderr).not.toContain("core trace")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("the start's order, traced", () => {
  /** The phases of a foreground `up` of `count` services that run until stopped, in time order. */
  const phasesOfUp = async (count: number, env: NodeJS.ProcessEnv = {}): Promise<ReadonlyArray<string>> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "core-trace-order-"))
    try {
      for (let i = 0; i < count; i++) {
        fs.mkdirSync(path.join(dir, "services", `s${i}`), { recursive: true })
        fs.writeFileSync(
          path.join(dir, "services", `s${i}`, "service.json"),
          JSON.stringify({ process: { command: "sh", args: ["-c", "echo up; sleep 300; :", dir] } })
        )
      }
      const child = spawn(process.execPath, [cli, "stack", "up", "--dir", dir], {
        env: { ...process.env, CORE_TRACE: "1", NO_COLOR: "1", ...env },
        stdio: ["ignore", "ignore", "pipe"]
      })
      let stderr = ""
      child.stderr.on("data", (b: Buffer) => {
        stderr += b.toString()
        if (/service\(s\) ready in/.test(stderr)) child.kill("SIGINT")
      })
      await new Promise((resolve) => child.once("close", resolve))
      expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true)
      const lines = stderr.split("\n").filter((l) => l.startsWith("core trace "))
      return lines
        .map((l) => ({ at: Number(/\+([\d.]+) ms/.exec(l)?.[1]), phase: /ms {2}\S+ +(.*) {2}@/.exec(l)?.[1] ?? "" }))
        .sort((a, b) => a.at - b.at)
        .map((p) => p.phase)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  it("spawns while the control socket is being served; with Node's spawn(), serves it first for many", async () => {
    const first = (phases: ReadonlyArray<string>, count: number) =>
      phases.indexOf(`spawn() of a process group: first of ${count}`)
    const few = await phasesOfUp(2)
    expect(first(few, 2)).toBeGreaterThan(-1)
    expect(first(few, 2)).toBeLessThan(few.indexOf("control socket served"))
    // through the spawner helper, spawning does not hold the supervisor's thread: many go first too
    const many = await phasesOfUp(12)
    expect(first(many, 12)).toBeGreaterThan(-1)
    expect(first(many, 12)).toBeLessThan(many.indexOf("control socket served"))
    const manyByNode = await phasesOfUp(12, { CORE_SPAWNER: "node" })
    expect(manyByNode.indexOf("control socket served")).toBeGreaterThan(-1)
    expect(manyByNode.indexOf("control socket served")).toBeLessThan(first(manyByNode, 12))
  })
})

describe("readySummary", () => {
  it("says provisioning and start apart", () => {
    expect(readySummary({ started: ["a", "b", "c"], readyMs: 170184, provisionMs: 169772 })).toBe(
      "3 service(s) ready in 170184 ms (provisioning 169772 ms, start 412 ms)"
    )
  })
})
