/**
 * The verbs on a running stack (`status`, `process list|logs|restart|stop|start`, `down`): each is written
 * once against the `Supervisor` interface; here the supervisor is the stack directory's, over its control
 * socket. With none running they fail at once with `NoSupervisor`.
 */
import { Clock, Effect, type Option } from "effect"
import * as ControlClient from "../api/ControlClient.js"
import { resolveDirectory } from "../manifest/StackLoader.js"
import { type ControlError, Supervisor, type SupervisorShape } from "../supervisor/Supervisor.js"

/** Runs `verb` with the `Supervisor` of the stack directory (`--dir`, `CORE_DIR`, or the current directory). */
export const onRunningStack = <A, E, R>(dir: Option.Option<string>, verb: Effect.Effect<A, E, R | Supervisor>) =>
  Effect.flatMap(resolveDirectory(dir), (root) => Effect.provide(verb, ControlClient.layer(root)))

/** A verb on one service, and the service's row once it is done. */
export const serviceVerb = <E>(
  name: string,
  verb: (supervisor: SupervisorShape<ControlError>) => Effect.Effect<void, E>
) => Effect.flatMap(Supervisor, (supervisor) => Effect.zipRight(verb(supervisor), supervisor.statusOf(name)))

/**
 * `down`: stops every service of the running stack, dependents first, and returns once they and the
 * supervisor have exited: the stack directory, the supervisor's pid, and how long it took (ms).
 */
export const down = Effect.fn("RunningStack.down")(function* (dir: Option.Option<string>) {
  const root = yield* resolveDirectory(dir)
  const began = yield* Clock.currentTimeMillis
  const pid = yield* ControlClient.withClient(root, (client) => Effect.as(client.shutdown, client.identity.pid))
  const ms = (yield* Clock.currentTimeMillis) - began
  return { dir: root, pid, ms }
})
