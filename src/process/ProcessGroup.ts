/**
 * The one way `core` runs a child process: as the leader of its own process group, recorded with the
 * `ProcessRegistry` in context (whose guardian ends the group if the supervisor dies hard), owned by a
 * scope. Closing the scope stops the group (the shutdown signal or command, a grace period, then SIGKILL),
 * sweeps it once more with SIGKILL (a leader that exited can leave background children in its group), and
 * returns only when no process of the group is left. Services (`spawnGroup`), and exec probes, shutdown
 * commands and builds (`runGroup`) all go through here.
 */
import { Clock, Data, Deferred, Effect, Option, Scope } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { constants } from "node:os"
import { ProcessRegistry, type SpawnedBy } from "./ProcessRegistry.js"
import { Spawner } from "./Spawner.js"
import { groupProcesses } from "./ProcTable.js"
import * as Trace from "../trace/Trace.js"

export class SpawnError extends Data.TaggedError("SpawnError")<{
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return `cannot start ${this.command}: ${this.reason}`
  }
}

export type OutputStream = "stdout" | "stderr"

/** How the group is stopped when its scope closes. */
export interface StopSpec {
  readonly signal: NodeJS.Signals
  /** Grace period after the signal (or for the shutdown command and the exit together) before SIGKILL. */
  readonly timeoutMs: number
  /** A shell command run instead of the signal (its own group, bounded by `timeoutMs`). */
  readonly command?: string | undefined
}

/** Immediate SIGKILL: for short commands nobody waits for (probes, builds past their deadline). */
export const killAtOnce: StopSpec = { signal: "SIGKILL", timeoutMs: 0 }

export interface GroupOptions {
  /** Whose group it is, as recorded with the guardian: `api`, `api (exec probe)`, `build nats`. */
  readonly owner: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  /** The full environment of the process. */
  readonly env: Readonly<Record<string, string | undefined>>
  readonly shutdown: StopSpec
  /** Every chunk of output, synchronously, in arrival order. */
  readonly onOutput: (stream: OutputStream, chunk: Buffer) => void
  /** A stream reached its end (its last partial line can be flushed). */
  readonly onEnd: (stream: OutputStream) => void
}

export interface ProcessGroup {
  readonly pid: number
  /** Waits for the leader's exit; the status is 128+n for death by signal n. */
  readonly exit: Effect.Effect<number>
  /** Waits for the leader's exit: its status and the signal that ended it, if one did. */
  readonly ended: Effect.Effect<Ended>
  /** Whether the leader has exited. */
  readonly hasExited: Effect.Effect<boolean>
  /**
   * Calls `listener` once with how the leader ended, synchronously when it ends (at once if it has): for a run
   * that only waits for the exit, without a fiber to wait in (a fiber per service is most of a start's cost).
   */
  readonly onEnded: (listener: (ended: Ended) => void) => void
  /**
   * For a stop signal sent ahead of the scope's close (whose release then only waits, the grace period counted
   * from now, in real time as the wait itself): records it as sent now and returns it, for the caller to send,
   * with a whole stop level's at once. One signal per group at most (a second SIGTERM means "now" to many
   * programs): undefined for a group that has a shutdown command (its release runs it), has exited, or was
   * signalled already.
   */
  readonly claimStopSignal: () => NodeJS.Signals | undefined
  /** Milliseconds left of the grace period since its stop signal was sent; undefined when none was. */
  readonly graceLeftMs: () => number | undefined
}

export interface Ended {
  /** Exit status, 128+n for death by signal n. */
  readonly status: number
  readonly signal: NodeJS.Signals | undefined
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
  // a group that is gone makes process.kill throw: without the stack trace nobody reads (200 groups swept
  // after a down: ~3 ms of the supervisor's thread, profiled), where the limit may be changed (not frozen by
  // --frozen-intrinsics or a locked-down host; read here, not once at load, which the snapshot would keep)
  const limit = Error.stackTraceLimit
  const stackLimitWritable = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")?.writable === true
  if (stackLimitWritable) Error.stackTraceLimit = 0
  try {
    process.kill(-pgid, signal)
    return true
  } catch {
    return false
  } finally {
    if (stackLimitWritable) Error.stackTraceLimit = limit
  }
}

/** How long a release waits for SIGKILLed processes to disappear before it says so and gives up. */
const GONE_LIMIT_MS = 5_000

/** A group that still answers signal 0 is read from `/proc` this often (it may hold only zombies). */
const ZOMBIE_CHECK_MS = 20

/**
 * Waits until no live process of the group is left, SIGKILLing stragglers (a member may fork while it is
 * killed). Signal 0 answers "gone" for free in the common case; `/proc` is read only for a group that lingers,
 * since zombies waiting for their reaper still count for signal 0. Real time on purpose: this waits for the
 * kernel, not for a schedule, and must not hang under a `TestClock`. Returns the pids still alive at the
 * limit (processes stuck in the kernel), normally none.
 */
const awaitGroupGone = (pgid: number): Effect.Effect<ReadonlyArray<number>> =>
  Effect.async<ReadonlyArray<number>>((resume) => {
    const started = Date.now()
    let scanned = started
    let timer: NodeJS.Timeout | undefined
    const check = () => {
      if (!signalGroup(pgid, 0)) return resume(Effect.succeed([]))
      const now = Date.now()
      const waited = now - started
      if (now - scanned >= ZOMBIE_CHECK_MS) {
        scanned = now
        const alive = groupProcesses(pgid)
        if (alive.length === 0 || waited >= GONE_LIMIT_MS) return resume(Effect.succeed(alive.map((p) => p.pid)))
      }
      signalGroup(pgid, "SIGKILL")
      timer = setTimeout(check, 2)
    }
    check()
    return Effect.sync(() => clearTimeout(timer))
  })

const describeSpawnError = (error: NodeJS.ErrnoException, cwd: string): string =>
  error.code === "ENOENT"
    ? isDirectory(cwd)
      ? "command not found"
      : `ENOENT: working directory ${cwd} does not exist`
    : error.code === "ENOTDIR"
      ? `ENOTDIR: working directory ${cwd} is not a directory`
      : error.code === "EACCES"
        ? "permission denied (is it executable?)"
        : error.message

/** Synchronous like the spawn callback it serves (see ProcTable on synchronous reads). */
const isDirectory = (dir: string): boolean => {
  try {
    return fs.statSync(dir).isDirectory()
  } catch {
    return false
  }
}

/** Spawn `command` in a new process group, recorded with the registry in context, stopped when the scope closes. */
export const spawnGroup = (options: GroupOptions): Effect.Effect<ProcessGroup, SpawnError, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => spawnGroupIn(scope, options))

/**
 * `spawnGroup` with the scope given: a caller that holds its scope (a service's run) need not put it in its
 * context (each `Effect.scoped` changes the fiber's context and changes it back).
 */
export const spawnGroupIn = (scope: Scope.Scope, options: GroupOptions): Effect.Effect<ProcessGroup, SpawnError> =>
  Effect.gen(function* () {
    const registry = yield* Effect.serviceOption(ProcessRegistry)
    const spawner = yield* Effect.serviceOption(Spawner)
    const exited = yield* Deferred.make<Ended>()
    let endedAs: Ended | undefined
    const endListeners: Array<(ended: Ended) => void> = []
    const drained = makeEvent()
    const stop: StopState = { signalledAt: undefined, exit: makeEvent() }
    // Scope.addFinalizer rather than acquireRelease, as in ServiceLog: acquireRelease restores this fiber's
    // context before its release (two FiberRefs diffs and a patch per release), and the release runs in this
    // fiber anyway (every owner of the scope is an Effect.scoped of the fiber that spawned). Uninterruptible
    // itself, as acquireRelease made it: a scope closed where interruption is allowed must not stop half way
    const release = (pid: number) =>
      stopGroup(pid, options, exited, stop).pipe(
        Effect.tap(() => within(drained, 1_000)),
        // a sweep that found no process in the group: gone, nothing to wait for
        Effect.flatMap((swept) => (swept ? awaitGroupGone(pid) : Effect.succeed([]))),
        Effect.tap(() => Trace.count("process group gone")),
        Effect.flatMap((left) =>
          left.length === 0
            ? Effect.void
            : Effect.logWarning(`${options.owner}: pids ${left.join(" ")} of group ${pid} survive SIGKILL`)
        ),
        Effect.zipRight(Effect.sync(() => liveGroups.delete(pid))),
        Effect.zipRight(
          Option.match(registry, { onNone: () => Effect.void, onSome: (r) => r.unregister(options.owner, pid) })
        )
      )
    const acquire = Effect.async<number, SpawnError>((resume) => {
      const failed = (reason: string) => resume(Effect.fail(new SpawnError({ command: options.command, reason })))
      // recorded before anything else runs: between spawn() and its "spawn" event the event loop turns (200
      // services: 200 spawns), and a supervisor killed then left a group nobody knew of (fault injection, 1 run
      // in ~150 under load). (Through the helper, a supervisor killed before its answer is read leaves the
      // group to the helper, which kills what it started when the supervisor is gone.)
      const started = (
        pid: number,
        stdout: NodeJS.ReadableStream,
        stderr: NodeJS.ReadableStream,
        spawned?: SpawnedBy
      ) => {
        if (Option.isSome(registry)) {
          const { registerNow, register } = registry.value
          if (registerNow) registerNow(options.owner, pid, spawned)
          else Effect.runSync(register(options.owner, pid, spawned))
        }
        let open = 2
        for (const [stream, readable] of [
          ["stdout", stdout],
          ["stderr", stderr]
        ] as const) {
          readable.on("data", (chunk: Buffer) => options.onOutput(stream, chunk))
          readable.on("close", () => {
            options.onEnd(stream)
            if (--open === 0) fire(drained)
          })
        }
      }
      const ended = (code: number | null, signal: NodeJS.Signals | null) => {
        fire(stop.exit)
        endedAs = { status: exitStatus(code, signal), signal: signal ?? undefined }
        Deferred.unsafeDone(exited, Effect.succeed(endedAs))
        for (const listener of endListeners.splice(0)) listener(endedAs)
      }
      const request = { command: options.command, args: options.args, cwd: options.cwd, env: options.env }
      const viaHelper =
        Option.isSome(spawner) &&
        spawner.value.spawn(request, {
          started: (pid, spawned, stdout, stderr) => {
            started(pid, stdout, stderr, spawned)
            Trace.count("process group running (its spawn event)")
            resume(Effect.succeed(pid))
          },
          failed: (error) => failed(describeSpawnError(error, options.cwd)),
          exited: ended
        })
      if (viaHelper) {
        Trace.count("spawn() of a process group")
        return
      }
      let child: ReturnType<typeof spawn>
      try {
        child = Trace.timed("spawn() of a process group", () =>
          spawn(options.command, [...options.args], {
            cwd: options.cwd,
            env: options.env,
            detached: true,
            stdio: ["ignore", "pipe", "pipe"]
          })
        )
      } catch (error) {
        // bad arguments (a NUL byte, too long a list) throw instead of emitting "error"
        return failed(describeSpawnError(error as NodeJS.ErrnoException, options.cwd))
      }
      // spawn() has forked and exec'd by now; the pid is known
      if (child.pid !== undefined) started(child.pid, child.stdout!, child.stderr!)
      child.once("error", (error: NodeJS.ErrnoException) => {
        if (child.pid === undefined) failed(describeSpawnError(error, options.cwd))
      })
      child.once("spawn", () => {
        Trace.count("process group running (its spawn event)")
        resume(Effect.succeed(child.pid!))
      })
      child.once("exit", ended)
    })
    const pid = yield* Effect.uninterruptible(
      Effect.tap(acquire, (pid) => {
        liveGroups.add(pid)
        return Scope.addFinalizer(scope, Effect.uninterruptible(release(pid)))
      })
    )
    return {
      pid,
      exit: Effect.map(Deferred.await(exited), (ended) => ended.status),
      ended: Deferred.await(exited),
      hasExited: Deferred.isDone(exited),
      onEnded: (listener) => {
        if (endedAs === undefined) endListeners.push(listener)
        else listener(endedAs)
      },
      claimStopSignal: () => claimStopSignal(options, stop, performance.now()),
      graceLeftMs: () => graceLeftMs(options, stop)
    }
  })

/**
 * Whether, and when (`performance.now()`, which no step of the wall clock moves), the group was sent its stop
 * signal; whether its leader has exited.
 */
interface StopState {
  signalledAt: number | undefined
  readonly exit: Event
}

/**
 * Something that happens once (the leader's exit, the end of both pipes), which a release waits for with a
 * time limit. Not a `Deferred` with `timeoutOption`: that is a race of two forked fibers, and a fiber forked in
 * a release that runs because its fiber was interrupted copies the interruption's cause, compared by hash:
 * ~0.5 ms of CPU per wait, most of the CPU of 200 services stopping at once.
 */
interface Event {
  happened: boolean
  readonly listeners: Set<() => void>
}

const makeEvent = (): Event => ({ happened: false, listeners: new Set() })

const fire = (event: Event): void => {
  event.happened = true
  for (const listener of event.listeners) listener()
  event.listeners.clear()
}

/**
 * Waits until `event` has happened, at most `limitMs` of real time (a grace period is the process's time, not
 * a schedule's; as in `awaitGroupGone`, a `TestClock` must not hold it up); whether it did. Needs no
 * interruptible region to end in a release: its own timer ends it.
 */
const within = (event: Event, limitMs: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    if (event.happened) return resume(Effect.succeed(true))
    const listener = () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    }
    const timer = setTimeout(() => {
      event.listeners.delete(listener)
      resume(Effect.succeed(false))
    }, limitMs)
    event.listeners.add(listener)
    return Effect.sync(() => {
      clearTimeout(timer)
      event.listeners.delete(listener)
    })
  })

/**
 * The group's stop signal, to be sent now, once: undefined when it has a shutdown command instead, its leader
 * has exited, or it was signalled already.
 */
const claimStopSignal = (options: GroupOptions, stop: StopState, now: number): NodeJS.Signals | undefined => {
  if (options.shutdown.command !== undefined || stop.exit.happened || stop.signalledAt !== undefined) return
  stop.signalledAt = now
  return options.shutdown.signal
}

/** What is left of the grace period since the stop signal, in real time as its wait is (see `StopState`). */
const graceLeftMs = (options: GroupOptions, stop: StopState): number | undefined =>
  stop.signalledAt === undefined
    ? undefined
    : Math.max(0, options.shutdown.timeoutMs - (performance.now() - stop.signalledAt))

/** The group's stop signal, once (see `claimStopSignal`). */
const sendStopSignal = (pid: number, options: GroupOptions, stop: StopState, now: number): void => {
  const signal = claimStopSignal(options, stop, now)
  if (signal === undefined) return
  signalGroup(pid, signal)
  Trace.count("stop signal sent to a group")
}

/**
 * The shutdown sequence: signal (or shutdown command), unless it was sent ahead (`claimStopSignal`), wait for the
 * leader's exit until the timeout (which the command and the wait share, counted from the signal), SIGKILL the
 * group, then sweep the group once more in case the leader left children behind. Returns whether the sweep
 * found any process in the group.
 */
const stopGroup = (
  pid: number,
  options: GroupOptions,
  exited: Deferred.Deferred<Ended>,
  stop: StopState
): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const { shutdown } = options
    if (!(yield* Deferred.isDone(exited))) {
      let left = shutdown.timeoutMs
      if (shutdown.command !== undefined) {
        const began = yield* Clock.currentTimeMillis
        yield* runGroup({
          owner: `${options.owner} (shutdown command)`,
          command: "sh",
          args: ["-c", shutdown.command],
          cwd: options.cwd,
          env: options.env,
          timeoutMs: shutdown.timeoutMs
        }).pipe(Effect.catchAll((error) => Effect.logWarning(`${options.owner}: shutdown command: ${error.message}`)))
        left = Math.max(0, left - ((yield* Clock.currentTimeMillis) - began))
      } else {
        // counted from the signal, sent now or ahead
        sendStopSignal(pid, options, stop, performance.now())
        left = graceLeftMs(options, stop) ?? left
      }
      if (!(yield* within(stop.exit, left))) {
        if (shutdown.signal !== "SIGKILL") {
          yield* Effect.logWarning(
            `pid ${pid} still running ${shutdown.timeoutMs} ms after ${shutdown.command === undefined ? shutdown.signal : "its shutdown command"}: SIGKILL`
          )
        }
        signalGroup(pid, "SIGKILL")
        // bounded: the exit comes from whoever reaps the leader (Node, or the spawner helper, which a stopped or
        // stuck helper would never send); the sweep below waits for the group itself to be gone
        if (!(yield* within(stop.exit, GONE_LIMIT_MS))) {
          yield* Effect.logWarning(`pid ${pid}: no exit reported ${GONE_LIMIT_MS} ms after SIGKILL`)
        }
      }
    }
    return signalGroup(pid, "SIGKILL")
  })

/** How a command run to completion ended. */
export interface GroupResult {
  /** Exit status, 128+n for death by signal n. */
  readonly status: number
  /** Exit code, or `undefined` when a signal ended it. */
  readonly code: number | undefined
  readonly signal: NodeJS.Signals | undefined
  /** Whether `timeoutMs` passed and the group was killed. */
  readonly timedOut: boolean
  /** The tail of stdout and stderr, interleaved as received. */
  readonly output: string
}

/** Characters of output a `runGroup` keeps. */
const OUTPUT_LIMIT = 64 * 1024

/**
 * Runs a short command to completion in its own group (see `spawnGroup`) and returns its status and output
 * tail. After `timeoutMs` (Effect clock) the group is SIGKILLed and the result says `timedOut`. Interrupted,
 * it stops the group with `shutdown` (default: SIGKILL at once). Returns only once the whole group is gone.
 */
export const runGroup = (
  options: Omit<GroupOptions, "onOutput" | "onEnd" | "shutdown"> & {
    readonly timeoutMs?: number | undefined
    readonly shutdown?: StopSpec | undefined
  }
): Effect.Effect<GroupResult, SpawnError> =>
  Effect.gen(function* () {
    let output = ""
    const append = (_: OutputStream, chunk: Buffer) => {
      output += chunk.toString("utf8")
      if (output.length > OUTPUT_LIMIT * 2) output = output.slice(-OUTPUT_LIMIT)
    }
    const ended = yield* Effect.scoped(
      Effect.gen(function* () {
        const group = yield* spawnGroup({
          ...options,
          shutdown: options.shutdown ?? killAtOnce,
          onOutput: append,
          onEnd: () => {}
        })
        if (options.timeoutMs === undefined) return Option.some(yield* group.ended)
        // interruptible, so that the timeout can end the wait when this runs in a release (a shutdown command)
        const exit = yield* group.ended.pipe(Effect.interruptible, Effect.timeoutOption(Math.max(1, options.timeoutMs)))
        if (Option.isNone(exit)) {
          signalGroup(group.pid, "SIGKILL")
          append("stderr", Buffer.from(`\n(killed after ${options.timeoutMs} ms)\n`))
        }
        return exit
      })
    )
    const { status, signal } = Option.getOrElse(
      ended,
      (): Ended => ({ status: exitStatus(null, "SIGKILL"), signal: "SIGKILL" })
    )
    return {
      status,
      code: signal === undefined ? status : undefined,
      signal,
      timedOut: Option.isNone(ended),
      output: output.slice(-OUTPUT_LIMIT)
    }
  })
