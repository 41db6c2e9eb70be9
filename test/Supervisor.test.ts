import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { ServiceSpec } from "../src/manifest/ServiceSpec.js"
import { makeLocalSupervisor } from "../src/supervisor/LocalSupervisor.js"
import { PidRegistry } from "../src/supervisor/PidRegistry.js"
import { signalGroup } from "../src/process/ProcessGroup.js"
import { ProcessRegistry } from "../src/process/ProcessRegistry.js"
import type { ServiceStatus } from "../src/stack/ServiceStatus.js"
import { StartFailed } from "../src/supervisor/Supervisor.js"
import { eventually, processesMentioning, survivors, withoutForkedCopies } from "./support/Processes.js"
import { execProbe, fixtureBin, freshPort, httpProbe, service, stackOf, tempDir } from "./support/Specs.js"

/** Runs `body` with a supervisor of `services`; afterwards checks that no process of any group is left. */
const withSupervisor = <A, E>(
  services: ReadonlyArray<ServiceSpec>,
  body: (
    sup: Effect.Effect.Success<ReturnType<typeof makeLocalSupervisor>>,
    seen: Array<ServiceStatus>,
    pids: Set<number>
  ) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const dir = tempDir()
    const seen: Array<ServiceStatus> = []
    const pids = new Set<number>()
    const scope = yield* Scope.make()
    const sup = yield* makeLocalSupervisor(stackOf(dir, services)).pipe(
      Effect.provide(ProcessRegistry.none),
      Scope.extend(scope)
    )
    yield* sup.transitions.pipe(
      Stream.runForEach((s) =>
        Effect.sync(() => {
          seen.push(s)
          if (s.pid !== null) pids.add(s.pid)
        })
      ),
      Effect.forkIn(scope)
    )
    yield* Effect.sleep("10 millis")
    const result = yield* body(sup, seen, pids).pipe(Effect.exit)
    yield* Scope.close(scope, Exit.void)
    expect(survivors(pids)).toEqual([])
    return yield* result
  })

const firstIndex = (seen: ReadonlyArray<ServiceStatus>, name: string, state: string) =>
  seen.findIndex((s) => s.name === name && s.state === state)

/**
 * Waits until the transitions stream has delivered `name` reaching `state` (the stream is read in a fiber of
 * its own, so it may lag the verb that published the change), at most 10 s.
 */
const seenState = (seen: ReadonlyArray<ServiceStatus>, name: string, state: string) =>
  Effect.promise(() => eventually(() => firstIndex(seen, name, state) >= 0, 10_000))

describe("LocalSupervisor", () => {
  it.live("starts a dependent only after its dependency is ready, and stops in reverse order", () => {
    const [pa, pb, pc] = [freshPort(), freshPort(), freshPort()]
    const services = [
      service("a", fixtureBin("http-server.mjs"), [String(pa), "300"], { readiness: httpProbe(pa) }),
      service("b", fixtureBin("http-server.mjs"), [String(pb), "100"], {
        readiness: httpProbe(pb),
        dependsOn: { a: "process_healthy" }
      }),
      service("c", fixtureBin("http-server.mjs"), [String(pc)], {
        readiness: httpProbe(pc),
        dependsOn: { b: "process_healthy" }
      })
    ]
    return withSupervisor(services, (sup, seen) =>
      Effect.gen(function* () {
        yield* sup.up()
        const status = yield* sup.status
        expect(status.map((s) => [s.name, s.state])).toEqual([
          ["a", "ready"],
          ["b", "ready"],
          ["c", "ready"]
        ])
        expect(firstIndex(seen, "a", "ready")).toBeLessThan(firstIndex(seen, "b", "starting"))
        expect(firstIndex(seen, "b", "ready")).toBeLessThan(firstIndex(seen, "c", "starting"))
        yield* sup.shutdown
        yield* seenState(seen, "a", "stopped")
        const stops = seen.filter((s) => s.state === "stopped").map((s) => s.name)
        expect(stops).toEqual(["c", "b", "a"])
      })
    )
  })

  it.live("does not start the dependents of a service that fails, and reports its last lines", () =>
    withSupervisor(
      [
        service("db", fixtureBin("crash.sh"), ["0.1", "3"], { readiness: httpProbe(freshPort()) }),
        service("api", fixtureBin("http-server.mjs"), [String(freshPort())], { dependsOn: { db: "process_healthy" } })
      ],
      (sup) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(sup.up())
          expect(error).toBeInstanceOf(StartFailed)
          expect(error.message).toContain("db failed to start")
          expect(error.message).toContain("exited with code 3")
          expect(error.message).toContain("crash: exiting with 3")
          const api = yield* sup.statusOf("api")
          expect(api.state).toBe("skipped")
          expect(api.pid).toBeNull()
          expect(api.reason).toContain("db")
        })
    )
  )

  it.live("kills a service that ignores SIGTERM after its shutdown timeout", () =>
    withSupervisor([service("stubborn", fixtureBin("ignore-term.sh"), [], { shutdown: { timeoutMs: 300 } })], (sup) =>
      Effect.gen(function* () {
        yield* sup.up()
        const { pid } = yield* sup.statusOf("stubborn")
        expect(pid).not.toBeNull()
        yield* Effect.sleep("100 millis")
        yield* sup.stop("stubborn")
        expect(survivors([pid!])).toEqual([])
        expect((yield* sup.statusOf("stubborn")).state).toBe("stopped")
      })
    )
  )

  it.live("ends the grandchildren with their service", () =>
    withSupervisor([service("forker", fixtureBin("forker.sh"), [], { readyLogLine: "forker ready" })], (sup) =>
      Effect.gen(function* () {
        yield* sup.up()
        const lines = yield* sup.logs("forker", 10)
        const grandchildren = lines.flatMap((l) => (/^grandchild (\d+)/.exec(l.text) ? [Number(RegExp.$1)] : []))
        expect(grandchildren).toHaveLength(2)
        expect(survivors(grandchildren)).toHaveLength(2)
        yield* sup.stop("forker")
        expect(survivors(grandchildren)).toEqual([])
      })
    )
  )

  it.live("a stop signals a whole level ahead of its stops; a service that ends on the signal is not restarted", () => {
    const dir = tempDir()
    const names = Array.from({ length: 20 }, (_, i) => `s${String(i + 1).padStart(2, "0")}`)
    return withSupervisor(
      names.map((name) =>
        service(name, fixtureBin("counter.sh"), [join(dir, name)], {
          readyLogLine: "counter started",
          restart: { policy: "always", backoffMs: 0 }
        })
      ),
      (sup, seen) =>
        Effect.gen(function* () {
          yield* sup.up()
          yield* sup.shutdown
          expect(seen.filter((s) => s.state === "restarting" || s.state === "failed")).toEqual([])
          expect((yield* sup.status).map((s) => [s.name, s.state, s.restarts])).toEqual(
            names.map((name) => [name, "stopped", 0])
          )
          for (const name of names) expect(readFileSync(join(dir, name), "utf8")).toBe("start\n")
        })
    )
  })

  it.live("restarts on failure up to max_restarts, then gives up", () => {
    const dir = tempDir()
    const starts = join(dir, "starts")
    return withSupervisor(
      [
        service("flaky", fixtureBin("counter.sh"), [starts, "1", "0.05"], {
          restart: { policy: "on_failure", backoffMs: 50, maxRestarts: 2 }
        })
      ],
      (sup) =>
        Effect.gen(function* () {
          yield* sup.up()
          const final = yield* sup.transitions.pipe(
            Stream.filter((s) => s.name === "flaky" && s.state === "failed"),
            Stream.runHead,
            Effect.timeout("10 seconds")
          )
          expect(final._tag).toBe("Some")
          const status = yield* sup.statusOf("flaky")
          expect(status.restarts).toBe(2)
          expect(status.exitCode).toBe(1)
          expect(status.reason).toContain("max_restarts (2) reached")
          expect(readFileSync(starts, "utf8").trim().split("\n")).toHaveLength(3)
        })
    )
  })

  it.live("twenty concurrent restarts end with exactly one instance", () => {
    const dir = tempDir()
    const starts = join(dir, "starts")
    return withSupervisor(
      [service("svc", fixtureBin("counter.sh"), [starts], { readyLogLine: "counter started" })],
      (sup) =>
        Effect.gen(function* () {
          yield* sup.up()
          yield* Effect.forEach(Array.from({ length: 20 }), () => sup.restart("svc"), { concurrency: "unbounded" })
          const status = yield* sup.statusOf("svc")
          expect(status.state).toBe("ready")
          expect(status.restarts).toBe(20)
          // a restart that supersedes one still starting may never spawn: at most one spawn per restart
          const spawned = readFileSync(starts, "utf8").trim().split("\n").length
          expect(spawned).toBeGreaterThanOrEqual(2)
          expect(spawned).toBeLessThanOrEqual(21)
          // a child the shell has forked but not yet exec'd (its `sleep`) is not an instance
          const instances = withoutForkedCopies(processesMentioning(starts))
          expect(instances).toHaveLength(1)
          expect(instances[0]!.pid).toBe(status.pid)
        })
    )
  })

  it.live("a slow service of a stop level holds up neither its siblings' stopped state nor their start", () => {
    const pa = freshPort()
    return withSupervisor(
      [
        service("a", fixtureBin("http-server.mjs"), [String(pa)], { readiness: httpProbe(pa) }),
        service("b", fixtureBin("http-server.mjs"), [String(freshPort())], { dependsOn: { a: "process_started" } }),
        // b and c are one stop level of `stop a`; c ignores SIGTERM, and its grace period outlasts the test
        service("c", fixtureBin("ignore-term.sh"), [], {
          dependsOn: { a: "process_started" },
          // ready once its trap is set: a SIGTERM before that would end it
          readyLogLine: "ignoring SIGTERM",
          shutdown: { timeoutMs: 120_000 }
        })
      ],
      (sup, seen) =>
        Effect.gen(function* () {
          yield* sup.up()
          const c = (yield* sup.statusOf("c")).pid!
          const stopA = yield* Effect.fork(sup.stop("a"))
          yield* seenState(seen, "b", "stopped")
          expect((yield* sup.statusOf("c")).state).toBe("stopping")
          // b's lock is free while c still stops: it starts again at once (a is still up: its level comes next)
          yield* sup.start("b")
          expect((yield* sup.statusOf("b")).state).toBe("running")
          expect((yield* sup.statusOf("c")).state).toBe("stopping")
          // c ends now (its stop then sweeps its group), and the stop goes on to a
          signalGroup(c, "SIGKILL")
          yield* Fiber.join(stopA)
          expect((yield* sup.status).map((s) => [s.name, s.state])).toEqual([
            ["a", "stopped"],
            ["b", "running"],
            ["c", "stopped"]
          ])
        })
    )
  })

  it.live(
    "a service whose process ends while its stop waits for a sibling's lock is stopped, also when that stop is interrupted",
    () =>
      withSupervisor(
        [
          service("z", "sleep", ["1000"]),
          service("x", "sleep", ["1000"], { dependsOn: { z: "process_started" } }),
          // y ignores SIGTERM: its own stop holds its lock until the test ends y
          service("y", fixtureBin("ignore-term.sh"), [], {
            dependsOn: { z: "process_started" },
            // ready once its trap is set: a SIGTERM before that would end it
            readyLogLine: "ignoring SIGTERM",
            shutdown: { timeoutMs: 120_000 }
          })
        ],
        (sup) =>
          Effect.gen(function* () {
            const gone = (pid: number) => Effect.promise(() => eventually(() => survivors([pid]).length === 0, 10_000))
            yield* sup.up()
            const x = (yield* sup.statusOf("x")).pid!
            const y = (yield* sup.statusOf("y")).pid!
            const stopY = yield* Effect.fork(sup.stop("y"))
            while ((yield* sup.statusOf("y")).state !== "stopping") yield* Effect.sleep("5 millis")
            // stop z: its dependents x and y are one level; x is signalled at once, y's lock is held by stopY
            const stopZ = yield* Effect.fork(sup.stop("z"))
            expect(yield* gone(x)).toBe(true)
            expect(
              yield* Effect.promise(() => eventually(() => Effect.runSync(sup.statusOf("x")).state === "stopped"))
            ).toBe(true)
            // that stop, interrupted while it waits: x stays stopped, with no pid
            yield* Fiber.interrupt(stopZ)
            expect(yield* sup.statusOf("x")).toMatchObject({ state: "stopped", pid: null })
            signalGroup(y, "SIGKILL")
            yield* Fiber.join(stopY)
            // and once more, not interrupted: every service ends stopped
            yield* sup.start("x")
            const x2 = (yield* sup.statusOf("x")).pid!
            const stopY2 = yield* Effect.fork(sup.start("y").pipe(Effect.zipRight(sup.stop("y"))))
            while ((yield* sup.statusOf("y")).state !== "stopping") yield* Effect.sleep("5 millis")
            const y2 = (yield* sup.statusOf("y")).pid!
            const stopZ2 = yield* Effect.fork(sup.stop("z"))
            expect(yield* gone(x2)).toBe(true)
            signalGroup(y2, "SIGKILL")
            yield* Fiber.join(stopY2)
            yield* Fiber.join(stopZ2)
            expect((yield* sup.status).map((s) => [s.name, s.state, s.pid])).toEqual([
              ["z", "stopped", null],
              ["x", "stopped", null],
              ["y", "stopped", null]
            ])
          })
      )
  )

  it.live("a whole-stack stop sends each service its own stop signal through the guardian", () =>
    Effect.gen(function* () {
      const dir = tempDir()
      // each says which signal ended it; only a SIGKILL after the 30 s grace period would leave no file
      const traps = (name: string) =>
        `trap 'echo POLL > ${name}.got; exit 0' 29; trap 'echo TERM > ${name}.got; exit 0' TERM; ` +
        "echo up; while :; do sleep 0.05; done"
      const services = (["a", "b", "c"] as const).map((name) =>
        service(name, "sh", ["-c", traps(join(dir, name))], {
          readyLogLine: "up",
          shutdown: { signal: name === "c" ? "SIGTERM" : "SIGPOLL", timeoutMs: 30_000 }
        })
      )
      const stack = stackOf(dir, services)
      const scope = yield* Scope.make()
      const sup = yield* makeLocalSupervisor(stack).pipe(
        Effect.provide(PidRegistry.layer(stack.stateDir)),
        Scope.extend(scope)
      )
      yield* sup.up()
      const pids = (yield* sup.status).map((s) => s.pid!)
      yield* sup.shutdown
      yield* Scope.close(scope, Exit.void)
      expect(["a", "b", "c"].map((name) => readFileSync(join(dir, `${name}.got`), "utf8").trim())).toEqual([
        "POLL",
        "POLL",
        "TERM"
      ])
      expect(survivors(pids)).toEqual([])
    })
  )

  it.live("stopping a dependency stops its dependents first; start waits for dependency conditions", () => {
    const pa = freshPort()
    return withSupervisor(
      [
        service("a", fixtureBin("http-server.mjs"), [String(pa), "200"], { readiness: httpProbe(pa) }),
        service("b", fixtureBin("ignore-term.sh"), [], {
          dependsOn: { a: "process_healthy" },
          shutdown: { timeoutMs: 200 }
        })
      ],
      (sup, seen) =>
        Effect.gen(function* () {
          yield* sup.up()
          yield* sup.stop("a")
          yield* seenState(seen, "a", "stopped")
          expect(firstIndex(seen, "b", "stopped")).toBeLessThan(firstIndex(seen, "a", "stopped"))
          const blocked = yield* Effect.flip(sup.start("b"))
          expect(blocked.message).toContain("dependency a is stopped")
          const fiber = yield* Effect.fork(sup.start("a"))
          yield* sup.start("b").pipe(Effect.delay("20 millis"))
          yield* Fiber.join(fiber)
          expect((yield* sup.status).map((s) => s.state)).toEqual(["ready", "running"])
        })
    )
  })

  it.live("starts a dependent after a one-shot job completed successfully, and skips it after a failed one", () =>
    withSupervisor(
      [
        service("migrate", "sh", ["-c", "echo migrated"]),
        service("app", fixtureBin("counter.sh"), [join(tempDir(), "starts")], {
          dependsOn: { migrate: "process_completed_successfully" }
        }),
        service("badjob", "sh", ["-c", "exit 2"]),
        service("other", fixtureBin("counter.sh"), [join(tempDir(), "starts")], {
          dependsOn: { badjob: "process_completed_successfully" }
        })
      ],
      (sup) =>
        Effect.gen(function* () {
          yield* sup.up(["app"])
          expect((yield* sup.statusOf("migrate")).state).toBe("completed")
          expect((yield* sup.statusOf("app")).state).toBe("running")
          const error = yield* Effect.flip(sup.up(["other"]))
          expect(error.message).toContain("badjob")
          const other = yield* sup.statusOf("other")
          expect(other.state).toBe("skipped")
          expect(other.reason).toContain("dependency badjob")
        })
    )
  )

  it.live("skips a dependent as soon as one of its dependencies fails, whatever its other dependencies do", () =>
    withSupervisor(
      [
        // never ready within the test: a dependent waiting for all its dependencies' verdicts would wait 60 s
        service("slow", "sleep", ["1000"], { readiness: execProbe("false"), readinessTimeoutMs: 60_000 }),
        service("badjob", "sh", ["-c", "exit 2"]),
        service("app", "sleep", ["1000"], {
          dependsOn: { slow: "process_healthy", badjob: "process_completed_successfully" }
        })
      ],
      (sup) =>
        Effect.gen(function* () {
          // badjob was running, which is all `up` asks of it: the failure `up` sees is app's
          const error = yield* Effect.flip(sup.up(["app"]))
          expect(error.message).toContain(
            "app failed to start: dependency badjob can no longer be completed_successfully"
          )
          expect((yield* sup.statusOf("app")).state).toBe("skipped")
          expect((yield* sup.statusOf("slow")).state).toBe("starting")
        })
    )
  )

  it.live("a failed start is reported at once, even with a dependent that the failure does not skip", () =>
    withSupervisor(
      [
        // never ready within the test, and a dependent's condition that the failure meets: that dependent waits on
        service("slow", "sleep", ["1000"], { readiness: execProbe("false"), readinessTimeoutMs: 60_000 }),
        service("job", "sh", ["-c", "exit 1"], { readiness: execProbe("false") }),
        service("app", "sleep", ["1000"], { dependsOn: { slow: "process_healthy", job: "process_completed" } })
      ],
      (sup) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(sup.up(["app"]))
          expect(error.message).toContain("job failed to start: exited with code 1")
          expect((yield* sup.statusOf("app")).state).toBe("waiting")
        })
    )
  )

  it.live("restarts a service whose liveness check fails, per its policy", () => {
    const dir = tempDir()
    const sick = join(dir, "sick")
    return withSupervisor(
      [
        service("svc", fixtureBin("counter.sh"), [join(dir, "starts")], {
          readyLogLine: "counter started",
          liveness: {
            check: { _tag: "exec", command: `test ! -e ${sick}`, workingDir: dir },
            initialDelayMs: 0,
            periodMs: 50,
            timeoutMs: 1000,
            successThreshold: 1,
            failureThreshold: 2
          },
          restart: { policy: "on_failure", backoffMs: 10 }
        })
      ],
      (sup) =>
        Effect.gen(function* () {
          yield* sup.up()
          const first = (yield* sup.statusOf("svc")).pid
          const restarting = yield* Effect.fork(
            sup.transitions.pipe(
              Stream.filter((s) => s.state === "restarting"),
              Stream.runHead
            )
          )
          yield* Effect.sync(() => writeFileSync(sick, ""))
          const seen = yield* Fiber.join(restarting)
          expect(seen._tag).toBe("Some")
          if (seen._tag === "Some") expect(seen.value.reason).toContain("liveness check failed")
          yield* Effect.sync(() => rmSync(sick))
          const ready = yield* sup.transitions.pipe(
            Stream.filter((s) => s.state === "ready"),
            Stream.runHead
          )
          expect(ready._tag).toBe("Some")
          const status = yield* sup.statusOf("svc")
          expect(status.restarts).toBe(1)
          expect(status.pid).not.toBe(first)
          expect(survivors([first!])).toEqual([])
        })
    )
  })
})
