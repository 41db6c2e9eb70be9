/**
 * The runtime as Effect layers, for programs and tests.
 *
 * ```ts
 * const TestStack = Stack.layer({ dir: "test/fixtures/stack" })
 * layer(TestStack)("api", (it) => {
 *   it.effect("answers", () => Effect.gen(function* () {
 *     const api = yield* Stack.service("api")
 *     const res = yield* Effect.promise(() => fetch(api.url("http", "/health")))
 *   }))
 * })
 * ```
 */
import type { FileSystem, Path } from "@effect/platform"
import { Clock, Context, Effect, Layer, Stream } from "effect"
import type { LogLine } from "../logs/ServiceLog.js"
import { ownValue } from "../manifest/Placeholders.js"
import type { ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"
import * as StackUp from "../app/StackUp.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import {
  LocalSupervisor,
  type LocalSupervisorShape,
  type SupervisorError,
  UnknownService
} from "../supervisor/Supervisor.js"

/** A running service, as a test or program sees it. */
export interface ServiceHandle {
  readonly name: string
  /** Its named ports, after environment overrides. */
  readonly ports: Readonly<Record<string, number>>
  /** `http://127.0.0.1:<port><path>` for a named port (default: the first one). */
  readonly url: (port?: string, path?: string) => string
  /** Pid of the current process (also its process group), or null when it is not running. */
  readonly pid: Effect.Effect<number | null>
  readonly status: Effect.Effect<ServiceStatus>
  /** Starts it (and its dependencies) if needed and waits until it is ready. */
  readonly ready: Effect.Effect<void, SupervisorError>
  /** The last `n` lines of its output (default 100). */
  readonly logs: (n?: number) => Effect.Effect<ReadonlyArray<LogLine>>
  /** The last `n` lines, then every new line, across restarts. */
  readonly follow: (n?: number) => Stream.Stream<LogLine>
  readonly restart: Effect.Effect<void, SupervisorError>
  readonly stop: Effect.Effect<void>
  readonly spec: ServiceSpec
}

export interface StackOptions {
  /** The stack directory (holding `services/`). */
  readonly dir: string
  /** Services to start with their dependencies when the layer is built; default all; `[]` starts none. */
  readonly services?: ReadonlyArray<string>
  /**
   * Also serve the control API on `.core-stack/control.sock`, so `core stack status` sees it (and
   * `core stack down` stops its services, not the host program). Default false. Either way the stack holds
   * the directory's one-supervisor lock while it runs.
   */
  readonly serve?: boolean
  /** Provisioning and start-up progress. */
  readonly onProgress?: (message: string) => void
}

/**
 * Processes live in real time: the stack's probes, timeouts and backoffs use the real clock even inside a
 * test whose clock is the TestClock (as `it.effect` and `layer(...)` provide).
 */
const liveClock = Clock.make()
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withClock(effect, liveClock)

const handleOf = (supervisor: LocalSupervisorShape, spec: ServiceSpec): ServiceHandle => {
  const name = spec.name
  const status = Effect.orDie(supervisor.statusOf(name))
  return {
    name,
    spec,
    ports: spec.ports,
    url: (port, path = "") => {
      const number = port === undefined ? Object.values(spec.ports)[0] : ownValue(spec.ports, port)
      if (number === undefined) throw new Error(`service ${name} has no port ${port ?? "at all"}`)
      return `http://127.0.0.1:${number}${path}`
    },
    pid: Effect.map(status, (s) => s.pid),
    status,
    ready: live(supervisor.up([name])),
    logs: (n = 100) => Effect.orDie(supervisor.logs(name, n)),
    follow: (n = 100) => Stream.orDie(supervisor.follow(name, n)),
    restart: live(supervisor.restart(name)),
    stop: live(Effect.orDie(supervisor.stop(name)))
  }
}

/** The stack of a supervisor, with a handle per service. */
const stackOf = (supervisor: LocalSupervisorShape): StackShape => {
  const known = supervisor.stack.services.map((s) => s.name as string)
  return {
    stack: supervisor.stack,
    supervisor,
    service: (name: string) => {
      const spec = supervisor.stack.services.find((s) => s.name === name)
      return spec ? Effect.succeed(handleOf(supervisor, spec)) : Effect.fail(new UnknownService({ name, known }))
    }
  }
}

export interface StackShape {
  readonly stack: StackSpec
  readonly supervisor: LocalSupervisorShape
  /** The handle of a service of the stack (started or not). */
  readonly service: (name: string) => Effect.Effect<ServiceHandle, UnknownService>
}

/** A running stack: its supervisor and a handle per service. Released: every service stops, dependents first. */
export class Stack extends Context.Tag("core/Stack")<Stack, StackShape>() {
  /** Loads `dir`, provisions what the selected services need, and starts them (and their dependencies). */
  static layer(options: StackOptions): Layer.Layer<Stack, StackUp.UpError, FileSystem.FileSystem | Path.Path> {
    const supervisor = StackUp.layer({
      dir: options.dir,
      services: options.services ?? [],
      startNothing: options.services !== undefined && options.services.length === 0,
      serve: options.serve ?? false,
      // `core stack down` stops the services; the host program goes on
      onDown: Effect.void,
      ...(options.onProgress ? { onProgress: options.onProgress } : {})
    })
    return Layer.effect(Stack, Effect.map(LocalSupervisor, stackOf)).pipe(
      Layer.provide(Layer.scopedContext(live(Layer.build(supervisor))))
    )
  }

  /** The handle of a service of the current stack. */
  static service(name: string): Effect.Effect<ServiceHandle, UnknownService, Stack> {
    return Effect.flatMap(Stack, (stack) => stack.service(name))
  }
}

/**
 * A layer for one service of a stack: building it starts the service and its dependencies (as the manifests
 * say) on the shared `Stack`; releasing it stops the service. Typed service tags are made with it.
 */
export function serviceLayer<I>(
  tag: Context.Tag<I, ServiceHandle>,
  name: string
): Layer.Layer<I, SupervisorError, Stack>
/** The same, with the handle extended (typed URLs, say) before it is provided. */
export function serviceLayer<I, H extends ServiceHandle>(
  tag: Context.Tag<I, H>,
  name: string,
  extend: (handle: ServiceHandle) => H
): Layer.Layer<I, SupervisorError, Stack>
export function serviceLayer<I, H extends ServiceHandle>(
  tag: Context.Tag<I, H>,
  name: string,
  extend: (handle: ServiceHandle) => H = (handle) => handle as H
): Layer.Layer<I, SupervisorError, Stack> {
  return Layer.scoped(
    tag,
    Effect.gen(function* () {
      const handle = yield* Stack.service(name)
      yield* handle.ready
      yield* Effect.addFinalizer(() => handle.stop)
      return extend(handle)
    })
  )
}
