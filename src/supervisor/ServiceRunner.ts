/**
 * The life of one service, from `start` to its end: wait for the dependencies' conditions, spawn its process
 * group (a scoped resource), wait for readiness within the deadline, watch liveness, and apply the restart
 * policy when the process ends. Times come from the Effect `Clock`, so backoff and deadlines follow a
 * `TestClock`. The stack-level verbs (`up`, `stop`, ...) are in `LocalSupervisor`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Clock, Deferred, Effect, type Fiber, FiberRef, HashMap, Scope } from "effect"
import { waitReady, watchLiveness } from "../health/Probe.js"
import type { ServiceSpec } from "../manifest/ServiceSpec.js"
import { spawnGroupIn } from "../process/ProcessGroup.js"
import { conditionVerdict } from "../stack/DependencyCondition.js"
import { BRIEF_RUN_MS, decideRestart } from "./RestartPolicy.js"
import { awaitEvery, dependencyState, type ServiceEntry, type StackContext, update, updateNow } from "./ServiceEntry.js"
import * as Trace from "../trace/Trace.js"

/**
 * A run that ends after it was ready (or, without a readiness check, after this long) resets the count of
 * consecutive failures that the exponential backoff grows with.
 */
const SETTLED_MS = 10_000

/** Characters of an output line that `ready_log_line` is matched against (the start of a longer line). */
const READY_LINE_LIMIT = 16 * 1024

/** Makes `${data}` and `${data}/<service>` (0700) if they are missing; undefined, or why it could not. */
const makeDataDirs = (dataDir: string, service: string): string | undefined => {
  const dir = path.join(dataDir, service)
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    return undefined
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    const why = e.code === "EEXIST" || e.code === "ENOTDIR" ? "a file is in the way" : (e.code ?? e.message)
    return `cannot create its data directory ${dir}: ${why}`
  }
}

/** How one run of a process ended. */
type RunOutcome =
  | {
      readonly _tag: "Exited"
      readonly code: number
      readonly settled: boolean
      /** It had a readiness check and had not passed it. */
      readonly beforeReady: boolean
      /** How long the process ran. */
      readonly ranMs: number
    }
  | { readonly _tag: "SpawnFailed"; readonly reason: string }
  | { readonly _tag: "NotReady"; readonly reason: string }
  | { readonly _tag: "Unhealthy"; readonly reason: string; readonly ranMs: number }

/**
 * Waits for every dependency's condition; the reason as soon as one can no longer be met (its dependent is
 * skipped then, whatever its other dependencies do).
 */
const awaitDependencies = (stack: StackContext, spec: ServiceSpec): Effect.Effect<string | undefined> => {
  const dependencies = spec.dependsOn.map(({ name, condition }) => ({
    name,
    condition,
    entry: stack.entries.get(name)!
  }))
  return awaitEvery(
    dependencies.map((d) => d.entry.state),
    (index, internal) => {
      const { name, condition, entry } = dependencies[index]!
      const verdict = conditionVerdict(condition, dependencyState(entry, internal))
      return verdict === "wait" || verdict === "met"
        ? verdict
        : `dependency ${name} can no longer be ${condition.replace("process_", "")}: ${verdict.failed}`
    }
  )
}

/** One run of the process: spawn, readiness within the deadline (Clock millis), liveness, until it ends. */
/**
 * `previous`: how the last run ended, when this one is a restart (its status says so while it runs).
 */
const runOnce = (stack: StackContext, entry: ServiceEntry, deadline: number, previous: string | undefined) =>
  // the run's scope is handed around, never put in the context (Effect.scoped changes the fiber's context and
  // changes it back); finalizers go on it directly: Effect.addFinalizer would restore this fiber's context
  // before each (FiberRefs diffs and a patch), which none of them reads
  Effect.scopedWith((scope) => runIn(scope, stack, entry, deadline, previous))

const runIn = (
  scope: Scope.Scope,
  stack: StackContext,
  entry: ServiceEntry,
  deadline: number,
  previous: string | undefined
) =>
  Effect.gen(function* () {
    const { spec, log } = entry
    const logMatched = spec.readyLogLine === undefined ? undefined : yield* Deferred.make<void>()
    if (logMatched !== undefined && spec.readyLogLine !== undefined) {
      const pattern = new RegExp(spec.readyLogLine)
      let matched = false
      const unsubscribe = log.onLine((line) => {
        if (matched || line.supervisor) return
        // a line of megabytes must not hold the supervisor up, whatever the pattern
        const text = line.text.length > READY_LINE_LIMIT ? line.text.slice(0, READY_LINE_LIMIT) : line.text
        if (pattern.test(text)) {
          matched = true
          Deferred.unsafeDone(logMatched, Effect.void)
        }
      })
      yield* Scope.addFinalizer(scope, Effect.sync(unsubscribe))
    }
    entry.state.set({ ...entry.state.get(), logReady: false })
    const noDataDir = makeDataDirs(stack.dataDir, spec.name)
    if (noDataDir !== undefined) return { _tag: "SpawnFailed", reason: noDataDir } as RunOutcome
    // the process, its exec probes and its shutdown command all see the same environment
    const env = { ...stack.env, ...spec.env }
    const spawned = yield* spawnGroupIn(scope, {
      owner: spec.name,
      command: spec.command,
      args: spec.args,
      cwd: spec.workingDir,
      env,
      shutdown: spec.shutdown,
      onOutput: log.write,
      onEnd: log.end
    }).pipe(Effect.either)
    if (spawned._tag === "Left") return { _tag: "SpawnFailed", reason: spawned.left.message } as RunOutcome
    const proc = spawned.right
    entry.run.group = proc
    yield* Scope.addFinalizer(
      scope,
      Effect.sync(() => {
        entry.run.group = undefined
      })
    )
    const hasReadiness = spec.readiness !== undefined || spec.readyLogLine !== undefined
    const spawnedAt = yield* Clock.currentTimeMillis
    yield* update(stack, entry, () => ({
      state: hasReadiness ? "starting" : "running",
      pid: proc.pid,
      startedAt: spawnedAt,
      exitCode: null,
      reason: previous === undefined ? null : `restarted after: ${previous}`,
      health: spec.readiness ? "unknown" : "none"
    }))
    let ready = !hasReadiness
    let lastProbeFailure: string | undefined

    const probe = spec.readiness
      ? waitReady(
          spec.readiness,
          (ok, reason) => {
            Trace.count(ok ? "readiness check passed" : "readiness check failed")
            if (!ok) lastProbeFailure = reason
          },
          { owner: `${spec.name} (readiness probe)`, env }
        )
      : undefined
    const logLine =
      logMatched !== undefined
        ? Deferred.await(logMatched).pipe(
            Effect.zipRight(Effect.sync(() => entry.state.set({ ...entry.state.get(), logReady: true })))
          )
        : undefined
    // how this run ends: the first of its exit, a missed readiness deadline and a failed liveness probe
    const outcome = yield* Deferred.make<RunOutcome>()
    // one of the two runs in this fiber; both, side by side, only when there are both
    const readiness = (
      probe && logLine
        ? Effect.all([probe, logLine], { concurrency: "unbounded", discard: true })
        : (probe ?? logLine ?? Effect.void)
    ).pipe(
      Effect.zipRight(
        Effect.fiberIdWith((self) => {
          ready = true
          Trace.count("service ready")
          // its deadline is met: the fiber waiting for it goes now, not with the run (the stop of a stack that
          // is ready then has no such fiber to interrupt)
          deadlineFiber?.unsafeInterruptAsFork(self)
          return update(stack, entry, () => ({
            state: "ready",
            health: spec.readiness ? "healthy" : "none",
            reason: null
          }))
        })
      )
    )
    const notReady = Effect.sleep(Math.max(0, deadline - spawnedAt)).pipe(
      Effect.zipRight(
        Effect.suspend(() =>
          ready
            ? Effect.void
            : Deferred.succeed(outcome, {
                _tag: "NotReady",
                reason:
                  `not ready after ${spec.readinessTimeoutMs / 1000} s` +
                  (lastProbeFailure ? ` (last readiness check: ${lastProbeFailure})` : "")
              })
        )
      )
    )
    const liveness = spec.liveness
      ? watchLiveness(
          spec.liveness,
          undefined,
          { owner: `${spec.name} (liveness probe)`, env },
          // a readiness check that just passed said what a first liveness check would: wait one period
          { afterReady: spec.readiness !== undefined }
        ).pipe(
          Effect.catchAll((failure) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              update(stack, entry, () => ({ health: "unhealthy" })).pipe(
                Effect.zipRight(
                  Deferred.succeed(outcome, {
                    _tag: "Unhealthy",
                    reason: `liveness check failed: ${failure.reason}`,
                    ranMs: now - spawnedAt
                  })
                )
              )
            )
          )
        )
      : Effect.void
    // forked in this run's scope, after the group: when the run ends, the scope interrupts and awaits its
    // probes before the group is stopped. A fiber each, not races (a race forks both sides again)
    let deadlineFiber: Fiber.RuntimeFiber<void> | undefined
    if (hasReadiness) {
      deadlineFiber = yield* Effect.forkIn(notReady, scope)
      yield* Effect.forkIn(Effect.zipRight(readiness, liveness), scope)
    } else if (spec.liveness) yield* Effect.forkIn(liveness, scope)
    // the exit ends the run from the group's own callback, with no fiber waiting for it (with no readiness
    // check and no liveness probe, a run has no fiber of its own). With a readiness check, whether it was ready
    // is decided in this fiber, after one turn of the fibers: the readiness fiber, forked above or resumed by
    // a ready line or check before the exit, runs first, so a process that says it is ready and exits at once
    // (even before this fiber got here: its exit is then reported at once) has been ready
    const clock = yield* Effect.clock
    proc.onEnded(({ status }) => {
      const ranMs = clock.unsafeCurrentTimeMillis() - spawnedAt
      const exited = Effect.sync(
        (): RunOutcome => ({
          _tag: "Exited",
          code: status,
          settled: hasReadiness ? ready : ranMs >= SETTLED_MS,
          beforeReady: hasReadiness && !ready,
          ranMs
        })
      )
      Deferred.unsafeDone(outcome, hasReadiness ? Effect.zipRight(Effect.yieldNow(), exited) : exited)
    })
    // the only wait on `outcome`: an exit's effect (above) reads `ready` when it runs, here, once
    return yield* Deferred.await(outcome)
  })

/** The end of a life whose stop was requested (also what the stop's own observer records, synchronously). */
export const stoppedNow = (stack: StackContext, entry: ServiceEntry): void => {
  updateNow(stack, entry, () => ({ state: "stopped", pid: null, reason: "stopped on request" }))
}

/** `stoppedNow` as an effect. */
export const stoppedOnRequest = (stack: StackContext, entry: ServiceEntry): Effect.Effect<void> =>
  Effect.sync(() => stoppedNow(stack, entry))

/**
 * The life of a service from `start` to its end: dependencies, runs, restarts. Interrupting it stops the
 * current run's process group. Its logs carry the service's name. Run it in a fiber of its own (it annotates
 * that fiber's logs for good: an `Effect.annotateLogs` around it would change the fiber's state and change it
 * back, work for each of 200 lives that nothing after them reads).
 */
export const lifecycle = (stack: StackContext, entry: ServiceEntry): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { spec } = entry
    yield* FiberRef.update(FiberRef.currentLogAnnotations, HashMap.set<string, unknown>("service", spec.name))
    if (spec.dependsOn.length > 0) {
      yield* update(stack, entry, () => ({ state: "waiting", reason: null, pid: null }))
      const blocked = yield* awaitDependencies(stack, spec)
      if (blocked !== undefined) {
        yield* update(stack, entry, () => ({ state: "skipped", reason: blocked, pid: null }))
        return
      }
    }
    let policyRestarts = 0
    let consecutiveFailures = 0
    let briefRuns = 0
    let deadline = (yield* Clock.currentTimeMillis) + spec.readinessTimeoutMs
    let previous: string | undefined
    while (true) {
      // a stop sent its signal ahead (LocalSupervisor.signalAhead): the run it ended is the last, and this life
      // ends by itself (the stop awaits it; an interruption's unwinding cost 200 services ~40 ms more). It says
      // "stopped" itself: the stop may be waiting for another service's lock, or be interrupted, and then finds
      // no run of this service left to observe
      if (entry.run.stopRequested) return yield* stoppedOnRequest(stack, entry)
      const outcome = yield* runOnce(stack, entry, deadline, previous)
      if (entry.run.stopRequested) return yield* stoppedOnRequest(stack, entry)
      if (outcome._tag === "SpawnFailed" || outcome._tag === "NotReady") {
        yield* update(stack, entry, () => ({ state: "failed", reason: outcome.reason, pid: null }))
        return
      }
      const code = outcome._tag === "Exited" ? outcome.code : 1
      const settled = outcome._tag === "Exited" ? outcome.settled : true
      const beforeReady = outcome._tag === "Exited" && outcome.beforeReady
      if (settled) consecutiveFailures = 0
      briefRuns = outcome.ranMs < BRIEF_RUN_MS ? briefRuns + 1 : 0
      const decision = decideRestart(
        spec.restart,
        { code, requested: false, beforeReady },
        policyRestarts,
        consecutiveFailures,
        briefRuns
      )
      const reason = outcome._tag === "Unhealthy" ? outcome.reason : undefined
      switch (decision._tag) {
        case "Restart": {
          policyRestarts++
          if (code !== 0 || beforeReady) consecutiveFailures++
          previous = reason ?? `exited with code ${code}${beforeReady ? " before it was ready" : ""}`
          const ended = previous
          yield* update(stack, entry, (s) => ({
            state: "restarting",
            pid: null,
            exitCode: code,
            restarts: s.restarts + 1,
            reason: `${ended}; restarting in ${decision.delayMs} ms`
          }))
          if (decision.delayMs > 0) yield* Effect.sleep(decision.delayMs)
          if (settled) deadline = (yield* Clock.currentTimeMillis) + spec.readinessTimeoutMs
          continue
        }
        case "Done":
          yield* update(stack, entry, () => ({
            state: decision.failed ? "failed" : "completed",
            pid: null,
            exitCode: code,
            reason: reason ?? decision.reason ?? null
          }))
          return
        case "ExitStack": {
          // a run that ended before it was ready failed, whatever its code: the stack's code says so too
          const failed = code !== 0 || beforeReady
          yield* update(stack, entry, () => ({
            state: failed ? "failed" : "completed",
            pid: null,
            exitCode: code,
            reason: decision.reason
          }))
          yield* Deferred.succeed(stack.exitRequested, {
            reason: `${spec.name} ${decision.reason}`,
            exitCode: failed && code === 0 ? 1 : code
          })
          return
        }
      }
    }
  })
