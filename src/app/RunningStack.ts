/**
 * The verbs on a running stack (`status`, `process list|logs|restart|stop|start`, `down`): each is written
 * once against the `Supervisor` interface; here the supervisor is the stack directory's, over its control
 * socket. With none running they fail at once with `NoSupervisor`.
 */
import { Clock, Effect, Option, Schedule } from "effect"
import * as ControlClient from "../api/ControlClient.js"
import { isRunning } from "../state/ProcessIdentity.js"
import { stateDirOf } from "../state/StateDir.js"
import { cleanLeftovers, liveSupervisor } from "../state/SupervisorLock.js"
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
  const { pid, starting } = yield* ControlClient.withClient(root, (client) =>
    Effect.as(client.shutdown, { pid: client.identity.pid, starting: false })
  ).pipe(
    // a supervisor that is starting (no socket yet) or stopping does not answer: it is stopped by its pid
    Effect.catchTag("ControlError", (error) =>
      Effect.flatMap(stopUnanswering(root), (stopped) =>
        stopped === undefined ? Effect.fail(error) : Effect.succeed({ pid: stopped, starting: true })
      )
    )
  )
  const ms = (yield* Clock.currentTimeMillis) - began
  return { dir: root, pid, ms, starting }
})

/** How long a supervisor gets to stop its stack after SIGTERM before SIGKILL (its guardian then ends the rest). */
const UNANSWERING_GRACE_MS = 30_000

/**
 * Stops the stack directory's live supervisor when it does not answer: SIGTERM (it stops its services as on
 * Ctrl-C), SIGKILL after `UNANSWERING_GRACE_MS`; returns its pid once it has exited, or undefined when there
 * is none.
 */
const stopUnanswering = (root: string): Effect.Effect<number | undefined> =>
  Effect.gen(function* () {
    const supervisor = liveSupervisor(stateDirOf(root))
    if (supervisor === undefined) return undefined
    const signal = (name: NodeJS.Signals) =>
      Effect.sync(() => {
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
    return supervisor.pid
  })
