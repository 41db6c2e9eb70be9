/**
 * Running a short-lived tool (`go`, a `--version` check) to completion, keeping the tail of its output.
 *
 * The tool runs through `runGroup`: its own process group, recorded with the guardian when a supervisor's
 * registry is in context, so an interrupted `go build` (or a `kill -9`'d supervisor) leaves no compiler behind.
 */
import { Data, Effect } from "effect"
import { runGroup } from "../process/ProcessGroup.js"

/** How a tool run ended. */
export interface ToolResult {
  /** Exit code, or `undefined` when a signal ended it. */
  readonly code: number | undefined
  readonly signal: NodeJS.Signals | undefined
  /** The last lines of stdout and stderr, interleaved as received. */
  readonly output: string
}

/** A tool could not be started (not on PATH, not executable). */
export class ToolError extends Data.TaggedError("ToolError")<{
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return this.reason === "command not found"
      ? `${this.command} not found${this.command.includes("/") ? "" : " on PATH"}`
      : `cannot run ${this.command}: ${this.reason}`
  }
}

/**
 * Runs `command args` in `cwd` with exactly `env`. Fails only when the tool cannot be started; a non-zero
 * exit is a successful `ToolResult`. Interrupted, the tool gets SIGTERM and, two seconds later, SIGKILL.
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
): Effect.Effect<ToolResult, ToolError> =>
  runGroup({
    owner: `build: ${command}`,
    command,
    args,
    cwd: options.cwd,
    env: options.env,
    timeoutMs: options.timeoutMs,
    shutdown: { signal: "SIGTERM", timeoutMs: 2_000 }
  }).pipe(
    Effect.map(({ code, signal, output }) => ({ code, signal, output })),
    Effect.mapError((error) => new ToolError({ command, reason: error.reason }))
  )

/** The last `count` non-empty lines of a tool's output, for an error message. */
export const lastLines = (output: string, count: number): string =>
  output
    .split("\n")
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .slice(-count)
    .join("\n")
