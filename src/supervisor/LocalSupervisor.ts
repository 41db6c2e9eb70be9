/**
 * The supervisor that runs a stack's processes on this machine.
 *
 * Each service runs as one fiber in a `FiberMap` keyed by its name: wait for the dependencies' conditions,
 * spawn the process group (a scoped resource), wait for readiness, watch liveness, and apply the restart
 * policy when the process ends. Stopping a service interrupts its fiber, whose scope stops the group.
 * A per-service semaphore makes start, stop and restart of one service happen one at a time.
 */
import { Clock, Deferred, Effect, FiberMap, Option, PubSub, type Scope, Stream, SubscriptionRef } from "effect"
import { waitReady, watchLiveness } from "../health/Probe.js"
import { type LogError, type LogLine, makeServiceLog, type ServiceLog } from "../logs/ServiceLog.js"
import type { DependencyCondition } from "../manifest/ServiceManifest.js"
import type { ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"
import { dependentsOf, stopLevels, topologicalOrder, withDependencies } from "../stack/StackGraph.js"
import { serviceLogPath } from "../state/StateDir.js"
import { ProcessRegistry } from "./ProcessRegistry.js"
import { spawnGroup } from "./ProcessGroup.js"
import { decideRestart } from "./RestartPolicy.js"
import { hasProcess, type ServiceState, type ServiceStatus } from "./ServiceStatus.js"
import { type LocalSupervisorShape, StartFailed, type SupervisorShape, UnknownService } from "./Supervisor.js"

/**
 * A run that ends after it was ready (or, without a readiness check, after this long) resets the count of
 * consecutive failures that the exponential backoff grows with.
 */
const SETTLED_MS = 10_000

/** Lines of a failed service's output quoted in its error. */
const FAILURE_TAIL = 15

interface Internal {
  readonly status: ServiceStatus
  /** `ready_log_line` matched in the current run. */
  readonly logReady: boolean
}

interface Entry {
  readonly spec: ServiceSpec
  readonly log: ServiceLog
  readonly state: SubscriptionRef.SubscriptionRef<Internal>
  readonly lock: Effect.Semaphore
}

/** How one run of a process ended. */
type RunOutcome =
  | { readonly _tag: "Exited"; readonly code: number; readonly settled: boolean }
  | { readonly _tag: "SpawnFailed"; readonly reason: string }
  | { readonly _tag: "NotReady"; readonly reason: string }
  | { readonly _tag: "Unhealthy"; readonly reason: string }

type Verdict = "met" | "wait" | { readonly failed: string }

/** Whether a dependency's state satisfies a `depends_on` condition, may still, or never will. */
export const conditionVerdict = (
  condition: DependencyCondition,
  dependency: { readonly status: ServiceStatus; readonly logReady: boolean; readonly hasLogLine: boolean }
): Verdict => {
  const { state, exitCode, reason } = dependency.status
  const gone: ReadonlyArray<ServiceState> = ["failed", "skipped", "disabled", "stopped"]
  const why = `it is ${state}${reason ? ` (${reason})` : ""}`
  switch (condition) {
    case "process_started":
      if (state === "starting" || state === "running" || state === "ready" || state === "completed") return "met"
      if (state === "failed" && exitCode !== null) return "met"
      return gone.includes(state) ? { failed: why } : "wait"
    case "process_healthy":
    case "process_log_ready":
      if (condition === "process_log_ready" && dependency.hasLogLine) {
        if (dependency.logReady && (state === "starting" || state === "running" || state === "ready")) return "met"
      } else if (state === "running" || state === "ready") return "met"
      return gone.includes(state) || state === "completed" ? { failed: why } : "wait"
    case "process_completed":
      if (state === "completed" || (state === "failed" && exitCode !== null)) return "met"
      return gone.includes(state) ? { failed: why } : "wait"
    case "process_completed_successfully":
      if (state === "completed" && exitCode === 0) return "met"
      if (state === "completed" || gone.includes(state)) return { failed: why }
      return "wait"
  }
}

/** States from which a service settles `up`: it runs, is ready, or ran to completion. */
const settledOk = (state: ServiceState) => state === "running" || state === "ready" || state === "completed"
const settledBad = (state: ServiceState) =>
  state === "failed" || state === "skipped" || state === "stopped" || state === "disabled"

/**
 * Builds a supervisor for `stack`. Nothing runs until `up` or `start`. Closing the scope shuts every service
 * down in reverse dependency order, then closes the log files.
 */
export const makeLocalSupervisor = (
  stack: StackSpec,
  options: {
    /** The environment the services inherit (their own `env` goes over it). Default `process.env`. */
    readonly env?: Readonly<Record<string, string | undefined>>
  } = {}
): Effect.Effect<LocalSupervisorShape, LogError, Scope.Scope | ProcessRegistry> =>
  Effect.gen(function* () {
    const registry = yield* ProcessRegistry
    const nodes = stack.services.map((s) => ({ name: s.name as string, dependsOn: s.dependsOn }))
    const order = topologicalOrder(nodes)
    const transitionsHub = yield* PubSub.unbounded<ServiceStatus>()
    const exitRequested = yield* Deferred.make<string>()

    const entries = new Map<string, Entry>()
    for (const name of order) {
      const spec = stack.services.find((s) => s.name === name)!
      const log = yield* makeServiceLog({ name, file: serviceLogPath(stack.stateDir, name) })
      const state = yield* SubscriptionRef.make<Internal>({
        logReady: false,
        status: {
          name,
          state: spec.disabled ? "disabled" : "pending",
          health: spec.readiness ? "unknown" : "none",
          pid: null,
          restarts: 0,
          startedAt: null,
          exitCode: null,
          reason: spec.disabled ? "disabled in its manifest" : null,
          ports: spec.ports
        }
      })
      entries.set(name, { spec, log, state, lock: yield* Effect.makeSemaphore(1) })
    }

    const runs = yield* FiberMap.make<string, void>()

    const entryOf = (name: string) => {
      const entry = entries.get(name)
      return entry ? Effect.succeed(entry) : Effect.fail(new UnknownService({ name, known: order }))
    }

    /** Changes a service's status, publishes it, and notes a new state (or reason) in its log. */
    const update = (entry: Entry, f: (status: ServiceStatus) => Partial<ServiceStatus>) =>
      SubscriptionRef.modify(entry.state, (current) => {
        const next = { ...current.status, ...f(current.status) }
        const status: ServiceStatus = hasProcess(next.state)
          ? next
          : {
              ...next,
              health:
                next.health === "unhealthy" && (next.state === "restarting" || next.state === "failed")
                  ? "unhealthy"
                  : entry.spec.readiness
                    ? "unknown"
                    : "none"
            }
        const noted = status.state !== current.status.state || status.reason !== current.status.reason
        return [
          { status, noted },
          { ...current, status }
        ] as const
      }).pipe(
        Effect.tap(({ status }) => PubSub.publish(transitionsHub, status)),
        Effect.tap(({ status, noted }) =>
          noted
            ? Effect.sync(() => entry.log.note(`${status.state}${status.reason ? `: ${status.reason}` : ""}`))
            : Effect.void
        ),
        Effect.map(({ status }) => status)
      )

    const lastLines = (entry: Entry) =>
      entry.log.tail(FAILURE_TAIL * 4).pipe(
        Effect.map((lines) =>
          lines
            .filter((l) => !l.supervisor)
            .slice(-FAILURE_TAIL)
            .map((l) => l.text)
        )
      )

    /** Waits for every dependency's condition; the reason when one can no longer be met. */
    const awaitDependencies = (spec: ServiceSpec): Effect.Effect<string | undefined> =>
      Effect.forEach(
        spec.dependsOn,
        ({ name, condition }) => {
          const dependency = entries.get(name)!
          return dependency.state.changes.pipe(
            Stream.map((internal) =>
              conditionVerdict(condition, {
                ...internal,
                hasLogLine: dependency.spec.readyLogLine !== undefined
              })
            ),
            Stream.filter((verdict) => verdict !== "wait"),
            Stream.runHead,
            Effect.map((verdict) =>
              Option.isSome(verdict) && verdict.value !== "met"
                ? `dependency ${name} can no longer be ${condition.replace("process_", "")}: ${verdict.value.failed}`
                : undefined
            )
          )
        },
        { concurrency: "unbounded" }
      ).pipe(Effect.map((reasons) => reasons.find((r) => r !== undefined)))

    /** One run of the process: spawn, readiness within the deadline, liveness, until it ends. */
    const runOnce = (entry: Entry, deadline: number) =>
      Effect.gen(function* () {
        const { spec, log } = entry
        const logMatched = yield* Deferred.make<void>()
        if (spec.readyLogLine !== undefined) {
          const pattern = new RegExp(spec.readyLogLine)
          const unsubscribe = log.onLine((line) => {
            if (!line.supervisor && pattern.test(line.text)) Deferred.unsafeDone(logMatched, Effect.void)
          })
          yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
        }
        yield* SubscriptionRef.update(entry.state, (s) => ({ ...s, logReady: false }))
        const spawned = yield* spawnGroup({
          service: spec.name,
          command: spec.command,
          args: spec.args,
          cwd: spec.workingDir,
          env: { ...(options.env ?? process.env), ...spec.env },
          shutdown: spec.shutdown,
          onOutput: log.write,
          onEnd: log.end
        }).pipe(Effect.either)
        if (spawned._tag === "Left") return { _tag: "SpawnFailed", reason: spawned.left.message } as RunOutcome
        const proc = spawned.right
        const hasReadiness = spec.readiness !== undefined || spec.readyLogLine !== undefined
        const startedAt = Date.now()
        yield* update(entry, () => ({
          state: hasReadiness ? "starting" : "running",
          pid: proc.pid,
          startedAt,
          exitCode: null,
          reason: null,
          health: spec.readiness ? "unknown" : "none"
        }))
        let ready = !hasReadiness
        const spawnedAt = yield* Clock.currentTimeMillis
        let lastProbeFailure: string | undefined

        const readiness = Effect.all(
          [
            spec.readiness
              ? waitReady(spec.readiness, (ok, reason) => {
                  if (!ok) lastProbeFailure = reason
                })
              : Effect.void,
            spec.readyLogLine !== undefined
              ? Deferred.await(logMatched).pipe(
                  Effect.zipRight(SubscriptionRef.update(entry.state, (s) => ({ ...s, logReady: true })))
                )
              : Effect.void
          ],
          { concurrency: "unbounded", discard: true }
        ).pipe(
          Effect.timeoutOption(Math.max(0, deadline - Date.now())),
          Effect.flatMap((done) =>
            Option.isSome(done)
              ? Effect.gen(function* () {
                  ready = true
                  yield* update(entry, () => ({
                    state: "ready",
                    health: spec.readiness ? "healthy" : "none",
                    reason: null
                  }))
                })
              : Effect.fail({
                  _tag: "NotReady",
                  reason:
                    `not ready after ${spec.readinessTimeoutMs / 1000} s` +
                    (lastProbeFailure ? ` (last readiness check: ${lastProbeFailure})` : "")
                } as RunOutcome)
          )
        )
        const liveness = spec.liveness
          ? watchLiveness(spec.liveness).pipe(
              Effect.catchAll((failure) =>
                Effect.fail({ _tag: "Unhealthy", reason: `liveness check failed: ${failure.reason}` } as RunOutcome)
              )
            )
          : Effect.never
        const watch = (hasReadiness ? readiness : Effect.void).pipe(
          Effect.zipRight(liveness),
          Effect.flip,
          Effect.tap((outcome) =>
            outcome._tag === "Unhealthy" ? update(entry, () => ({ health: "unhealthy" })) : Effect.void
          )
        )
        const exited = proc.exit.pipe(
          Effect.zip(Clock.currentTimeMillis),
          Effect.map(
            ([code, now]): RunOutcome => ({
              _tag: "Exited",
              code,
              settled: hasReadiness ? ready : now - spawnedAt >= SETTLED_MS
            })
          )
        )
        return yield* Effect.raceFirst(exited, watch)
      }).pipe(Effect.scoped)

    /** The life of a service from `start` to its end: dependencies, runs, restarts. */
    const lifecycle = (entry: Entry) =>
      Effect.gen(function* () {
        const { spec } = entry
        if (spec.dependsOn.length > 0) {
          yield* update(entry, () => ({ state: "waiting", reason: null, pid: null }))
          const blocked = yield* awaitDependencies(spec)
          if (blocked !== undefined) {
            yield* update(entry, () => ({ state: "skipped", reason: blocked, pid: null }))
            return
          }
        }
        let policyRestarts = 0
        let consecutiveFailures = 0
        let deadline = Date.now() + spec.readinessTimeoutMs
        while (true) {
          const outcome = yield* runOnce(entry, deadline)
          if (outcome._tag === "SpawnFailed" || outcome._tag === "NotReady") {
            yield* update(entry, () => ({ state: "failed", reason: outcome.reason, pid: null }))
            return
          }
          const code = outcome._tag === "Exited" ? outcome.code : 1
          const settled = outcome._tag === "Exited" ? outcome.settled : true
          if (settled) consecutiveFailures = 0
          const decision = decideRestart(spec.restart, { code, requested: false }, policyRestarts, consecutiveFailures)
          const reason = outcome._tag === "Unhealthy" ? outcome.reason : undefined
          switch (decision._tag) {
            case "Restart": {
              policyRestarts++
              if (code !== 0) consecutiveFailures++
              yield* update(entry, (s) => ({
                state: "restarting",
                pid: null,
                exitCode: code,
                restarts: s.restarts + 1,
                reason: `${reason ?? `exited with code ${code}`}; restarting in ${decision.delayMs} ms`
              }))
              yield* Effect.sleep(decision.delayMs)
              if (settled) deadline = Date.now() + spec.readinessTimeoutMs
              continue
            }
            case "Done":
              yield* update(entry, () => ({
                state: decision.failed ? "failed" : "completed",
                pid: null,
                exitCode: code,
                reason: reason ?? decision.reason ?? null
              }))
              return
            case "ExitStack":
              yield* update(entry, () => ({
                state: code === 0 ? "completed" : "failed",
                pid: null,
                exitCode: code,
                reason: decision.reason
              }))
              yield* Deferred.succeed(exitRequested, `${spec.name} ${decision.reason}`)
              return
          }
        }
      }).pipe(Effect.provideService(ProcessRegistry, registry))

    const isRunning = (name: string) => FiberMap.has(runs, name)

    /** Fork the lifecycle of a service unless it is already running. */
    const launch = (entry: Entry) =>
      Effect.gen(function* () {
        if (entry.spec.disabled) return
        if (yield* isRunning(entry.spec.name)) return
        yield* update(entry, () => ({ state: "pending", reason: null }))
        yield* FiberMap.run(runs, entry.spec.name, lifecycle(entry))
      })

    /** Waits until a service settles; fails with its reason and last lines when it could not start. */
    const awaitSettled = (entry: Entry) =>
      entry.state.changes.pipe(
        Stream.map((s) => s.status),
        Stream.filter((s) => settledOk(s.state) || settledBad(s.state)),
        Stream.runHead,
        Effect.flatMap((status) =>
          Option.isSome(status) && settledOk(status.value.state)
            ? Effect.void
            : Effect.flatMap(lastLines(entry), (lines) =>
                Effect.fail(
                  new StartFailed({
                    service: entry.spec.name,
                    reason: Option.match(status, {
                      onNone: () => "stopped",
                      onSome: (s) => s.reason ?? s.state
                    }),
                    lastLines: lines
                  })
                )
              )
        )
      )

    const stopOne = (entry: Entry) =>
      entry.lock.withPermits(1)(
        Effect.gen(function* () {
          if (!(yield* isRunning(entry.spec.name))) return
          yield* update(entry, () => ({ state: "stopping" }))
          yield* FiberMap.remove(runs, entry.spec.name)
          yield* update(entry, () => ({ state: "stopped", pid: null, reason: "stopped on request" }))
        })
      )

    const stopAll = (names: ReadonlyArray<string>) =>
      Effect.forEach(
        stopLevels(nodes.filter((n) => names.includes(n.name))),
        (level) => Effect.forEach(level, (name) => stopOne(entries.get(name)!), { concurrency: "unbounded" }),
        { discard: true }
      )

    const shutdown = stopAll(order)
    yield* Effect.addFinalizer(() => shutdown)

    const up: SupervisorShape["up"] = (names = []) =>
      Effect.gen(function* () {
        for (const name of names) yield* entryOf(name)
        const targets = names.length === 0 ? order.filter((n) => !entries.get(n)!.spec.disabled) : names
        const all = withDependencies(nodes, targets)
        for (const name of all) yield* launch(entries.get(name)!)
        yield* Effect.forEach(all, (name) => awaitSettled(entries.get(name)!), { concurrency: "unbounded" })
      })

    const start: SupervisorShape["start"] = (name) =>
      Effect.gen(function* () {
        const entry = yield* entryOf(name)
        for (const dependency of entry.spec.dependsOn) {
          const other = entries.get(dependency.name)!
          const internal = yield* SubscriptionRef.get(other.state)
          const verdict = conditionVerdict(dependency.condition, {
            ...internal,
            hasLogLine: other.spec.readyLogLine !== undefined
          })
          const idle = internal.status.state === "pending" || internal.status.state === "stopped"
          if (typeof verdict === "object" || (verdict === "wait" && idle)) {
            return yield* new StartFailed({
              service: name,
              reason: `dependency ${dependency.name} is ${internal.status.state}; start it first`,
              lastLines: []
            })
          }
        }
        yield* entry.lock.withPermits(1)(launch(entry))
        yield* awaitSettled(entry)
      })

    const stop: SupervisorShape["stop"] = (name) =>
      Effect.gen(function* () {
        yield* entryOf(name)
        yield* stopAll([...dependentsOf(nodes, name), name])
      })

    const restart: SupervisorShape["restart"] = (name) =>
      Effect.gen(function* () {
        const entry = yield* entryOf(name)
        yield* entry.lock.withPermits(1)(
          Effect.gen(function* () {
            if (yield* isRunning(name)) {
              yield* update(entry, () => ({ state: "stopping" }))
              yield* FiberMap.remove(runs, name)
            }
            yield* update(entry, (s) => ({ restarts: s.restarts + 1 }))
            yield* launch(entry)
          })
        )
        yield* awaitSettled(entry)
      })

    const statusOf = (name: string) =>
      Effect.flatMap(entryOf(name), (entry) => Effect.map(SubscriptionRef.get(entry.state), (s) => s.status))

    return {
      stack,
      status: Effect.forEach(order, (name) => Effect.orDie(statusOf(name))),
      statusOf,
      transitions: Stream.fromPubSub(transitionsHub),
      up,
      start,
      stop,
      restart,
      logs: (name, n) => Effect.flatMap(entryOf(name), (entry) => entry.log.tail(n)),
      follow: (name, n) =>
        Stream.unwrap(Effect.map(entryOf(name), (entry): Stream.Stream<LogLine> => entry.log.follow(n))),
      onLine: (listener: (service: string, line: LogLine) => void) => {
        const unsubscribes = order.map((name) => entries.get(name)!.log.onLine((line) => listener(name, line)))
        return () => {
          for (const unsubscribe of unsubscribes) unsubscribe()
        }
      },
      shutdown,
      exitRequested: Deferred.await(exitRequested)
    }
  })
