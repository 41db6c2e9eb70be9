/**
 * Running the built CLI (`dist/core.cjs`) from tests with a deadline.
 */
import { spawn } from "node:child_process"
import { resolve } from "node:path"

/** The built CLI. */
export const cli = resolve(import.meta.dirname, "../../dist/core.cjs")

/** A stack trace in output: an `at file:line:column` line. */
export const STACK_TRACE = /\n\s+at .*:\d+:\d+/

/** How a CLI run ended: its exit code (null when killed), stdout and stderr together, and whether it overran. */
export interface CliRun {
  readonly code: number | null
  readonly output: string
  readonly timedOut: boolean
}

/**
 * Runs `core args...` with PATH, NO_COLOR=1 and `env` as its whole environment; SIGKILLs it when it takes
 * longer than `deadlineMs` (then `timedOut`).
 */
export const runCli = (
  args: ReadonlyArray<string>,
  deadlineMs: number,
  env: Readonly<Record<string, string>> = {}
): Promise<CliRun> =>
  new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], {
      env: { PATH: process.env["PATH"], NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const collect = (b: Buffer) => {
      output += b.toString()
    }
    child.stdout.on("data", collect)
    child.stderr.on("data", collect)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, deadlineMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      done({ code, output, timedOut })
    })
  })
