/**
 * The supervisor that runs a stack's processes on this machine: the stack-level verbs. Each service runs its
 * `lifecycle` (see `ServiceRunner`) as one fiber in a `FiberMap` keyed by its name; stopping a service
 * signals its group and lets its life end with the run, or interrupts its fiber, whose scope stops the group
 * (`endRuns`). A per-service lock makes start, stop and restart of one service happen one at a time.
 */
import { Context, Deferred, Effect, Fiber, FiberMap, Option, PubSub, type Scope, Stream } from "effect"
import type { LogError, LogLine } from "../logs/ServiceLog.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { signalGroup } from "../process/ProcessGroup.js"
import { ProcessRegistry } from "../process/ProcessRegistry.js"
import { Spawner } from "../process/Spawner.js"
import { conditionVerdict, settledVerdict } from "../stack/DependencyCondition.js"
import { dependentsOf, stopLevels, topologicalOrder, withDependencies } from "../stack/StackGraph.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { lifecycle, stoppedNow } from "./ServiceRunner.js"
import {
  awaitEvery,
  dependencyState,
  lastLines,
  makeEntry,
  type ServiceEntry,
  type StackContext,
  update,
  updateNow
} from "./ServiceEntry.js"
import {
  type LocalSupervisorShape,
  type StackEnd,
  StartFailed,
  type SupervisorShape,
  UnknownService
} from "./Supervisor.js"
import * as Trace from "../trace/Trace.js"

/** A run a stop level ends: by itself within `graceLeftMs` (its process was sent its stop signal), or interrupted. */
interface RunEnding {
  readonly fiber: Fiber.RuntimeFiber<void, unknown>
  readonly graceLeftMs: number | undefined
}

/**
 * Ends the runs of a stop level and waits for them. A run whose process was sent its stop signal ends by itself
 * once the process has exited (its life ends after a run when a stop was requested): interrupting 200 such runs
 * while their processes were ending took ~40 ms more of `down`, all the unwinding of a fiber's interruption. One
 * still running when its grace period is over is interrupted then, and its scope SIGKILLs the group (its release
 * finds the grace period spent). Every other run (waiting for a dependency, between restarts, stopped by a
 * shutdown command) is interrupted at once. Interrupted itself, this interrupts every run not yet ended and
 * waits for them.
 */
const endRuns = (ending: ReadonlyArray<RunEnding>): Effect.Effect<void> =>
  Effect.flatMap(Effect.fiberId, (self) =>
    Effect.async<void>((resume) => {
      let left = ending.length
      if (left === 0) return resume(Effect.void)
      const timers = new Set<ReturnType<typeof setTimeout>>()
      for (const { fiber, graceLeftMs } of ending) {
        const timer =
          graceLeftMs === undefined ? undefined : setTimeout(() => fiber.unsafeInterruptAsFork(self), graceLeftMs)
        if (timer === undefined) fiber.unsafeInterruptAsFork(self)
        else timers.add(timer)
        fiber.addObserver(() => {
          if (timer !== undefined) {
            clearTimeout(timer)
            timers.delete(timer)
          }
          if (--left === 0) resume(Effect.void)
        })
      }
      return Effect.suspend(() => {
        for (const timer of timers) clearTimeout(timer)
        return Fiber.interruptAll(ending.map((e) => e.fiber))
      })
    })
  )

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
    // the spawner in context (a real supervisor's), for the runs forked from elsewhere (a restart by the API)
    const spawner = yield* Effect.serviceOption(Spawner)
    const nodes = stack.services.map((s) => ({ name: s.name as string, dependsOn: s.dependsOn }))
    const order = topologicalOrder(nodes)
    const transitionsHub = yield* PubSub.unbounded<ServiceStatus>()
    const exitRequested = yield* Deferred.make<StackEnd>()

    const entries = new Map<string, ServiceEntry>()
    for (const name of order) {
      entries.set(name, yield* makeEntry(stack.services.find((s) => s.name === name)!, stack.stateDir))
    }
    const context: StackContext = {
      entries,
      transitions: transitionsHub,
      exitRequested,
      env: options.env ?? process.env,
      dataDir: stack.dataDir
    }

    const runs = yield* FiberMap.make<string, void>()

    const entryOf = (name: string) => {
      const entry = entries.get(name)
      return entry ? Effect.succeed(entry) : Effect.fail(new UnknownService({ name, known: order }))
    }

    const isRunning = (name: string) => FiberMap.has(runs, name)

    // what the lives need in their context, provided once for every fork of a `launch` (a fiber forked by
    // FiberMap takes its parent's context), not around each life (two FiberRef changes each, and their undoing)
    const processes = Option.match(spawner, {
      onNone: () => Context.make(ProcessRegistry, registry),
      onSome: (s) => Context.make(ProcessRegistry, registry).pipe(Context.add(Spawner, s))
    })

    /** Forks the lifecycle of each service of `list` that is not disabled and not running already. */
    const launch = (list: ReadonlyArray<ServiceEntry>) =>
      Effect.provide(
        Effect.forEach(
          list,
          (entry) => {
            if (entry.spec.disabled || FiberMap.unsafeHas(runs, entry.spec.name)) return Effect.void
            entry.run.stopRequested = false
            updateNow(context, entry, () => ({ state: "pending", reason: null }))
            return FiberMap.run(runs, entry.spec.name, lifecycle(context, entry))
          },
          { discard: true }
        ),
        processes
      )

    /**
     * Waits until every one of `list` has settled; fails with the reason and last lines of the first that could
     * not start, once the services of `list` whose condition on it directly it now fails have moved on from
     * waiting (skipped: a dependency that can no longer be met ends such a wait at once, so this is bounded).
     */
    const awaitSettled = (list: ReadonlyArray<ServiceEntry>) =>
      awaitEvery(
        list.map((entry) => entry.state),
        (index, { status }) => {
          const verdict = settledVerdict(status)
          return verdict === "wait" || verdict === "met" ? verdict : { entry: list[index]!, status }
        }
      ).pipe(
        Effect.flatMap((failed) => {
          if (failed === undefined) return Effect.void
          // only those for which the failure fails their condition: they are skipped within a turn of the fibers,
          // where one whose condition the failure meets (`process_completed`) may wait for others for long
          const name = failed.entry.spec.name
          const now = dependencyState(failed.entry, failed.entry.state.get())
          const waiting = list
            .filter((entry) =>
              entry.spec.dependsOn.some(
                (d) => d.name === name && typeof conditionVerdict(d.condition, now) === "object"
              )
            )
            .map((entry) => entry.state)
          const movedOn = awaitEvery(waiting, (_, { status }) =>
            status.state === "pending" || status.state === "waiting" ? "wait" : "met"
          )
          return movedOn.pipe(
            Effect.zipRight(lastLines(failed.entry)),
            Effect.flatMap((lines) =>
              Effect.fail(
                new StartFailed({
                  service: failed.entry.spec.name,
                  reason: failed.status.reason ?? failed.status.state,
                  lastLines: lines
                })
              )
            )
          )
        })
      )

    /** Takes `entry`'s lock; `held` has it from the moment it is taken (never a lock taken and not recorded). */
    const takeLock = (entry: ServiceEntry, held: Set<ServiceEntry>) =>
      entry.lock.take(() => {
        held.add(entry)
      })

    /** Gives back `entry`'s lock if `held` still has it: once, whichever of a run's end and the stop's end comes first. */
    const releaseLock = (entry: ServiceEntry, held: Set<ServiceEntry>) => {
      if (held.delete(entry)) entry.lock.release()
    }

    /**
     * Stops the running services of one stop level together (`noteStopping`: false when the whole stack goes
     * down; the log still gets the "stopped" note). It takes their locks one after the other, in stack order,
     * so that two stops that overlap cannot hold each other up (a stop holds the locks of one level at a time),
     * says "stopping", and ends all their runs at once (`endRuns`: the scopes stop the groups side by side). Each
     * service is "stopped", and its lock free, as soon as its own run has ended (an observer of its fiber): a
     * slow sibling holds up neither its status nor a `start` of it. All in this one fiber: a forked stop for
     * each service, each with its own lock and its own removal from the map, cost 200 services ~20 ms more
     * (traced `down`).
     */
    const stopLevel = (level: ReadonlyArray<string>, noteStopping: boolean) => {
      const inLevel = new Set(level)
      const levelEntries = order.filter((name) => inLevel.has(name)).map((name) => entries.get(name)!)
      const held = new Set<ServiceEntry>()
      return Effect.forEach(levelEntries, (entry) => takeLock(entry, held), { discard: true }).pipe(
        Effect.zipRight(
          Effect.gen(function* () {
            const ending: Array<RunEnding> = []
            for (const entry of levelEntries) {
              const fiber = FiberMap.unsafeGet(runs, entry.spec.name)
              if (Option.isNone(fiber)) continue
              yield* update(context, entry, () => ({ state: "stopping" }), noteStopping)
              // its current group's, if signalled (by this stop or an earlier one): a run since then is not
              ending.push({ fiber: fiber.value, graceLeftMs: entry.run.group?.graceLeftMs() })
              fiber.value.addObserver(() => {
                if (!held.has(entry)) return
                // a run that ended by itself has said so already (`stoppedOnRequest`)
                if (entry.state.get().status.state !== "stopped") stoppedNow(context, entry)
                Trace.count("service stopped")
                releaseLock(entry, held)
              })
            }
            yield* endRuns(ending)
          })
        ),
        Effect.ensuring(
          Effect.sync(() => {
            for (const entry of [...held]) releaseLock(entry, held)
          })
        )
      )
    }

    /**
     * Sends the stop signal to every running group of a level, ahead of the orderly stops (a lock and state
     * updates each, which 200 services take long to get through): the processes end meanwhile, and their runs
     * with them (`endRuns`). The signals of several groups go out from the
     * guardian, in one line to it: 200 `kill()`s held this thread ~45 ms (each wakes a process that exits at
     * once, on two cores), time the orderly stops now have; without a guardian, one synchronous loop.
     */
    const signalAhead = (level: ReadonlyArray<string>) =>
      Effect.sync(() => {
        const bySignal = new Map<NodeJS.Signals, Array<number>>()
        for (const name of level) {
          const { run } = entries.get(name)!
          run.stopRequested = true
          const group = run.group
          const signal = group?.claimStopSignal()
          if (group === undefined || signal === undefined) continue
          const pgids = bySignal.get(signal) ?? []
          pgids.push(group.pid)
          bySignal.set(signal, pgids)
        }
        for (const [signal, pgids] of bySignal) {
          if (pgids.length > 1 && registry.signalGroups?.(signal, pgids)) {
            Trace.mark(`stop signal of ${pgids.length} groups handed to the guardian`)
            continue
          }
          for (const pgid of pgids) signalGroup(pgid, signal)
          Trace.mark(`stop signal sent to ${pgids.length} group(s)`)
        }
      })

    const stopAll = (names: ReadonlyArray<string>, noteStopping = true) =>
      Effect.forEach(
        stopLevels(nodes.filter((n) => names.includes(n.name))),
        (level) => Effect.zipRight(signalAhead(level), stopLevel(level, noteStopping)),
        { discard: true }
      )

    // nothing to do when nothing runs (the scope's close after a `down`)
    const shutdown = Effect.flatMap(FiberMap.size(runs), (running) =>
      running === 0
        ? Effect.void
        : Effect.sync(() => Trace.mark("stopping every service")).pipe(
            Effect.zipRight(
              Effect.suspend(() => {
                const stop = stopAll(order, false)
                const pgids = order.flatMap((name) => entries.get(name)!.run.group?.pid ?? [])
                return registry.unregisterAfter?.(pgids, stop) ?? stop
              })
            ),
            Effect.zipRight(
              Effect.sync(() => {
                Trace.summary()
                Trace.mark("every service stopped")
              })
            )
          )
    )
    yield* Effect.addFinalizer(() => shutdown)

    const forService = <A, E, R>(effect: Effect.Effect<A, E, R>, name: string) =>
      Effect.annotateLogs(effect, { service: name })

    const up: SupervisorShape["up"] = Effect.fn("Supervisor.up")(function* (names: ReadonlyArray<string> = []) {
      for (const name of names) yield* entryOf(name)
      const targets = names.length === 0 ? order.filter((n) => !entries.get(n)!.spec.disabled) : names
      const all = withDependencies(nodes, targets)
      const list = all.map((name) => entries.get(name)!)
      yield* launch(list)
      yield* awaitSettled(list)
    })

    const start: SupervisorShape["start"] = Effect.fn("Supervisor.start")(function* (name: string) {
      const entry = yield* entryOf(name)
      for (const dependency of entry.spec.dependsOn) {
        const other = entries.get(dependency.name)!
        const internal = other.state.get()
        const verdict = conditionVerdict(dependency.condition, dependencyState(other, internal))
        const idle = internal.status.state === "pending" || internal.status.state === "stopped"
        if (typeof verdict === "object" || (verdict === "wait" && idle)) {
          return yield* new StartFailed({
            service: name,
            reason: `dependency ${dependency.name} is ${internal.status.state}; start it first`,
            lastLines: []
          })
        }
      }
      yield* entry.lock.withLock(launch([entry]))
      yield* awaitSettled([entry])
    }, forService)

    const stop: SupervisorShape["stop"] = Effect.fn("Supervisor.stop")(function* (name: string) {
      yield* entryOf(name)
      yield* stopAll([...dependentsOf(nodes, name), name])
    }, forService)

    const restart: SupervisorShape["restart"] = Effect.fn("Supervisor.restart")(function* (name: string) {
      const entry = yield* entryOf(name)
      yield* entry.lock.withLock(
        Effect.gen(function* () {
          if (yield* isRunning(name)) {
            yield* update(context, entry, () => ({ state: "stopping" }))
            yield* FiberMap.remove(runs, name)
          }
          yield* update(context, entry, (s) => ({ restarts: s.restarts + 1 }))
          yield* launch([entry])
        })
      )
      yield* awaitSettled([entry])
    }, forService)

    const statusOf = (name: string) =>
      Effect.flatMap(entryOf(name), (entry) =>
        Effect.sync(() => {
          const { status } = entry.state.get()
          const dropped = entry.log.droppedBytes()
          return dropped > 0 ? { ...status, droppedLogBytes: dropped } : status
        })
      )

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
