/**
 * The verbs on a running stack (`status`, `process list|logs|restart|stop|start`, `down`): each is written
 * once against the `Supervisor` interface; here the supervisor is the stack directory's, over its control
 * socket. With none running they fail at once with `NoSupervisor`.
 */
import { Clock, Effect, Option, Schedule } from "effect"
import * as ControlClient from "../api/ControlClient.js"
import { isRunning, type ProcessIdentity } from "../state/ProcessIdentity.js"
import { stateDirOf, statePaths } from "../state/StateDir.js"
import { cleanLeftovers, liveStarter, liveSupervisor } from "../state/SupervisorLock.js"
import * as Trace from "../trace/Trace.js"
import { type ControlError, Supervisor, type SupervisorShape } from "../supervisor/Supervisor.js"

/** Runs `verb` with the `Supervisor` of the stack directory `dir`. */
export const onRunningStack = <A, E, R>(dir: string, verb: Effect.Effect<A, E, R | Supervisor>) =>
  Effect.provide(verb, ControlClient.layer(dir))

/** A verb on one service, and the service's row once it is done. */
export const serviceVerb = <E>(
  name: string,
  verb: (supervisor: SupervisorShape<ControlError>) => Effect.Effect<void, E>
) => Effect.flatMap(Supervisor, (supervisor) => Effect.zipRight(verb(supervisor), supervisor.statusOf(name)))

/**
 * `down`: stops every service of the running stack, dependents first, and returns once they and the
 * supervisor have exited: the stack directory, the supervisor's pid, and how long it took (ms).
 */
export const down = Effect.fn("RunningStack.down")(function* (root: string) {
  const began = yield* Clock.currentTimeMillis
  const output = statePaths(stateDirOf(root)).supervisorLog
  const seen = Trace.tracing() ? Trace.fileSize(output) : 0
  const { pid, stopped } = yield* ControlClient.withClient(root, (client) =>
    Effect.sync(() => Trace.mark("connected, down requested")).pipe(
      Effect.zipRight(client.shutdown),
      Effect.as({ pid: client.identity.pid, stopped: "on request" as StoppedBy })
    )
  ).pipe(
    // a supervisor that is starting (no socket yet) or stopping does not answer: it is stopped by its pid;
    // before it holds the directory, the `up -d` starting it is stopped (and stops it)
    Effect.catchTags({
      ControlError: (error) => stopBy(liveSupervisor(stateDirOf(root)), "supervisor signalled", root, error),
      NoSupervisor: (error) => stopBy(liveStarter(stateDirOf(root)), "up -d signalled", root, error)
    })
  )
  Trace.mark("supervisor exit seen")
  Trace.echoFrom(output, seen)
  const ms = (yield* Clock.currentTimeMillis) - began
  return { dir: root, pid, ms, stopped }
})

/**
 * How `down` stopped the stack: its supervisor answered; or it did not (starting, stopping) and got SIGTERM;
 * or there was none yet and the `up -d` starting it got SIGTERM (`pid` is then the `up -d`'s).
 */
export type StoppedBy = "on request" | "supervisor signalled" | "up -d signalled"

/** Stops `process` (the supervisor, or the `up -d` starting it), or fails with `error` when there is none. */
const stopBy = <E>(process: ProcessIdentity | undefined, stopped: StoppedBy, root: string, error: E) =>
  process === undefined ? Effect.fail(error) : Effect.as(stopUnanswering(process, root), { pid: process.pid, stopped })

/** How long a supervisor gets to stop its stack after SIGTERM before SIGKILL (its guardian then ends the rest). */
const UNANSWERING_GRACE_MS = 30_000

/**
 * Stops a process of the stack directory that does not answer, its supervisor or the `up -d` starting it:
 * SIGTERM (either stops what it started, as on Ctrl-C), SIGKILL after `UNANSWERING_GRACE_MS`; returns once it
 * has exited and its leftovers are cleaned up.
 */
const stopUnanswering = (supervisor: ProcessIdentity, root: string): Effect.Effect<void> =>
  Effect.gen(function* () {
    const signal = (name: NodeJS.Signals) =>
      Effect.sync(() => {
        // a record names a process of ours, never 0 (our own group) or 1 (init; -1 would be every process)
        if (supervisor.pid <= 1) return
        try {
          process.kill(supervisor.pid, name)
        } catch {}
      })
    const gone = Effect.repeat(
      Effect.sync(() => isRunning(supervisor)),
      {
        while: (running) => running,
        schedule: Schedule.spaced("20 millis")
      }
    )
    yield* signal("SIGTERM")
    const stopped = yield* gone.pipe(Effect.timeoutOption(UNANSWERING_GRACE_MS))
    if (Option.isNone(stopped)) yield* signal("SIGKILL").pipe(Effect.zipRight(gone))
    yield* cleanLeftovers(stateDirOf(root))
  })
