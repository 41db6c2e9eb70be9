/**
 * The supervisor's interface: what `stack up` runs locally, what the control API serves, and what the CLI's
 * client implements over the socket, so that each verb is written once for local and remote use. The local
 * implementation is `LocalSupervisor`; the remote one is `api/ControlClient`.
 */
import { HttpApiSchema } from "@effect/platform"
import { Context, Data, type Effect, Schema, type Stream } from "effect"
import type { LogLine } from "../logs/ServiceLog.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"

/** A verb named a service the stack does not have. HTTP 404 on the control API. */
export class UnknownService extends Schema.TaggedError<UnknownService>()(
  "UnknownService",
  { name: Schema.String, known: Schema.Array(Schema.String) },
  HttpApiSchema.annotations({ status: 404 })
) {
  override get message() {
    return `unknown service "${this.name}" (known: ${this.known.join(", ") || "none"})`
  }
}

/** A service could not be started: its reason and its last log lines. HTTP 409 on the control API. */
export class StartFailed extends Schema.TaggedError<StartFailed>()(
  "StartFailed",
  { service: Schema.String, reason: Schema.String, lastLines: Schema.Array(Schema.String) },
  HttpApiSchema.annotations({ status: 409 })
) {
  override get message() {
    const tail = this.lastLines.length > 0 ? `\nlast lines of ${this.service}:\n  ${this.lastLines.join("\n  ")}` : ""
    return `${this.service} failed to start: ${this.reason}${tail}`
  }
}

export type SupervisorError = UnknownService | StartFailed

/** A remote supervisor did not answer as the API says (not answering, connection lost, bad payload). */
export class ControlError extends Data.TaggedError("ControlError")<{
  readonly dir: string
  readonly reason: string
}> {
  override get message() {
    return `the supervisor of ${this.dir}: ${this.reason}`
  }
}

/**
 * The verbs of a supervisor, local or remote. `E` is what reaching it can add: nothing locally,
 * `ControlError` over the socket.
 */
export interface SupervisorShape<E = never> {
  /** One row per service of the stack, in start order. */
  readonly status: Effect.Effect<ReadonlyArray<ServiceStatus>, E>
  readonly statusOf: (name: string) => Effect.Effect<ServiceStatus, UnknownService | E>
  /**
   * Start the named services (all enabled ones when empty) and their dependencies, in dependency order,
   * and wait until each is ready. Services already running are left alone. Fails with the first service
   * that could not start; its dependents are skipped.
   */
  readonly up: (names?: ReadonlyArray<string>) => Effect.Effect<void, SupervisorError | E>
  /** Start one service (not its dependencies: it waits for their conditions) and wait until it is ready. */
  readonly start: (name: string) => Effect.Effect<void, SupervisorError | E>
  /** Stop one service, and first the services that depend on it. Returns when their processes have exited. */
  readonly stop: (name: string) => Effect.Effect<void, UnknownService | E>
  /** Stop and start one service; its dependents keep running. Concurrent restarts end with one instance. */
  readonly restart: (name: string) => Effect.Effect<void, SupervisorError | E>
  /** The last `n` lines of a service's output. */
  readonly logs: (name: string, n: number) => Effect.Effect<ReadonlyArray<LogLine>, UnknownService | E>
  /** The last `n` lines, then every new line, across restarts, until interrupted (or the supervisor ends). */
  readonly follow: (name: string, n: number) => Stream.Stream<LogLine, UnknownService | E>
  /**
   * Stop every service, dependents first, independent ones in parallel. Over the socket (`stack down`) the
   * supervisor then exits, and this returns once it has.
   */
  readonly shutdown: Effect.Effect<void, E>
}

/** Why a stack asked to end: a service with `exit_on_end` ended, or one with `exit_on_failure` failed. */
export interface StackEnd {
  readonly reason: string
  /** That service's exit code: the foreground `up` (and `core <service> run`) exits with it, as process-compose does. */
  readonly exitCode: number
}

/** The supervisor of this process: the stack it runs, its transitions, and every line as it arrives. */
export interface LocalSupervisorShape extends SupervisorShape {
  readonly stack: StackSpec
  /** Every state transition, from the moment of subscription. */
  readonly transitions: Stream.Stream<ServiceStatus>
  /** Resolves when the stack asks to end (a service with `exit_on_end`, or an `exit_on_failure` restart policy). */
  readonly exitRequested: Effect.Effect<StackEnd>
  /** Registers a synchronous listener for every line of every service; returns an unsubscribe function. */
  readonly onLine: (listener: (service: string, line: LogLine) => void) => () => void
}

/**
 * The supervisor the CLI's verbs talk to: the one of a running stack, over its control socket
 * (`ControlClient.layer`). A `LocalSupervisorShape` is one too.
 */
export class Supervisor extends Context.Tag("core/Supervisor")<Supervisor, SupervisorShape<ControlError>>() {}

/**
 * The supervisor running in this process: what the control server serves and the library's `Stack` hands
 * out. Its one layer is `StackUp.layer` (src/app), which loads, provisions and starts the stack first.
 */
export class LocalSupervisor extends Context.Tag("core/LocalSupervisor")<LocalSupervisor, LocalSupervisorShape>() {}
