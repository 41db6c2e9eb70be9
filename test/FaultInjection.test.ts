/**
 * Fault injection: `kill -9` of the background supervisor (`core stack up -d`) at random moments of start,
 * restart and stop, in a stack with exec probes (readiness and liveness), a hanging shutdown command and one
 * that backgrounds a child, and a service that forks. After each kill, the guardian and the next command
 * (`core stack down`) must leave nothing running: no service, grandchild, probe, shutdown command or guardian.
 *
 * Every process of a run is found by a marker in its environment (set on the `up -d` client, inherited by
 * everything below it). 30 runs from a fixed seed (FAULT_SEED, FAULT_RUNS to change).
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { eventually, processesWithEnv } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const cli = resolve(import.meta.dirname, "../dist/core.cjs")
const RUNS = Number(process.env["FAULT_RUNS"] ?? 30)
const SEED = Number(process.env["FAULT_SEED"] ?? 20261201)
const MARKER = "CORE_FAULT_MARKER"

const json = (value: unknown) => JSON.stringify(value, null, 2)

const writeStack = (dir: string) => {
  const write = (name: string, manifest: unknown) => {
    mkdirSync(join(dir, "services", name), { recursive: true })
    writeFileSync(join(dir, "services", name, "service.json"), json(manifest))
  }
  write("db", {
    process: {
      command: "sh",
      args: ["-c", "sleep 300 & echo db up; exec sleep 300"],
      compose: {
        ready_log_line: "db up",
        readiness_probe: { exec: { command: "sleep 0.2" }, period_seconds: 1 },
        shutdown: { command: "sleep 300", timeout_seconds: 1 },
        readiness_timeout_seconds: 20
      }
    }
  })
  write("api", {
    process: {
      command: "sh",
      args: ["-c", "exec sleep 300"],
      compose: {
        depends_on: { db: { condition: "process_healthy" } },
        readiness_probe: { exec: { command: "sleep 0.3" }, period_seconds: 1 },
        liveness_probe: { exec: { command: "sleep 0.5" }, period_seconds: 1 },
        availability: { restart: "on_failure", backoff_seconds: 0.5 },
        shutdown: { command: "sleep 300 & sleep 0.2", timeout_seconds: 1 },
        readiness_timeout_seconds: 20
      }
    }
  })
}

interface Run {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  output: string
}

const runCli = (args: ReadonlyArray<string>, marker: string): Run => {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { PATH: process.env["PATH"], NO_COLOR: "1", [MARKER]: marker },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const run: Run = { child, exited: new Promise((done) => child.on("close", (code) => done(code))), output: "" }
  child.stdout!.on("data", (b: Buffer) => {
    run.output += b.toString()
  })
  child.stderr!.on("data", (b: Buffer) => {
    run.output += b.toString()
  })
  return run
}

/** The background supervisor of `dir`: `stack up --dir <dir>` without `-d`. */
const supervisorOf = (marker: string) =>
  processesWithEnv(MARKER, marker).filter((p) => /core\.cjs stack up --dir /.test(p.cmdline))

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Waits for the run to end; SIGKILLs it after `ms` (a failure of the property). */
const ended = async (run: Run, ms: number, what: string) => {
  const timer = setTimeout(() => run.child.kill("SIGKILL"), ms)
  const code = await run.exited
  clearTimeout(timer)
  if (code === null) throw new Error(`${what} did not end within ${ms} ms:\n${run.output}`)
  return code
}

type Phase = "start" | "restart" | "stop"

const scenario = fc.record({
  phase: fc.constantFrom<Phase>("start", "restart", "stop"),
  delayMs: fc.integer({ min: 0, max: 2500 })
})

describe("kill -9 of the background supervisor", () => {
  it(`at ${RUNS} random moments of start, restart and stop leaves nothing running`, async () => {
    const byGuardian: Array<string> = []
    const byNextCommand: Array<string> = []
    await fc.assert(
      fc.asyncProperty(scenario, async ({ phase, delayMs }) => {
        const dir = tempDir("core-fault-")
        writeStack(dir)
        const marker = dir
        const everything = () => processesWithEnv(MARKER, marker)
        try {
          const up = runCli(["stack", "up", "-d", "--dir", dir], marker)
          let other: Run | undefined
          if (phase !== "start") {
            const code = await ended(up, 60_000, "up -d")
            if (code !== 0) throw new Error(`up -d failed:\n${up.output}`)
            other = runCli(
              phase === "restart"
                ? ["stack", "process", "restart", "api", "--dir", dir]
                : ["stack", "down", "--dir", dir],
              marker
            )
          }
          // wait for the supervisor to exist, then let the phase run for delayMs
          await eventually(() => supervisorOf(marker).length > 0, 20_000, 5)
          await sleep(delayMs)
          const supervisors = supervisorOf(marker)
          for (const s of supervisors) process.kill(s.pid, "SIGKILL")
          const killed = supervisors.length > 0
          // the clients end on their own (with or without success)
          await ended(up, 60_000, "up -d")
          if (other !== undefined) await ended(other, 60_000, `${phase} client`)
          const label = `${phase}@${delayMs}ms${killed ? "" : " (supervisor already gone)"}`
          if (await eventually(() => everything().length === 0, 10_000, 50)) {
            byGuardian.push(label)
            return
          }
          const next = runCli(["stack", "down", "--dir", dir], marker)
          await ended(next, 60_000, "down after the kill")
          if (await eventually(() => everything().length === 0, 10_000, 50)) {
            byNextCommand.push(label)
            return
          }
          throw new Error(
            `left running after ${label} and a down:\n${everything()
              .map((p) => `  ${p.pid} ${p.cmdline}`)
              .join("\n")}`
          )
        } finally {
          for (const p of everything()) {
            try {
              process.kill(p.pid, "SIGKILL")
            } catch {}
          }
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true }
    )
    console.log(
      `kill -9: ${byGuardian.length} runs cleaned by the guardian, ${byNextCommand.length} by the next command (${byNextCommand.join(", ")})`
    )
    expect(byGuardian.length + byNextCommand.length).toBe(RUNS)
  }, 1_800_000)
})
