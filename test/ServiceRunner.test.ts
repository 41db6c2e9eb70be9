/**
 * The per-service lifecycle on the Effect clock: restart backoff and the readiness deadline driven by
 * `TestClock` (no real sleeping for them; the processes and probe commands are real).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, PubSub, Queue, Scope, TestClock } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import type { ServiceSpec } from "../src/manifest/ServiceSpec.js"
import { signalGroup } from "../src/process/ProcessGroup.js"
import { ProcessRegistry } from "../src/process/ProcessRegistry.js"
import { makeLocalSupervisor } from "../src/supervisor/LocalSupervisor.js"
import { makeEntry, type StackContext } from "../src/supervisor/ServiceEntry.js"
import type { StackSpec } from "../src/manifest/ServiceSpec.js"
import { lifecycle } from "../src/supervisor/ServiceRunner.js"
import type { StackEnd } from "../src/supervisor/Supervisor.js"
import type { ServiceStatus } from "../src/stack/ServiceStatus.js"
import { survivors } from "./support/Processes.js"
import { execProbe, fixtureBin, service, stackOf, tempDir } from "./support/Specs.js"

/** A readiness probe whose command always fails, checked every second. */
const neverReady = execProbe("echo not yet; exit 1")

/** Polls (real time: it waits for real processes) until the service's status satisfies `check`. */
const until = (
  sup: { readonly statusOf: (name: string) => Effect.Effect<ServiceStatus, unknown> },
  name: string,
  check: (status: ServiceStatus) => boolean
): Effect.Effect<ServiceStatus> =>
  Effect.gen(function* () {
    while (true) {
      const status = yield* Effect.orDie(sup.statusOf(name))
      if (check(status)) return status
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
  })

/** Runs `body` with a supervisor of `services` (TestClock); afterwards checks that no process is left. */
const withSupervisor = <A, E>(
  services: ReadonlyArray<ServiceSpec>,
  body: (sup: Effect.Effect.Success<ReturnType<typeof makeLocalSupervisor>>, pids: Set<number>) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const sup = yield* makeLocalSupervisor(stackOf(tempDir(), services)).pipe(
      Effect.provide(ProcessRegistry.none),
      Scope.extend(scope)
    )
    const pids = new Set<number>()
    const result = yield* body(sup, pids).pipe(Effect.exit)
    yield* Scope.close(scope, Exit.void)
    expect(survivors(pids)).toEqual([])
    return yield* result
  })

describe("ServiceRunner on the TestClock", () => {
  it.effect(
    "the readiness deadline fails a service that never gets ready, at the deadline and not before",
    () =>
      withSupervisor(
        [service("slow", "sleep", ["3600"], { readiness: neverReady, readinessTimeoutMs: 20_000 })],
        (sup, pids) =>
          Effect.gen(function* () {
            const up = yield* Effect.fork(sup.up())
            const starting = yield* until(sup, "slow", (s) => s.state === "starting")
            pids.add(starting.pid!)
            yield* TestClock.adjust("19 seconds")
            expect((yield* sup.statusOf("slow")).state).toBe("starting")
            yield* TestClock.adjust("1 second")
            const failed = yield* until(sup, "slow", (s) => s.state === "failed")
            // the check's process is real and its 1 s timeout is on the TestClock: a check still running when the
            // clock jumps (a loaded machine) times out at once, which is as much a "not ready" as its exit 1
            expect(failed.reason).toMatch(
              /^not ready after 20 s \(last readiness check: exec `.*` (exited with 1: not yet|gave no answer within 1000 ms)\)$/
            )
            const error = yield* Fiber.join(up).pipe(Effect.flip)
            expect(error).toMatchObject({ _tag: "StartFailed", service: "slow" })
          })
      ),
    30_000
  )

  it.effect(
    "runs that never got ready restart after the backoff, and the deadline spans those restarts",
    () =>
      withSupervisor(
        [
          // each run exits after a real second: long after a deadline that has passed fails it
          service("crasher", fixtureBin("crash.sh"), ["1", "4"], {
            readiness: neverReady,
            readinessTimeoutMs: 50_000,
            restart: { policy: "on_failure", backoffMs: 30_000, maxRestarts: 5 }
          })
        ],
        (sup, pids) =>
          Effect.gen(function* () {
            const up = yield* Effect.fork(sup.up())
            const first = yield* until(sup, "crasher", (s) => s.state === "restarting")
            expect(first).toMatchObject({ restarts: 1, exitCode: 4 })
            expect(first.reason).toBe("exited with code 4 before it was ready; restarting in 30000 ms")
            // no restart before the backoff has elapsed
            yield* TestClock.adjust("29 seconds")
            expect(yield* sup.statusOf("crasher")).toMatchObject({ state: "restarting", restarts: 1 })
            yield* TestClock.adjust("1 second")
            const second = yield* until(sup, "crasher", (s) => s.state === "restarting" && s.restarts === 2)
            expect(second.reason).toBe("exited with code 4 before it was ready; restarting in 30000 ms")
            // 60 s from the start: past the 50 s readiness deadline, which the failed runs did not renew
            yield* TestClock.adjust("30 seconds")
            const failed = yield* until(sup, "crasher", (s) => s.state === "failed")
            expect(failed.restarts).toBe(2)
            expect(failed.reason).toMatch(/^not ready after 50 s/)
            for (const line of yield* sup.logs("crasher", 100)) {
              const pid = /pid (\d+)/.exec(line.text)?.[1]
              if (pid) pids.add(Number(pid))
            }
            expect(pids.size).toBeGreaterThanOrEqual(2)
            yield* Fiber.join(up).pipe(Effect.flip)
          })
      ),
    30_000
  )

  it.effect(
    "a crash loop with backoff_seconds 0 restarts three times at once, then waits 250 ms, 500 ms, 1 s ... instead of spinning",
    () =>
      withSupervisor(
        [service("looper", fixtureBin("crash.sh"), ["0", "1"], { restart: { policy: "always", backoffMs: 0 } })],
        (sup) =>
          Effect.gen(function* () {
            yield* Effect.fork(Effect.ignore(sup.up()))
            const delays: Array<string> = []
            for (let n = 4; n <= 7; n++) {
              const status = yield* until(sup, "looper", (s) => s.state === "restarting" && s.restarts === n)
              delays.push(/restarting in (\d+) ms/.exec(status.reason ?? "")?.[1] ?? "?")
              yield* TestClock.adjust(`${250 * 2 ** (n - 4)} millis`)
            }
            expect(delays).toEqual(["250", "500", "1000", "2000"])
          })
      ),
    30_000
  )
})

/** The entry of a stack's one service ("svc") and a stack context holding it alone. */
const oneService = (stack: StackSpec) =>
  Effect.gen(function* () {
    const entry = yield* makeEntry(stack.services[0]!, stack.stateDir)
    const context: StackContext = {
      entries: new Map([["svc", entry]]),
      transitions: yield* PubSub.unbounded<ServiceStatus>(),
      exitRequested: yield* Deferred.make<StackEnd>(),
      env: process.env,
      dataDir: stack.dataDir
    }
    return { entry, context }
  })

describe("ServiceRunner and an early stop signal", () => {
  it.live("a run ended by a stop's signal is neither restarted nor recorded; the lifecycle ends with it, stopped", () =>
    Effect.gen(function* () {
      const dir = tempDir()
      const starts = join(dir, "starts")
      const stack = stackOf(dir, [
        service("svc", fixtureBin("counter.sh"), [starts], {
          readyLogLine: "counter started",
          restart: { policy: "always", backoffMs: 0 }
        })
      ])
      const { entry, context } = yield* oneService(stack)
      const gone = yield* Deferred.make<void>()
      const registry = Layer.succeed(ProcessRegistry, {
        register: () => Effect.void,
        unregister: () => Deferred.succeed(gone, undefined)
      })
      const transitions = yield* PubSub.subscribe(context.transitions)
      const fiber = yield* Effect.fork(lifecycle(context, entry).pipe(Effect.provide(registry)))
      let ready = yield* Queue.take(transitions)
      while (ready.state !== "ready") ready = yield* Queue.take(transitions)
      const pid = ready.pid!
      entry.run.stopRequested = true
      // as a stop level does (signalAhead): the signal claimed, then sent
      signalGroup(pid, entry.run.group!.claimStopSignal()!)
      // the run's group is gone and unregistered; then the lifecycle ends without a new run
      yield* Deferred.await(gone)
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      expect(survivors([pid])).toEqual([])
      // nothing recorded after ready but the end: no restart
      expect([...(yield* Queue.takeAll(transitions))].map((s) => [s.state, s.pid])).toEqual([["stopped", null]])
      expect(readFileSync(starts, "utf8")).toBe("start\n")
    }).pipe(Effect.scoped)
  )
})

describe("ServiceRunner and a stack ended by a service", () => {
  it.live("exit_on_failure: a run that exits 0 before it was ready ends the stack with code 1, as failed", () =>
    Effect.gen(function* () {
      const dir = tempDir()
      const stack = stackOf(dir, [
        service("svc", "sh", ["-c", "exit 0"], {
          readyLogLine: "never said",
          restart: { policy: "exit_on_failure", backoffMs: 0 }
        })
      ])
      const { entry, context } = yield* oneService(stack)
      const registry = Layer.succeed(ProcessRegistry, { register: () => Effect.void, unregister: () => Effect.void })
      yield* Effect.fork(lifecycle(context, entry).pipe(Effect.provide(registry)))
      const end = yield* Deferred.await(context.exitRequested)
      expect(end).toEqual({ reason: "svc exited with code 0 before it was ready", exitCode: 1 })
      expect(entry.state.get().status.state).toBe("failed")
    }).pipe(Effect.scoped)
  )
})
