/**
 * The verbs on a running stack (`status`, `process list|logs|restart|stop|start`, `down`): each is written
 * once against the `Supervisor` interface; here the supervisor is the stack directory's, over its control
 * socket. With none running they fail at once with `NoSupervisor`.
 */
import { Clock, Effect } from "effect"
import * as ControlClient from "../api/ControlClient.js"
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
  const pid = yield* ControlClient.withClient(root, (client) => Effect.as(client.shutdown, client.identity.pid))
  const ms = (yield* Clock.currentTimeMillis) - began
  return { dir: root, pid, ms }
})
