/**
 * Where the supervisor records the process groups it spawns, so that nothing outlives it: a guardian can
 * end them if the supervisor dies hard, and the next `core` command can find leftovers of an older crash.
 */
import { Context, Effect, Layer } from "effect"

/** What the spawner helper tells of a group it started (`Spawner`): nothing when Node's `spawn()` started it. */
export interface SpawnedBy {
  /**
   * The leader's start time as the helper read it (clock ticks since boot), if it could: read before the helper
   * can reap it, so before its pid can be reused, and not on the supervisor's thread.
   */
  readonly startTime: number | undefined
}

export interface ProcessRegistryShape {
  /**
   * A process group was spawned for `service` (its leader's pid is the group id). Synchronous: it is run inside
   * the spawn's callback, right after `spawn()` returns, so that no turn of the event loop comes in between.
   */
  readonly register: (service: string, pid: number, spawned?: SpawnedBy) => Effect.Effect<void>
  /** `register` as a plain call, where the registry has one (a spawn then runs no effect of its own for it). */
  readonly registerNow?: (service: string, pid: number, spawned?: SpawnedBy) => void
  /** The group is gone (its leader exited and the group was swept). */
  readonly unregister: (service: string, pid: number) => Effect.Effect<void>
  /**
   * Sends `signal` to these live groups from another process (the guardian), leaving the caller's thread free
   * at once; false when it cannot, and the caller signals them itself. Synchronous.
   */
  readonly signalGroups?: (signal: NodeJS.Signals, pgids: ReadonlyArray<number>) => boolean
  /**
   * Runs `effect`, the stop of the groups `pgids` (a whole stack), with their unregisters only noted, and
   * forgets them together when it is done, or a moment after the first (the registry's limit): the supervisor's
   * thread then neither writes to another process nor hands work to the thread pool while the stopped
   * processes take every core (each such call can cost it its turn). Other groups go at once.
   */
  readonly unregisterAfter?: <A, E, R>(
    pgids: ReadonlyArray<number>,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
}

export class ProcessRegistry extends Context.Tag("core/ProcessRegistry")<ProcessRegistry, ProcessRegistryShape>() {
  /** Records nothing: for library use where the caller's scope is the only owner. */
  static readonly none = Layer.succeed(ProcessRegistry, {
    register: () => Effect.void,
    unregister: () => Effect.void
  })
}
