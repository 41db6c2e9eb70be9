/**
 * Running a short-lived tool (`go`, a `--version` check) to completion, keeping the tail of its output.
 *
 * The tool runs in its own process group; interrupting the Effect kills the group (TERM, then KILL after
 * two seconds), so an interrupted `go build` leaves no compiler behind.
 */
import { spawn } from "node:child_process"
import { Effect } from "effect"

/** How a tool run ended. */
export interface ToolResult {
  /** Exit code, or `undefined` when a signal ended it. */
  readonly code: number | undefined
  readonly signal: NodeJS.Signals | undefined
  /** The last lines of stdout and stderr, interleaved as received. */
  readonly output: string
}

const tailLimit = 64 * 1024

/**
 * Runs `command args` in `cwd` with exactly `env`. Fails with a readable reason only when the tool cannot
 * be started (e.g. not on PATH); a non-zero exit is a successful `ToolResult`.
 */
export const runTool = (
  command: string,
  args: ReadonlyArray<string>,
  options: {
    readonly cwd: string
    readonly env: Readonly<Record<string, string | undefined>>
    /** Kill the tool after this many milliseconds (it then counts as ended by SIGKILL). */
    readonly timeoutMs?: number
  }
): Effect.Effect<ToolResult, string> =>
  Effect.async<ToolResult, string>((resume) => {
    let output = ""
    let settled = false
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env as NodeJS.ProcessEnv,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const append = (chunk: Buffer) => {
      output += chunk.toString("utf8")
      if (output.length > tailLimit * 2) output = output.slice(-tailLimit)
    }
    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return
      try {
        process.kill(-child.pid, signal)
      } catch {
        // already gone
      }
    }
    child.stdout.on("data", append)
    child.stderr.on("data", append)
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            append(Buffer.from(`\n(killed after ${options.timeoutMs} ms)\n`))
            killGroup("SIGKILL")
          }, options.timeoutMs)
    child.once("error", (error: NodeJS.ErrnoException) => {
      if (settled) return
      settled = true
      if (timer) clearTimeout(timer)
      resume(
        Effect.fail(
          error.code === "ENOENT"
            ? `${command} not found${command.includes("/") ? "" : " on PATH"}`
            : `cannot run ${command}: ${error.message}`
        )
      )
    })
    child.once("close", (code, signal) => {
      if (settled) return
      settled = true
      if (timer) clearTimeout(timer)
      resume(Effect.succeed({ code: code ?? undefined, signal: signal ?? undefined, output: output.slice(-tailLimit) }))
    })
    return Effect.sync(() => {
      if (settled) return
      killGroup("SIGTERM")
      const escalate = setTimeout(() => killGroup("SIGKILL"), 2_000)
      child.once("close", () => clearTimeout(escalate))
    })
  })

/** The last `count` non-empty lines of a tool's output, for an error message. */
export const lastLines = (output: string, count: number): string =>
  output
    .split("\n")
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join("\n")
