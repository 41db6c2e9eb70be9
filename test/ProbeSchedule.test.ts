import { describe, expect, it } from "@effect/vitest"
import {
  EXEC_LATENESS,
  FIRST_DELAY_MS,
  LATENESS,
  MIN_PERIOD_MS,
  initial,
  nextDelay,
  onResult,
  type ProbeState,
  type ProbeVerdict
} from "../src/health/ProbeSchedule.js"

const spec = { initialDelayMs: 0, periodMs: 10_000, successThreshold: 1, failureThreshold: 3 }

/** Runs results through the state machine, each at the time the schedule asks for; returns verdicts and times. */
const run = (state: ProbeState, results: ReadonlyArray<boolean>) => {
  let now = 0
  const verdicts: Array<ProbeVerdict> = []
  const times: Array<number> = []
  for (const ok of results) {
    now += nextDelay(state)
    times.push(now)
    const step = onResult(state, ok, now)
    state = step.state
    verdicts.push(step.verdict)
  }
  return { state, verdicts, times }
}

describe("ProbeSchedule", () => {
  for (const { name, lateness, from, at, bound } of [
    // every 10 ms for the first 200 ms, then 5 % of the time elapsed
    { name: "http and tcp", lateness: LATENESS, from: 18, at: [180, 190, 200, 210, 221, 232, 244, 256], bound: 130 },
    { name: "exec", lateness: EXEC_LATENESS, from: 0, at: [0, 10, 20, 30, 40, 50, 60, 70, 81, 93, 107, 123], bound: 60 }
  ]) {
    it(`readiness (${name}) starts at once and fast, backs off with the time elapsed, and settles at the period`, () => {
      const { state, times } = run(initial(spec, "readiness", 0, lateness), Array(200).fill(false))
      const delays = times.map((t, i) => t - (times[i - 1] ?? 0))
      expect(times.slice(0, 3)).toEqual([0, 10, 20])
      expect(times.slice(from, from + at.length)).toEqual(at)
      for (let i = 1; i < delays.length; i++) {
        // never later than `lateness` of the time elapsed (nor sooner than 10 ms, nor later than the period)
        expect(delays[i]!).toBe(Math.min(10_000, Math.max(FIRST_DELAY_MS, Math.round(times[i - 1]! * lateness))))
      }
      expect(delays.at(-1)).toBe(10_000)
      expect(nextDelay(state)).toBe(10_000)
      // A 200-service stack is not flooded: a bounded number of checks in the first 30 seconds.
      expect(times.filter((t) => t <= 30_000).length).toBeLessThan(bound)
    })

    it(`a service ready at t is seen by ${1 + lateness} t (+10 ms) (${name})`, () => {
      const { times } = run(initial(spec, "readiness", 0, lateness), Array(200).fill(false))
      for (const readyAt of [5, 100, 200, 300, 1_000, 5_000, 20_000]) {
        const seen = times.find((t) => t >= readyAt)!
        expect(seen).toBeLessThanOrEqual(Math.max(readyAt * (1 + lateness) + 1, readyAt + FIRST_DELAY_MS))
      }
    })
  }

  it("a ready service is seen within a few tens of ms: checks at 0, 10, 20 ms", () => {
    const { times } = run(initial(spec), [false, false, false])
    expect(times).toEqual([0, 10, 20])
  })

  it("never waits longer than the period, even a short one", () => {
    const { times } = run(initial({ ...spec, periodMs: 12 }), Array(6).fill(false))
    expect(times).toEqual([0, 10, 20, 30, 40, 50])
  })

  it("liveness checks at once, then every period", () => {
    const { times } = run(initial(spec, "liveness"), [true, true, true])
    expect(times).toEqual([0, 10_000, 20_000])
  })

  it("liveness started right after readiness waits one period before its first check", () => {
    const { times } = run(initial(spec, "liveness", spec.periodMs), [true, true, true])
    expect(times).toEqual([10_000, 20_000, 30_000])
  })

  it("success threshold: consecutive successes; a failure restarts the count", () => {
    const s = initial({ ...spec, successThreshold: 3 })
    expect(run(s, [true, true, false, true, true, true]).verdicts).toEqual([
      "pending",
      "pending",
      "pending",
      "pending",
      "pending",
      "healthy"
    ])
  })

  it("failure threshold: consecutive failures make it unhealthy; a success restarts the count", () => {
    const s = initial({ ...spec, failureThreshold: 2 })
    expect(run(s, [false, true, false, false]).verdicts).toEqual(["pending", "healthy", "healthy", "unhealthy"])
  })

  it("the verdict holds between thresholds (hysteresis) and recovers after successThreshold successes", () => {
    const s = initial({ ...spec, successThreshold: 2, failureThreshold: 2 })
    const { verdicts } = run(s, [true, true, false, true, false, false, true, true])
    expect(verdicts).toEqual([
      "pending",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "unhealthy",
      "unhealthy",
      "healthy"
    ])
  })

  it("grace period: failures inside initialDelay do not count, successes do", () => {
    const s = initial({ ...spec, initialDelayMs: 1000, failureThreshold: 1 })
    let state = s
    let step = onResult(state, false, 0)
    expect(step.verdict).toBe("pending")
    expect(step.state.consecutiveFailures).toBe(0)
    state = onResult(step.state, false, 999).state
    expect(state.verdict).toBe("pending")
    step = onResult(state, false, 1000)
    expect(step.verdict).toBe("unhealthy")

    const ready = onResult(initial({ ...spec, initialDelayMs: 1000 }), true, 5)
    expect(ready.verdict).toBe("healthy")
  })

  it("grace period: a failure inside it still breaks a run of successes", () => {
    const s = initial({ ...spec, initialDelayMs: 1000, successThreshold: 2 })
    const a = onResult(s, true, 0).state
    const b = onResult(a, false, 10).state
    expect(b.consecutiveSuccesses).toBe(0)
    expect(onResult(b, true, 20).verdict).toBe("pending")
  })

  it("a period of 0 is taken as MIN_PERIOD_MS: a liveness probe checks every 100 ms, not in a busy loop", () => {
    const { times } = run(initial({ ...spec, periodMs: 0 }, "liveness"), [true, true, true])
    expect(times).toEqual([0, MIN_PERIOD_MS, 2 * MIN_PERIOD_MS])
    expect(MIN_PERIOD_MS).toBe(100)
  })

  it("counts checks and clamps nonsense thresholds to 1", () => {
    const s = initial({ initialDelayMs: -5, periodMs: 0, successThreshold: 0, failureThreshold: 0 })
    expect(s.successThreshold).toBe(1)
    expect(s.failureThreshold).toBe(1)
    expect(onResult(s, false, 0).verdict).toBe("unhealthy")
    expect(run(s, [true, true]).state.checks).toBe(2)
  })
})
