/**
 * `up` detached (`core stack up -d`): the same CLI started again as `stack up` (foreground mode) in its own session, its
 * output in `.core-stack/supervisor.log`; this process polls the control API until every selected service
 * is ready, or reports why the supervisor ended and leaves nothing running.
 */
import * as path from "node:path"
import { Clock, Data, Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import { connect } from "../api/ControlClient.js"
import { settledVerdict } from "../stack/DependencyCondition.js"
import { ensureStateDir, StateDirError, SupervisorRunning, stateDirOf, statePaths } from "../state/StateDir.js"
import { cleanLeftovers, ensureNoSupervisor, liveSupervisor, recordStarter } from "../state/SupervisorLock.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import * as Trace from "../trace/Trace.js"
import { adoptEarly, sizeOf, spawnSupervisor } from "./SupervisorSpawn.js"

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

/** Where a polled stack stands. */
export type Progress =
  | { readonly _tag: "Starting" }
  | { readonly _tag: "Ready"; readonly services: ReadonlyArray<string> }
  /** `ending`: the supervisor ends by itself (a failed start); a service that keeps restarting does not end it. */
  | { readonly _tag: "Failed"; readonly service: string; readonly reason: string; readonly ending?: false }

/**
 * How long a service without a readiness check must have been running before `up -d` calls it up: a process
 * that exits at once (a bad flag, a missing file) is then seen failing or restarting instead.
 */
export const STAYED_UP_MS = 500

/**
 * Decides from the status rows whether `up` is done: every named service (all enabled ones when none is
 * named) and every service that was launched for them has settled (`settledVerdict`), and those without a
 * readiness check have been running for `STAYED_UP_MS` (at `now`). A service that has restarted has not
 * stayed up: that is a failure.
 */
export const progressOf = (
  rows: ReadonlyArray<ServiceStatus>,
  selected: ReadonlyArray<string>,
  now = Date.now()
): Progress => {
  const wanted =
    selected.length > 0 ? rows.filter((r) => selected.includes(r.name)) : rows.filter((r) => r.state !== "disabled")
  const involved = rows.filter((r) => wanted.includes(r) || (r.state !== "pending" && r.state !== "disabled"))
  const bad = involved.find((r) => typeof settledVerdict(r) === "object")
  if (bad) return { _tag: "Failed", service: bad.name, reason: bad.reason ?? `it is ${bad.state}` }
  const restarted = involved.find((r) => r.restarts > 0)
  if (restarted) {
    const times = `${restarted.restarts} time${restarted.restarts === 1 ? "" : "s"}`
    const last = restarted.reason === null ? "" : `; ${restarted.reason}`
    return {
      _tag: "Failed",
      service: restarted.name,
      reason: `it has not stayed up: restarted ${times}${last}`,
      ending: false
    }
  }
  const young = (r: ServiceStatus) => r.state === "running" && r.startedAt !== null && now - r.startedAt < STAYED_UP_MS
  if (wanted.length > 0 && involved.every((r) => settledVerdict(r) === "met" && !young(r)))
    return { _tag: "Ready", services: involved.map((r) => r.name) }
  return { _tag: "Starting" }
}

/** The supervisor's own report of a failed start (`core: NAME failed to start: REASON`), the last one. */
export const failureIn = (
  lines: ReadonlyArray<string>
): { readonly service: string; readonly reason: string } | undefined => {
  for (const line of [...lines].reverse()) {
    const m = /^core: (\S+) failed to start: (.*)$/.exec(line)
    if (m) return { service: m[1]!, reason: m[2]! }
  }
  return undefined
}

/** The last `n` non-empty lines written to `file` from byte `from` on. */
const lastLines = (file: string, n: number, from = 0): ReadonlyArray<string> =>
  readFrom(file, from)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .slice(-n)

/** The bytes of `file` from `offset` to its end (empty when it cannot be read). */
const readFrom = (file: string, offset: number): Buffer => {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, "r")
    const size = fs.fstatSync(fd).size
    const buffer = Buffer.alloc(Math.max(0, size - offset))
    const read = fs.readSync(fd, buffer, 0, buffer.length, offset)
    return buffer.subarray(0, read)
  } catch {
    return Buffer.alloc(0)
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/** Lines of the supervisor's output that are its own (not `name | line` of a service). */
const serviceLine = /^\S+\s+\| /

/** `CORE_TRACE` lines: shown at the end, on this command's timeline (`Trace.echoFrom`). */
const traceLine = /^core trace /

/**
 * Which new lines of the supervisor's output to show while waiting: its own progress lines, until the first
 * service line (from then on the stack starts, and its outcome is reported at the end). Each call returns
 * the complete lines written since the previous one.
 */
export const progressForwarder = (file: string, from: number) => {
  let offset = from
  let servicesStarted = false
  return (): ReadonlyArray<string> => {
    if (servicesStarted) return []
    const chunk = readFrom(file, offset)
    const end = chunk.lastIndexOf(10)
    if (end < 0) return []
    offset += end + 1
    const out: Array<string> = []
    for (const line of chunk.subarray(0, end).toString("utf8").split("\n")) {
      if (serviceLine.test(line)) {
        servicesStarted = true
        break
      }
      if (line.trim().length > 0 && !traceLine.test(line)) out.push(line)
    }
    return out
  }
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Least and most time between two polls of a starting supervisor. */
const POLL_GAP_MS = { least: 20, most: 100 } as const

/**
 * Waits for the next poll: until `file` (the supervisor's output, where it notes every service's transitions)
 * has grown past `seen` bytes (its size before the previous poll), but at least `POLL_GAP_MS.least` and at most
 * `POLL_GAP_MS.most`. A stack is seen ready within a few ms of its last transition, not up to a whole polling
 * period later, and a busy supervisor is not polled more often than every 20 ms.
 */
const nextChange = (file: string, seen: number): Effect.Effect<void> =>
  Effect.zipRight(
    Effect.sleep(POLL_GAP_MS.least),
    Effect.async<void>((resume) => {
      let watcher: fs.FSWatcher | undefined
      let timer: ReturnType<typeof setTimeout> | undefined
      const stop = () => {
        clearTimeout(timer)
        watcher?.close()
      }
      const done = () => {
        stop()
        resume(Effect.void)
      }
      timer = setTimeout(done, POLL_GAP_MS.most - POLL_GAP_MS.least)
      try {
        watcher = fs.watch(file, { persistent: false }, done)
      } catch {
        // cannot watch: the timer polls
      }
      // written during the previous poll, or before the watch began
      if (sizeOf(file) !== seen) done()
      return Effect.sync(stop)
    })
  )

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

  let lastRows: ReadonlyArray<ServiceStatus> = []
  const poll: Effect.Effect<Progress> = Effect.scoped(
    Effect.gen(function* () {
      const client = yield* connect(root)
      // another supervisor that won the directory is not ours: ours will exit and say so
      if (client.identity.pid !== child.pid) return { _tag: "Starting" } as const
      lastRows = yield* client.status
      Trace.count("status poll")
      return progressOf(lastRows, services)
    })
  ).pipe(Effect.orElseSucceed((): Progress => ({ _tag: "Starting" })))

  // the supervisor's own lines before any service starts (provisioning can take minutes) are shown
  const forwarder = progressForwarder(paths.supervisorLog, logStart)
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
                ? Effect.zipRight(nextChange(paths.supervisorLog, seen), waitReady)
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
    // the supervisor ends by itself when a start fails; give it the time to stop what it started
    if (outcome.ending !== false) yield* waitExit(child).pipe(Effect.timeout("30 seconds"), Effect.ignore)
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
