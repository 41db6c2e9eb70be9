/**
 * `up` detached (`core stack up -d`): the same CLI started again as `stack up` (foreground mode) in its own session, its
 * output in `.core-stack/supervisor.log`; this process polls the control API until every selected service
 * is ready, or reports why the supervisor ended and leaves nothing running.
 */
import * as path from "node:path"
import { Clock, Data, Effect, Schedule } from "effect"
import type { ChildProcess } from "node:child_process"
import { connect } from "../api/ControlClient.js"
import { ensureStateDir, StateDirError, SupervisorRunning, stateDirOf, statePaths } from "../state/StateDir.js"
import { cleanLeftovers, ensureNoSupervisor, liveSupervisor, recordStarter } from "../state/SupervisorLock.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import * as Trace from "../trace/Trace.js"
import {
  failureIn,
  lastLines,
  type Progress,
  pollJudge,
  progressForwarder,
  progressOf,
  saidReady,
  whenChanged
} from "./DetachedProgress.js"
import { adoptEarly, sizeOf, spawnSupervisor } from "./SupervisorSpawn.js"

export { failureIn, type Progress, progressForwarder, progressOf, STAYED_UP_MS } from "./DetachedProgress.js"

/** Lines of the supervisor's output quoted when it fails. */
const TAIL_LINES = 20

/** The background supervisor ended before the stack was ready. */
export class DetachFailed extends Data.TaggedError("DetachFailed")<{
  readonly dir: string
  /** The service that failed, when the supervisor said so. */
  readonly service: string | undefined
  readonly reason: string
  /** The last lines of `.core-stack/supervisor.log`. */
  readonly lastLines: ReadonlyArray<string>
}> {
  override get message() {
    const head = this.service
      ? `${this.service} failed to start: ${this.reason}`
      : `the stack in ${this.dir} did not start: ${this.reason}`
    const tail =
      this.lastLines.length > 0 ? `\nlast lines of the supervisor's output:\n  ${this.lastLines.join("\n  ")}` : ""
    return `${head}${tail}\nnothing is left running`
  }
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Waits for the next poll (`whenChanged`). */
const nextChange = (
  file: string,
  seen: number,
  gap: { readonly least: number; readonly most: number }
): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const cancel = whenChanged(file, seen, () => resume(Effect.void), gap)
    return Effect.sync(cancel)
  })

const waitExit = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (exited(child)) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** Ends the background supervisor: SIGTERM (graceful), then SIGKILL after 15 s. */
const stopChild = (child: ChildProcess) =>
  Effect.gen(function* () {
    if (exited(child) || child.pid === undefined) return
    yield* Effect.sync(() => child.kill("SIGTERM"))
    yield* waitExit(child).pipe(
      Effect.timeout("15 seconds"),
      Effect.catchAll(() => Effect.sync(() => child.kill("SIGKILL")).pipe(Effect.zipRight(waitExit(child))))
    )
  })

/** A background supervisor whose stack is ready. */
export interface Detached {
  /** The services running, dependencies included. */
  readonly ready: ReadonlyArray<string>
  /** Milliseconds from the call to every service ready. */
  readonly readyMs: number
  readonly pid: number
  /** Where its output goes (`.core-stack/supervisor.log`). */
  readonly output: string
}

/**
 * Starts a background supervisor for the stack directory `root` running `services` (all when empty) and returns once every one is ready. The supervisor's own progress
 * lines (provisioning can take minutes) go to `onProgress` while it starts.
 * Fails with `SupervisorRunning` when the directory has a supervisor already, and with `DetachFailed`
 * (the failing service, the reason and the supervisor's last lines) when the stack cannot start; then
 * nothing is left running.
 */
export const upDetached = Effect.fn("StackUpDetached.upDetached")(function* (
  root: string,
  services: ReadonlyArray<string>,
  onProgress: (lines: ReadonlyArray<string>) => Effect.Effect<void> = () => Effect.void,
  /** `--data`: reaches the supervisor as the variable it defaults to, made absolute here. */
  dataDir?: string
) {
  const stateDir = stateDirOf(root)
  const paths = statePaths(stateDir)
  // started by the launcher before this bundle was even loaded (see SupervisorSpawn), or now
  const spawned =
    (dataDir === undefined ? adoptEarly(root, services) : undefined) ??
    (yield* Effect.gen(function* () {
      yield* ensureNoSupervisor(stateDir)
      yield* ensureStateDir(stateDir)
      const now = yield* Clock.currentTimeMillis
      return yield* Effect.try({
        try: () =>
          spawnSupervisor(root, services, paths.supervisorLog, now, {
            // `--data` reaches the supervisor as the variable it defaults to, made absolute here
            ...(dataDir !== undefined && { CORE_DATA_DIR: path.resolve(dataDir) })
          }),
        catch: (cause) => new StateDirError({ path: paths.supervisorLog, cause })
      })
    }))
  const { child, logStart, began } = spawned
  // a `down` before the supervisor holds the directory stops this process, which stops the supervisor
  yield* ensureStateDir(stateDir)
  yield* recordStarter(stateDir)

  const failWith = (service: string | undefined, reason: string) =>
    Effect.gen(function* () {
      yield* stopChild(child)
      yield* cleanLeftovers(stateDir)
      return yield* new DetachFailed({
        dir: root,
        service,
        reason,
        lastLines: lastLines(paths.supervisorLog, TAIL_LINES, logStart)
      })
    })

  // the launcher may have waited first (cli/QuickUp.ts): its last rows and the lines it has shown carry on
  let lastRows: ReadonlyArray<ServiceStatus> = spawned.handedOver?.lastRows ?? []
  const judge = pollJudge(services, paths.supervisorLog, child.pid)
  const asked: Effect.Effect<Progress> = Effect.scoped(
    Effect.gen(function* () {
      const client = yield* connect(root)
      // another supervisor that won the directory is not ours: ours will exit and say so
      if (client.identity.pid !== child.pid) return { _tag: "Starting" } as const
      const logSize = sizeOf(paths.supervisorLog)
      lastRows = yield* client.status
      Trace.count("status poll")
      return judge.judge(lastRows, logSize)
    })
  ).pipe(Effect.orElseSucceed((): Progress => ({ _tag: "Starting" })))
  // when only settling was left, the rows already read are judged again first (`pollJudge`)
  const poll: Effect.Effect<Progress> = Effect.suspend(() => {
    const again = judge.again(lastRows)
    return again !== undefined ? Effect.succeed(again) : asked
  })

  // the supervisor's own lines before any service starts (provisioning can take minutes) are shown
  const forwarder = spawned.handedOver?.forward ?? progressForwarder(paths.supervisorLog, logStart)
  const waitReady: Effect.Effect<Progress | "exited"> = Effect.suspend(() => {
    const news = forwarder()
    const show = news.length > 0 ? onProgress(news) : Effect.void
    return exited(child) || spawned.spawnError
      ? Effect.as(show, "exited" as const)
      : Effect.zipRight(
          show,
          Effect.suspend(() => {
            const seen = sizeOf(paths.supervisorLog)
            return Effect.flatMap(poll, (p) =>
              p._tag === "Starting"
                ? Effect.zipRight(nextChange(paths.supervisorLog, seen, judge.gap(p)), waitReady)
                : Effect.succeed(p)
            )
          })
        )
  })
  const outcome = yield* waitReady.pipe(Effect.onInterrupt(() => stopChild(child)))

  if (outcome === "exited") {
    if (spawned.spawnError)
      return yield* failWith(undefined, `cannot start the supervisor: ${spawned.spawnError.message}`)
    const failed = progressOf(lastRows, services)
    if (failed._tag === "Failed") return yield* failWith(failed.service, failed.reason)
    const said = failureIn(lastLines(paths.supervisorLog, 200, logStart))
    if (said) return yield* failWith(said.service, said.reason)
    // lost the race for the directory to another `up`
    const other = liveSupervisor(stateDir)
    if (other) return yield* new SupervisorRunning({ dir: root, pid: other.pid })
    return yield* failWith(undefined, `the supervisor exited (${child.exitCode ?? child.signalCode})`)
  }
  if (outcome._tag === "Failed") {
    // the supervisor ends by itself when a start fails: give it the time to stop what it started. Not when a
    // service failed after the supervisor's `up` was done (one without a readiness check that exited soon
    // after it started): that supervisor stays, and waiting for it only held the report back 30 s
    const upDone = Effect.sync(() =>
      saidReady(lastLines(paths.supervisorLog, Number.POSITIVE_INFINITY, logStart))
    ).pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (done) => done }))
    if (outcome.ending !== false)
      yield* Effect.raceFirst(waitExit(child), upDone).pipe(Effect.timeout("30 seconds"), Effect.ignore)
    return yield* failWith(outcome.service, outcome.reason)
  }
  Trace.summary()
  Trace.mark("every service ready, seen by up -d")
  Trace.echoFrom(paths.supervisorLog, logStart)
  const detached: Detached = {
    ready: outcome._tag === "Ready" ? outcome.services : [],
    readyMs: Math.round((yield* Clock.currentTimeMillis) - began),
    pid: child.pid ?? 0,
    output: paths.supervisorLog
  }
  return detached
}, Effect.scoped)
