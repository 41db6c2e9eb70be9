/**
 * The `up` flow shared by `core stack up`, `core <service> run` and the library layers: load and check the
 * stack, provision its binaries, write the process-compose file, start a supervisor, serve the control API,
 * and bring the selected services up.
 */
import { Effect, Layer, type Scope } from "effect"
import { ensureNoSupervisor, serveControl } from "../api/ControlServer.js"
import { writeComposeFile } from "../deploy/ComposeFile.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { checkPortsFree } from "../manifest/PortCheck.js"
import { loadEnvironment, loadStack } from "../manifest/StackLoader.js"
import { provision } from "../provision/Provisioner.js"
import { withDependencies } from "../stack/StackGraph.js"
import { PidRegistry } from "./PidRegistry.js"
import { makeLocalSupervisor } from "./LocalSupervisor.js"
import { type LocalSupervisorShape, UnknownService } from "./Supervisor.js"

export interface StackRunOptions {
  /** The absolute stack directory. */
  readonly dir: string
  /** Services to start with their dependencies; empty = every enabled service. */
  readonly services: ReadonlyArray<string>
  /** Start only the named services, not their dependencies (`core <service> run --no-deps`). */
  readonly noDeps?: boolean
  /** Prepare everything (provisioning included) and start no service: callers start them with `up`. */
  readonly startNothing?: boolean
  /** Serve the control API on `.core-stack/control.sock` (default true). */
  readonly serve?: boolean
  /**
   * What `core stack down` does once every service has stopped. Default: SIGTERM to this process, the path
   * of Ctrl-C (right for the CLI); a library host passes its own.
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
}

/** Loads the stack and checks the names asked for. */
export const loadSelection = (dir: string, services: ReadonlyArray<string>, noDeps = false) =>
  Effect.gen(function* () {
    const stack = yield* loadStack(dir)
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
export const runStack = (options: StackRunOptions) =>
  Effect.gen(function* () {
    const began = Date.now()
    const { stack, selected } = yield* loadSelection(options.dir, options.services, options.noDeps)
    const serve = options.serve ?? true
    // one supervisor per directory, served or not; leftovers of a crash go before their ports are checked
    yield* ensureNoSupervisor(stack.stateDir)
    yield* checkPortsFree(stack, selected)
    // the registry (and its guardian) first: a build that provisioning runs is ended with the supervisor too
    const registry = yield* Layer.build(PidRegistry.layer(stack.stateDir))
    yield* provision(stack, selected, {
      onProgress: options.onProgress ? (event) => options.onProgress!(event.message) : undefined
    }).pipe(Effect.provide(registry))
    yield* writeComposeFile(stack)
    const env = yield* loadEnvironment(stack.dir)
    const supervisor = yield* makeLocalSupervisor(stack, { env }).pipe(Effect.provide(registry))
    const run: StackRun = { stack, supervisor, started: selected, readyMs: 0 }
    if (options.beforeStart) yield* options.beforeStart(run)
    if (serve) yield* serveControl(supervisor, stack.stateDir, options.onDown ? { onDown: options.onDown } : {})
    if (!options.startNothing) yield* supervisor.up(selected)
    return { ...run, readyMs: Date.now() - began }
  })
