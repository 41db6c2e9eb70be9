/**
 * The `up` use case, shared by `core stack up`, `core <service> run` and the library layers: load and check
 * the stack, provision its binaries, write the process-compose file, start a supervisor, serve the control
 * API, and bring the selected services up. `layer` is the one layer of the `LocalSupervisor`.
 */
import { FileSystem, type Path } from "@effect/platform"
import { Cause, Clock, Context, Data, Effect, Layer, Option, type Scope } from "effect"
import { serveControl } from "../api/ControlServer.js"
import { writeComposeFile } from "../deploy/ComposeFile.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { checkPortsFree } from "../manifest/PortCheck.js"
import { loadEnvironment, loadStack } from "../manifest/StackLoader.js"
import { provision } from "../provision/Provisioner.js"
import { withDependencies } from "../stack/StackGraph.js"
import { ensureNoSupervisor } from "../state/SupervisorLock.js"
import { makeLocalSupervisor } from "../supervisor/LocalSupervisor.js"
import { PidRegistry } from "../supervisor/PidRegistry.js"
import * as Spawner from "../process/Spawner.js"
import { LocalSupervisor, type LocalSupervisorShape, Supervisor, UnknownService } from "../supervisor/Supervisor.js"
import * as Trace from "../trace/Trace.js"

export interface StackRunOptions {
  /** The absolute stack directory. */
  readonly dir: string
  /** `--data`; default `CORE_DATA_DIR`, else `.data` in the stack directory. */
  readonly data?: Option.Option<string>
  /** Services to start with their dependencies; empty = every enabled service. */
  readonly services: ReadonlyArray<string>
  /** Start only the named services, not their dependencies (`core <service> run --no-deps`). */
  readonly noDeps?: boolean
  /** Prepare everything (provisioning included) and start no service: callers start them with `up`. */
  readonly startNothing?: boolean
  /** Serve the control API on `.core-stack/control.sock` (default true). */
  readonly serve?: boolean
  /**
   * What `core stack down` does once every service has stopped. Default: what SIGTERM to this process does
   * (its listeners, called at once), the path of Ctrl-C (right for the CLI); a library host passes its own.
   */
  readonly onDown?: Effect.Effect<void>
  /** Progress of provisioning and start-up, one line per message. */
  readonly onProgress?: (message: string) => void
  /** Runs once the supervisor exists, before anything starts (the foreground printer hooks in here). */
  readonly beforeStart?: (run: StackRun) => Effect.Effect<unknown, never, Scope.Scope>
}

export interface StackRun {
  readonly stack: StackSpec
  readonly supervisor: LocalSupervisorShape
  /** The services started, dependencies included, in start order. */
  readonly started: ReadonlyArray<string>
  /** Milliseconds from the call to every service ready. */
  readonly readyMs: number
  /** Of `readyMs`, the milliseconds spent provisioning binaries (checks, downloads, builds). */
  readonly provisionMs: number
}

/** How long after the start the process-compose file is written. */
const COMPOSE_FILE_DELAY = "300 millis"

/**
 * Up to this many services to start, they are spawned while the control socket is being served; any number
 * when a spawner helper forks them.
 */
const SPAWN_BEFORE_SERVE_MAX = 8

/** The data directory cannot be created. */
export class DataDirError extends Data.TaggedError("DataDirError")<{ readonly path: string; readonly cause: unknown }> {
  override get message() {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot create the data directory ${this.path}: ${why}`
  }
}

/** Creates the data directory (mode 0700) when it is missing; an existing one is left as it is. */
export const ensureDataDir = (path: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const info = yield* fs.stat(path).pipe(Effect.option)
    if (Option.isSome(info)) {
      if (info.value.type === "Directory") return
      return yield* Effect.fail(new Error("it exists and is not a directory"))
    }
    yield* fs.makeDirectory(path, { recursive: true, mode: 0o700 })
    // the umask may have narrowed the mode, never widened it; chmod makes it exactly 0700
    yield* fs.chmod(path, 0o700)
  }).pipe(Effect.mapError((cause) => new DataDirError({ path, cause })))

/** Loads the stack and checks the names asked for. */
export const loadSelection = (
  dir: string,
  services: ReadonlyArray<string>,
  noDeps = false,
  data: Option.Option<string> = Option.none()
) =>
  Effect.gen(function* () {
    const stack = yield* loadStack(dir, Option.isSome(data) ? { dataDir: data.value } : {})
    const known = stack.services.map((s) => s.name as string)
    for (const name of services) {
      if (!known.includes(name)) return yield* new UnknownService({ name, known })
    }
    const nodes = stack.services.map((s) => ({ name: s.name as string, dependsOn: s.dependsOn }))
    const targets = services.length > 0 ? services : stack.services.filter((s) => !s.disabled).map((s) => s.name)
    if (noDeps) {
      const alone = stack.services.filter((s) => targets.includes(s.name)).map((s) => ({ ...s, dependsOn: [] }))
      return { stack: { ...stack, services: alone }, selected: targets }
    }
    return { stack, selected: withDependencies(nodes, targets) }
  })

/**
 * Runs the stack in the current scope: when the scope closes, every service is stopped (dependents first)
 * and the control socket removed. Fails, having stopped whatever it started, when a service cannot start.
 */
export const runStack = Effect.fn("StackUp.up")(function* (options: StackRunOptions) {
  const began = yield* Clock.currentTimeMillis
  Trace.mark("command parsed, loading the manifests")
  const { stack, selected } = yield* loadSelection(options.dir, options.services, options.noDeps, options.data)
  Trace.mark(`manifests loaded (${stack.services.length} services, ${selected.length} selected)`)
  const serve = options.serve ?? true
  // one supervisor per directory, served or not; leftovers of a crash go before their ports are checked
  yield* ensureNoSupervisor(stack.stateDir)
  Trace.mark("no other supervisor")
  yield* checkPortsFree(stack, selected)
  Trace.mark("ports checked")
  yield* ensureDataDir(stack.dataDir)
  // the registry (and its guardian) first: a build that provisioning runs is ended with the supervisor too
  const registry = yield* Layer.build(PidRegistry.layer(stack.stateDir))
  Trace.mark("pid registry and guardian ready")
  // the helper that forks the services (and probes, shutdown commands, builds), started while the rest goes on
  const spawner = yield* Layer.build(Spawner.layer)
  const processes = Context.merge(registry, spawner)
  const provisionBegan = yield* Clock.currentTimeMillis
  yield* provision(stack, selected, {
    onProgress: options.onProgress ? (event) => options.onProgress!(event.message) : undefined
  }).pipe(Effect.provide(processes))
  const provisionMs = (yield* Clock.currentTimeMillis) - provisionBegan
  Trace.mark("provisioning checked")
  const env = yield* loadEnvironment(stack.dir)
  const supervisor = yield* makeLocalSupervisor(stack, { env }).pipe(Effect.provide(processes))
  Trace.mark("supervisor built (log files open)")
  const run: StackRun = { stack, supervisor, started: selected, readyMs: 0, provisionMs }
  if (options.beforeStart) yield* options.beforeStart(run)
  const served = serve
    ? serveControl(stack.stateDir, options.onDown ? { onDown: options.onDown } : {}).pipe(
        Effect.provideService(LocalSupervisor, supervisor),
        Effect.tap(() => Trace.mark("control socket served"))
      )
    : Effect.void
  const started = options.startNothing
    ? Effect.void
    : supervisor.up(selected).pipe(
        Effect.tap(() => {
          Trace.summary()
          Trace.mark("every service ready")
        })
      )
  // (the directory is ours already: the pid registry took the supervisor lock.) The services are spawned
  // before the control socket is served (building the API's handlers and binding the socket is ~35-55 ms of
  // a supervisor's start, traced): serving goes on while they start, whichever fails first interrupts the
  // other, and `up` is done once both are. Through the spawner, 200 spawn requests take the thread ~70-200 ms,
  // and it then serves while the spawner forks (200 services that only run: ready 42-67 ms sooner; with probes,
  // no sooner and ~0.5 MB more at the peak). With Node's spawn() and many services, the socket comes first: 200
  // spawns in a row held it back for seconds, and `status` and `down` must answer during the burst.
  const spawnFirst = selected.length <= SPAWN_BEFORE_SERVE_MAX || Context.get(spawner, Spawner.Spawner).helper()
  if (spawnFirst) yield* Effect.all([started, served], { concurrency: 2, discard: true })
  else yield* Effect.zipRight(served, started)
  // for process-compose users, not for the start: rendering it is synchronous work (8-25 ms for 200 services
  // with YamlText; it was ~0.4 ms a service with the yaml library), so it is written once the services are up,
  // and a moment later still, so that it does not hold up the answer to the status poll of `up -d` that follows
  // the last service's readiness (traced with the yaml library: ~130 ms late with 200 services when written at once)
  yield* Effect.forkScoped(
    writeComposeFile(stack).pipe(
      Effect.delay(COMPOSE_FILE_DELAY),
      Effect.tap(() => Trace.mark("compose file written")),
      // a defect too: the file would be left as it was, with not a word
      Effect.catchAllCause((cause) => {
        if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
        const error = Cause.squash(cause)
        return Effect.logWarning(
          `cannot write the process-compose file: ${error instanceof Error ? error.message : String(error)}`
        )
      })
    )
  )
  return { ...run, readyMs: (yield* Clock.currentTimeMillis) - began }
})

/** Why `up` failed: a union of tagged errors (loading, ports, provisioning, the state directory, a start). */
export type UpError = Effect.Effect.Error<ReturnType<typeof runStack>>

/**
 * The one layer of the supervisor of this process: `runStack` for the life of the layer, as the
 * `LocalSupervisor` and as the `Supervisor` (so that a verb written for the CLI runs on it too). Released:
 * every service is stopped (dependents first) and the control socket removed.
 */
export const layer = (
  options: StackRunOptions
): Layer.Layer<LocalSupervisor | Supervisor, UpError, FileSystem.FileSystem | Path.Path> =>
  Layer.scopedContext(
    Effect.map(runStack(options), (run) =>
      Context.make(LocalSupervisor, run.supervisor).pipe(Context.add(Supervisor, run.supervisor))
    )
  )

/**
 * `up` in the foreground: runs the stack until it asks to end (or the fiber is interrupted: Ctrl-C,
 * SIGTERM), then stops it. `onReady` runs once every selected service is ready; the result is the reason
 * the stack ended. Running one service (`core <service> run`) is this with one name.
 */
export const upForeground = (
  options: StackRunOptions,
  onReady: (run: StackRun) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.scoped(
    runStack(options).pipe(
      Effect.tap(onReady),
      Effect.flatMap((run) => run.supervisor.exitRequested)
    )
  )
