/**
 * A service of the stack as the supervisor holds it: its spec, log, state cell and current run (`ServiceEntry`),
 * what the services of one stack share (`StackContext`), and the changes of a service's status (`update`).
 * The life of a service that moves through these states is in `ServiceRunner`.
 */
import { type Deferred, Effect, type PubSub, type Scope } from "effect"
import { type LogError, makeServiceLog, type ServiceLog } from "../logs/ServiceLog.js"
import type { ServiceSpec } from "../manifest/ServiceSpec.js"
import type { ProcessGroup } from "../process/ProcessGroup.js"
import { hasProcess, type ServiceStatus } from "../stack/ServiceStatus.js"
import { serviceLogPath } from "../state/StateDir.js"
import type { StackEnd } from "./Supervisor.js"

/** Lines of a failed service's output quoted in its error. */
const FAILURE_TAIL = 15

export interface Internal {
  readonly status: ServiceStatus
  /** `ready_log_line` matched in the current run. */
  readonly logReady: boolean
}

/**
 * A service's current `Internal` state, and its watchers. Plain callbacks rather than a `SubscriptionRef` and
 * its `changes` stream: every wait on a stream of changes costs a fiber and a channel pipeline, and each change
 * ran through all of them; with 200 services that was ~400 runtime operations per service before its first
 * spawn event (counted in a traced start). `set` calls every watcher synchronously, so a watcher sees every
 * state, in order, as the stream did. Waits on cells are `awaitEvery`'s.
 */
export interface StateCell {
  readonly get: () => Internal
  /** Replaces the state and offers it to every watcher. */
  readonly set: (next: Internal) => void
  /** Calls `listener` with each new state, synchronously, until the returned function is called. */
  readonly watch: (listener: (state: Internal) => void) => () => void
}

/** A cell holding `initial`, with no watchers. */
const makeStateCell = (initial: Internal): StateCell => {
  let current = initial
  const watchers = new Set<(state: Internal) => void>()
  return {
    get: () => current,
    set: (next) => {
      current = next
      for (const watcher of watchers) watcher(next)
    },
    watch: (listener) => {
      // a wrapper of its own: the same listener watching twice is two watches
      const watcher = (state: Internal) => listener(state)
      watchers.add(watcher)
      return () => watchers.delete(watcher)
    }
  }
}

/**
 * Waits on several cells at once: until `verdict` is "met" for every one (each counted from the first time it
 * is, whatever comes after), then `undefined`; or until it gives something else for one, then that, at once.
 * One wait for all, not a fiber per cell: `up` waits for every service, a service for each of its dependencies.
 */
export const awaitEvery = <A>(
  cells: ReadonlyArray<StateCell>,
  verdict: (index: number, state: Internal) => "wait" | "met" | A
): Effect.Effect<A | undefined> =>
  Effect.async<A | undefined>((resume) => {
    let left = cells.length
    let done = false
    const unwatch: Array<() => void> = []
    const end = () => {
      done = true
      for (const stop of unwatch.splice(0)) stop()
    }
    const finish = (found: A | undefined) => {
      end()
      resume(Effect.succeed(found))
    }
    cells.forEach((cell, index) => {
      if (done) return
      let decided = false
      let stop: (() => void) | undefined
      const check = (state: Internal) => {
        if (decided || done) return
        const v = verdict(index, state)
        if (v === "wait") return
        decided = true
        stop?.()
        if (v !== "met") finish(v)
        else if (--left === 0) finish(undefined)
      }
      check(cell.get())
      if (!decided && !done) {
        stop = cell.watch(check)
        unwatch.push(stop)
      }
    })
    if (left === 0 && !done) finish(undefined)
    return Effect.sync(end)
  })

/**
 * A lock that one holder has at a time, handed to the waiters in turn. Unlike `Effect.Semaphore`, it is given
 * back with a plain call: a whole stop gives back 200 locks from its fibers' observers, where a semaphore's
 * release needed a fiber of its own each (`Effect.runSync`).
 */
export interface Lock {
  /**
   * Waits for the lock and takes it. `onTaken` runs at the moment it is taken, in the same step: whoever it
   * records as the holder then gives it back, even if this fiber is interrupted right after. Interrupted while
   * waiting, it has not taken it.
   */
  readonly take: (onTaken: () => void) => Effect.Effect<void>
  /** Gives the lock back: to the first waiter, or free. Only its holder calls this, once per take. */
  readonly release: () => void
  /** Runs `effect` holding the lock; interruptible while it waits for it. */
  readonly withLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const makeLock = (): Lock => {
  let held = false
  const waiters: Array<() => void> = []
  const release = () => {
    const next = waiters.shift()
    if (next !== undefined) next()
    else held = false
  }
  const take = (onTaken: () => void) =>
    Effect.async<void>((resume) => {
      if (!held) {
        held = true
        onTaken()
        return resume(Effect.void)
      }
      const waiter = () => {
        onTaken()
        resume(Effect.void)
      }
      waiters.push(waiter)
      // interrupted while waiting: out of the queue. Handed the lock already, it is recorded as taken (onTaken),
      // and its holder gives it back
      return Effect.sync(() => {
        const at = waiters.indexOf(waiter)
        if (at >= 0) waiters.splice(at, 1)
      })
    })
  return {
    take,
    release,
    withLock: (effect) =>
      Effect.suspend(() => {
        let mine = false
        return Effect.uninterruptibleMask((restore) =>
          restore(
            take(() => {
              mine = true
            })
          ).pipe(
            Effect.zipRight(restore(effect)),
            Effect.ensuring(
              Effect.sync(() => {
                if (!mine) return
                mine = false
                release()
              })
            )
          )
        )
      })
  }
}

/** A service of the stack: its spec, log, state, and the lock that makes its verbs run one at a time. */
export interface ServiceEntry {
  readonly spec: ServiceSpec
  readonly log: ServiceLog
  readonly state: StateCell
  readonly lock: Lock
  readonly run: CurrentRun
}

/**
 * What a stop reads synchronously, to signal a whole stop level in one loop before the services' orderly
 * stops (see `signalAhead` in LocalSupervisor).
 */
export interface CurrentRun {
  /** The process group of the current run, while it has one. */
  group: ProcessGroup | undefined
  /**
   * A stop has signalled this run: a process that ends meanwhile is not restarted, and the life ends as
   * "stopped" (`stoppedOnRequest`), unless the stop interrupts it first. Cleared when the service is launched.
   */
  stopRequested: boolean
}

/** What the services of one stack share. */
export interface StackContext {
  readonly entries: ReadonlyMap<string, ServiceEntry>
  /** Every status change of every service. */
  readonly transitions: PubSub.PubSub<ServiceStatus>
  /** Completed when a service asks the whole stack to end. */
  readonly exitRequested: Deferred.Deferred<StackEnd>
  /** The environment the services inherit (their own `env` goes over it). */
  readonly env: Readonly<Record<string, string | undefined>>
  /** `${data}`: made (0700) before a service starts, with a folder of the service's name in it. */
  readonly dataDir: string
}

/** A service's entry, its log file open in `stateDir/logs`; pending (or disabled), not started. */
export const makeEntry = (spec: ServiceSpec, stateDir: string): Effect.Effect<ServiceEntry, LogError, Scope.Scope> =>
  Effect.gen(function* () {
    const name = spec.name as string
    const log = yield* makeServiceLog({
      name,
      file: serviceLogPath(stateDir, name)
    })
    const state = makeStateCell({
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
    return { spec, log, state, lock: makeLock(), run: { group: undefined, stopRequested: false } }
  })

/**
 * Changes a service's status, publishes it, and notes a new state (or reason) in its log (unless `note` is
 * false). Synchronous: the stack's hub is unbounded, so the offer always succeeds (a start of 200 services
 * went through the runtime for each of its 400 changes).
 */
export const updateNow = (
  stack: StackContext,
  entry: ServiceEntry,
  f: (status: ServiceStatus) => Partial<ServiceStatus>,
  note = true
): ServiceStatus => {
  const current = entry.state.get()
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
  entry.state.set({ ...current, status })
  if (note && (status.state !== current.status.state || status.reason !== current.status.reason)) {
    entry.log.note(`${status.state}${status.reason ? `: ${status.reason}` : ""}`)
  }
  stack.transitions.unsafeOffer(status)
  return status
}

/** `updateNow` as an effect. */
export const update = (
  stack: StackContext,
  entry: ServiceEntry,
  f: (status: ServiceStatus) => Partial<ServiceStatus>,
  note = true
): Effect.Effect<ServiceStatus> => Effect.sync(() => updateNow(stack, entry, f, note))

/** The last lines of a service's own output (not the supervisor's notes), for an error. */
export const lastLines = (entry: ServiceEntry): Effect.Effect<ReadonlyArray<string>> =>
  entry.log.tail(FAILURE_TAIL * 4).pipe(
    Effect.map((lines) =>
      lines
        .filter((l) => !l.supervisor)
        .slice(-FAILURE_TAIL)
        .map((l) => l.text)
    )
  )

/** What a dependency's condition sees of `entry`. */
export const dependencyState = (entry: ServiceEntry, internal: Internal) => ({
  ...internal,
  hasLogLine: entry.spec.readyLogLine !== undefined
})
