import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, Stream, TestClock } from "effect"
import { Defaults, type RestartSpec } from "../src/manifest/ServiceSpec.js"
import { makeLocalSupervisor } from "../src/supervisor/LocalSupervisor.js"
import { ProcessRegistry } from "../src/process/ProcessRegistry.js"
import { backoffDelay, crashLoopDelay, decideRestart } from "../src/supervisor/RestartPolicy.js"
import { survivors } from "./support/Processes.js"
import { fixtureBin, service, stackOf, tempDir } from "./support/Specs.js"

const spec = (o: Partial<RestartSpec>): RestartSpec => ({
  ...Defaults.restart,
  exponential: false,
  exitOnEnd: false,
  ...o
})
const exit = (code: number, requested = false) => ({ code, requested })

describe("decideRestart", () => {
  it("never restarts with policy no", () => {
    expect(decideRestart(spec({ policy: "no" }), exit(1), 0, 0)).toEqual({
      _tag: "Done",
      failed: true,
      reason: "exited with code 1"
    })
    expect(decideRestart(spec({ policy: "no" }), exit(0), 0, 0)).toEqual({
      _tag: "Done",
      failed: false,
      reason: undefined
    })
  })

  it("restarts on_failure only after a non-zero exit", () => {
    expect(decideRestart(spec({ policy: "on_failure" }), exit(2), 0, 0)).toEqual({ _tag: "Restart", delayMs: 1000 })
    expect(decideRestart(spec({ policy: "on_failure" }), exit(0), 0, 0)._tag).toBe("Done")
  })

  it("restarts always, whatever the exit code", () => {
    expect(decideRestart(spec({ policy: "always", backoffMs: 5 }), exit(0), 7, 0)).toEqual({
      _tag: "Restart",
      delayMs: 5
    })
  })

  it("gives up after max_restarts; 0 means unlimited", () => {
    const limited = spec({ policy: "always", maxRestarts: 3 })
    expect(decideRestart(limited, exit(1), 2, 0)._tag).toBe("Restart")
    expect(decideRestart(limited, exit(1), 3, 0)).toEqual({
      _tag: "Done",
      failed: true,
      reason: "exited with code 1; max_restarts (3) reached"
    })
    expect(decideRestart(spec({ policy: "always", maxRestarts: 0 }), exit(1), 1000, 0)._tag).toBe("Restart")
  })

  it("ends the stack on failure with exit_on_failure, not on success", () => {
    expect(decideRestart(spec({ policy: "exit_on_failure" }), exit(1), 0, 0)._tag).toBe("ExitStack")
    expect(decideRestart(spec({ policy: "exit_on_failure" }), exit(0), 0, 0)._tag).toBe("Done")
  })

  it("ends the stack when a process with exit_on_end ends for good", () => {
    expect(decideRestart(spec({ exitOnEnd: true }), exit(0), 0, 0)._tag).toBe("ExitStack")
    expect(decideRestart(spec({ policy: "always", exitOnEnd: true }), exit(0), 0, 0)._tag).toBe("Restart")
  })

  it("never restarts a process stopped on request", () => {
    expect(decideRestart(spec({ policy: "always" }), exit(143, true), 0, 0)._tag).toBe("Done")
  })

  it("doubles an exponential backoff per consecutive failure, up to its cap", () => {
    const s = spec({ exponential: true, backoffMs: 100, maxBackoffMs: 1000 })
    expect([0, 1, 2, 3, 4, 5, 60].map((n) => backoffDelay(s, n))).toEqual([100, 200, 400, 800, 1000, 1000, 1000])
    expect(backoffDelay(spec({ backoffMs: 100 }), 5)).toBe(100)
  })
})

describe("restart backoff in the supervisor (TestClock)", () => {
  it.scoped("waits the backoff before each restart, doubling it, and counts restarts", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const crasher = service("crasher", fixtureBin("crash.sh"), ["0", "4"], {
        restart: { policy: "on_failure", backoffMs: 30_000, exponential: true, maxBackoffMs: 100_000, maxRestarts: 3 }
      })
      const sup = yield* makeLocalSupervisor(stackOf(tempDir(), [crasher])).pipe(
        Effect.provide(ProcessRegistry.none),
        Scope.extend(scope)
      )
      const pids = new Set<number>()
      const restarting = (n: number) =>
        sup.transitions.pipe(
          Stream.tap((s) => Effect.sync(() => s.pid !== null && pids.add(s.pid))),
          Stream.filter((s) => s.state === "restarting" && s.restarts === n),
          Stream.runHead
        )
      const first = yield* Effect.fork(restarting(1))
      yield* sup.up()
      const one = yield* first.await
      expect(Exit.isSuccess(one)).toBe(true)
      expect((yield* sup.statusOf("crasher")).reason).toContain("restarting in 30000 ms")
      // nothing happens before the backoff has elapsed
      const second = yield* Effect.fork(restarting(2))
      yield* TestClock.adjust("29 seconds")
      expect((yield* sup.statusOf("crasher")).state).toBe("restarting")
      yield* TestClock.adjust("1 second")
      yield* second.await
      expect((yield* sup.statusOf("crasher")).reason).toContain("restarting in 60000 ms")
      const third = yield* Effect.fork(restarting(3))
      yield* TestClock.adjust("60 seconds")
      yield* third.await
      expect((yield* sup.statusOf("crasher")).reason).toContain("restarting in 100000 ms")
      const failed = yield* Effect.fork(
        sup.transitions.pipe(
          Stream.filter((s) => s.state === "failed"),
          Stream.runHead
        )
      )
      yield* TestClock.adjust("100 seconds")
      yield* failed.await
      const status = yield* sup.statusOf("crasher")
      expect(status).toMatchObject({ state: "failed", restarts: 3, exitCode: 4 })
      yield* Scope.close(scope, Exit.void)
      expect(survivors(pids)).toEqual([])
    })
  )
})

describe("crash loops", () => {
  it("after three brief runs in a row, a restart waits at least 250 ms, doubled per brief run, up to 30 s, whatever backoff_seconds says", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100].map(crashLoopDelay)).toEqual([
      0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000
    ])
    const noBackoff = spec({ policy: "always", backoffMs: 0 })
    expect(decideRestart(noBackoff, exit(1), 0, 0, 0)).toEqual({ _tag: "Restart", delayMs: 0 })
    expect(decideRestart(noBackoff, exit(1), 2, 2, 3)).toEqual({ _tag: "Restart", delayMs: 0 })
    expect(decideRestart(noBackoff, exit(1), 5, 5, 6)).toEqual({ _tag: "Restart", delayMs: 1000 })
    // a longer backoff wins over the floor
    expect(decideRestart(spec({ policy: "always", backoffMs: 5000 }), exit(1), 0, 0, 1)).toEqual({
      _tag: "Restart",
      delayMs: 5000
    })
  })

  it("a run that ended before it was ready is a failure, whatever its code", () => {
    const beforeReady = { code: 0, requested: false, beforeReady: true }
    expect(decideRestart(spec({ policy: "no" }), beforeReady, 0, 0)).toEqual({
      _tag: "Done",
      failed: true,
      reason: "exited with code 0 before it was ready"
    })
    expect(decideRestart(spec({ policy: "on_failure" }), beforeReady, 0, 0)._tag).toBe("Restart")
    expect(decideRestart(spec({ policy: "exit_on_failure" }), beforeReady, 0, 0)._tag).toBe("ExitStack")
  })
})
