/**
 * The supervisor's interface: what `stack up` runs locally and what the control API serves. The local
 * implementation is `LocalSupervisor`; the CLI's client implements the same verbs over the socket.
 */
import { Context, Data, type Effect, type Stream } from "effect"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import type { LogLine } from "../logs/ServiceLog.js"
import type { ServiceStatus } from "./ServiceStatus.js"

/** A verb named a service the stack does not have. */
export class UnknownService extends Data.TaggedError("UnknownService")<{
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `unknown service "${this.name}" (known: ${this.known.join(", ") || "none"})`
  }
}

/** A service could not be started: its reason and its last log lines. */
export class StartFailed extends Data.TaggedError("StartFailed")<{
  readonly service: string
  readonly reason: string
  readonly lastLines: ReadonlyArray<string>
}> {
  override get message() {
    const tail = this.lastLines.length > 0 ? `\nlast lines of ${this.service}:\n  ${this.lastLines.join("\n  ")}` : ""
    return `${this.service} failed to start: ${this.reason}${tail}`
  }
}

export type SupervisorError = UnknownService | StartFailed

export interface SupervisorShape {
  readonly stack: StackSpec
  /** One row per service of the stack, in start order. */
  readonly status: Effect.Effect<ReadonlyArray<ServiceStatus>>
  readonly statusOf: (name: string) => Effect.Effect<ServiceStatus, UnknownService>
  /** Every state transition, from the moment of subscription. */
  readonly transitions: Stream.Stream<ServiceStatus>
  /**
   * Start the named services (all enabled ones when empty) and their dependencies, in dependency order,
   * and wait until each is ready. Services already running are left alone. Fails with the first service
   * that could not start; its dependents are skipped.
   */
  readonly up: (names?: ReadonlyArray<string>) => Effect.Effect<void, SupervisorError>
  /** Start one service (not its dependencies: it waits for their conditions) and wait until it is ready. */
  readonly start: (name: string) => Effect.Effect<void, SupervisorError>
  /** Stop one service, and first the services that depend on it. Returns when their processes have exited. */
  readonly stop: (name: string) => Effect.Effect<void, UnknownService>
  /** Stop and start one service; its dependents keep running. Concurrent restarts end with one instance. */
  readonly restart: (name: string) => Effect.Effect<void, SupervisorError>
  /** The last `n` lines of a service's output. */
  readonly logs: (name: string, n: number) => Effect.Effect<ReadonlyArray<LogLine>, UnknownService>
  /** The last `n` lines, then every new line, across restarts, until interrupted. */
  readonly follow: (name: string, n: number) => Stream.Stream<LogLine, UnknownService>
  /** Stop every service, dependents first, independent ones in parallel. */
  readonly shutdown: Effect.Effect<void>
  /** Resolves when the stack asks to end (a service with `exit_on_end`, or an `exit_on_failure` restart policy). */
  readonly exitRequested: Effect.Effect<string>
}

/** The local supervisor also lets the foreground printer see every line as it arrives. */
export interface LocalSupervisorShape extends SupervisorShape {
  /** Registers a synchronous listener for every line of every service; returns an unsubscribe function. */
  readonly onLine: (listener: (service: string, line: LogLine) => void) => () => void
}

export class Supervisor extends Context.Tag("core/Supervisor")<Supervisor, SupervisorShape>() {}
