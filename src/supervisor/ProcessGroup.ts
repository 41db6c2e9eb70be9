/**
 * A child process leading its own process group, as a scoped resource. Closing the scope stops the whole
 * group: the shutdown signal (or command), a grace period, then SIGKILL; and always a final SIGKILL sweep,
 * because a leader that exited can leave background children in its group.
 */
import { Data, Deferred, Effect, Option, type Scope } from "effect"
import { spawn } from "node:child_process"
import { constants } from "node:os"
import type { ShutdownSpec } from "../manifest/ServiceSpec.js"
import { ProcessRegistry } from "./ProcessRegistry.js"

export class SpawnError extends Data.TaggedError("SpawnError")<{
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return `cannot start ${this.command}: ${this.reason}`
  }
}

export type OutputStream = "stdout" | "stderr"

export interface GroupOptions {
  readonly service: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  /** The full environment of the process. */
  readonly env: Readonly<Record<string, string | undefined>>
  readonly shutdown: ShutdownSpec
  /** Every chunk of output, synchronously, in arrival order. */
  readonly onOutput: (stream: OutputStream, chunk: Buffer) => void
  /** A stream reached its end (its last partial line can be flushed). */
  readonly onEnd: (stream: OutputStream) => void
}

export interface ProcessGroup {
  readonly pid: number
  /** Waits for the leader's exit; the status is 128+n for death by signal n. */
  readonly exit: Effect.Effect<number>
  /** Whether the leader has exited. */
  readonly hasExited: Effect.Effect<boolean>
}

/**
 * Process groups alive in this process. Only the second-Ctrl-C handler reads it: it must SIGKILL every group
 * synchronously, when no Effect code can run any more.
 */
export const liveGroups = new Set<number>()

/** SIGKILL every live group at once (the second Ctrl-C). */
export const killAllGroups = (): void => {
  for (const pgid of liveGroups) signalGroup(pgid, "SIGKILL")
}

const signalNumbers = constants.signals as Readonly<Record<string, number>>

/** Exit status as a shell reports it. */
export const exitStatus = (code: number | null, signal: NodeJS.Signals | null): number =>
  code ?? 128 + (signal ? (signalNumbers[signal] ?? 0) : 0)

/** Signal a whole process group; a group that is already gone is not an error. */
export const signalGroup = (pgid: number, signal: NodeJS.Signals | number): boolean => {
  try {
    process.kill(-pgid, signal)
    return true
  } catch {
    return false
  }
}

/** Spawn `command` in a new process group and stop the group when the scope closes. */
export const spawnGroup = (
  options: GroupOptions
): Effect.Effect<ProcessGroup, SpawnError, Scope.Scope | ProcessRegistry> =>
  Effect.gen(function* () {
    const registry = yield* ProcessRegistry
    const exited = yield* Deferred.make<number>()
    const drained = yield* Deferred.make<void>()
    const pid = yield* Effect.acquireRelease(
      Effect.async<number, SpawnError>((resume) => {
        const child = spawn(options.command, [...options.args], {
          cwd: options.cwd,
          env: options.env,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"]
        })
        let open = 2
        for (const stream of ["stdout", "stderr"] as const) {
          const readable = child[stream]!
          readable.on("data", (chunk: Buffer) => options.onOutput(stream, chunk))
          readable.on("close", () => {
            options.onEnd(stream)
            if (--open === 0) Deferred.unsafeDone(drained, Effect.void)
          })
        }
        child.once("error", (error: NodeJS.ErrnoException) => {
          if (child.pid === undefined) {
            resume(Effect.fail(new SpawnError({ command: options.command, reason: describeSpawnError(error) })))
          }
        })
        child.once("spawn", () => resume(Effect.succeed(child.pid!)))
        child.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed(exitStatus(code, signal))))
      }).pipe(
        Effect.tap((pid) => liveGroups.add(pid)),
        Effect.tap((pid) => registry.register(options.service, pid))
      ),
      (pid) =>
        stopGroup(pid, options.shutdown, options.env, exited).pipe(
          Effect.zipRight(Deferred.await(drained).pipe(Effect.interruptible, Effect.timeoutOption("1 second"))),
          Effect.zipRight(Effect.sync(() => liveGroups.delete(pid))),
          Effect.zipRight(registry.unregister(options.service, pid))
        )
    )
    return {
      pid,
      exit: Deferred.await(exited),
      hasExited: Deferred.isDone(exited)
    }
  })

const describeSpawnError = (error: NodeJS.ErrnoException): string =>
  error.code === "ENOENT"
    ? "command not found"
    : error.code === "EACCES"
      ? "permission denied (is it executable?)"
      : error.message

/**
 * The shutdown sequence: signal (or shutdown command), wait up to the timeout, SIGKILL the group, then sweep
 * the group once more in case the leader left children behind.
 */
const stopGroup = (
  pid: number,
  shutdown: ShutdownSpec,
  env: Readonly<Record<string, string | undefined>>,
  exited: Deferred.Deferred<number>
): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (!(yield* Deferred.isDone(exited))) {
      if (shutdown.command !== undefined) {
        yield* runShutdownCommand(shutdown.command, env, shutdown.timeoutMs)
      } else {
        signalGroup(pid, shutdown.signal)
      }
      const graceful = yield* Deferred.await(exited).pipe(
        Effect.interruptible,
        Effect.timeoutOption(shutdown.timeoutMs)
      )
      if (Option.isNone(graceful)) {
        yield* Effect.logWarning(`pid ${pid} still running ${shutdown.timeoutMs} ms after ${shutdown.signal}: SIGKILL`)
        signalGroup(pid, "SIGKILL")
        yield* Deferred.await(exited)
      }
    }
    signalGroup(pid, "SIGKILL")
  })

const runShutdownCommand = (command: string, env: Readonly<Record<string, string | undefined>>, timeoutMs: number) =>
  Effect.async<void>((resume) => {
    const child = spawn("sh", ["-c", command], { env, stdio: "ignore", detached: true })
    const timer = setTimeout(() => signalGroup(child.pid!, "SIGKILL"), timeoutMs)
    const done = () => {
      clearTimeout(timer)
      resume(Effect.void)
    }
    child.once("error", done)
    child.once("exit", done)
  })
