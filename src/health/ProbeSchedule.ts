/**
 * When to probe next, and what the results so far mean. Pure: the effectful loop in `Probe.ts` feeds it.
 *
 * Schedule. A readiness probe starts at once and fast, then backs off to `periodMs`: the next check comes a
 * share (`lateness`) of the time since the probe started after the last one, at least 10 ms and at most
 * `periodMs` later. The share is `LATENESS` (5 %) for http and tcp checks, which cost a connection, and
 * `EXEC_LATENESS` (15 %) for exec checks, which cost a process each: checks at 0, 10, 20, ... 200, 210, 220, 231
 * ms and so on (exec: 0, 10, ... 70, 81, 93, 107). A service that is up is seen within tens of milliseconds,
 * one that takes t to start is seen at most 0.05 t late (exec 0.15 t; whatever the event loop's delays did to
 * the checks: the schedule follows time, not the count of checks), and every probe backs off, so a stack of
 * hundreds of services is not flooded (about 120 checks in the first 30 s with the default 10 s period, 45 for
 * exec, then one per period). 5 % against 15 %: the 3-level chain of the bench (100, 200 and 300 ms) was ready
 * 35-65 ms sooner. A liveness probe checks at once, then every `periodMs`: it watches a
 * service already up, and fast retries would turn a blip into `failureThreshold` failures. One that starts
 * right after a readiness check passed waits one period before its first check (`firstDelayMs`): the check
 * that just passed said as much, and with hundreds of services those checks would all land in the start burst.
 *
 * Verdict (as Kubernetes): `pending` until `successThreshold` consecutive successes make it `healthy`, or
 * `failureThreshold` consecutive counted failures make it `unhealthy`; it then stays so until the opposite
 * threshold is reached. Failures within `initialDelayMs` of the start (the grace period) do not count
 * towards the failure threshold; they still break a run of successes. Successes always count.
 */
import type { ProbeSpec } from "../manifest/ServiceSpec.js"

/** What a probe says about its service. */
export type ProbeVerdict = "pending" | "healthy" | "unhealthy"

/** How the schedule starts: readiness probes start fast and back off, liveness probes keep to the period. */
export type ProbeKind = "readiness" | "liveness"

/** The state of one probe between checks. */
export interface ProbeState {
  readonly kind: ProbeKind
  readonly initialDelayMs: number
  readonly periodMs: number
  readonly successThreshold: number
  readonly failureThreshold: number
  /** Checks done so far. */
  readonly checks: number
  readonly consecutiveSuccesses: number
  /** Consecutive failures outside the grace period. */
  readonly consecutiveFailures: number
  readonly verdict: ProbeVerdict
  /** When the last check was done, in milliseconds since the probe started. */
  readonly lastCheckMs: number
  /** Wait before the first check. */
  readonly firstDelayMs: number
  /** The readiness delay as a share of the time since the probe started (`LATENESS`, `EXEC_LATENESS`). */
  readonly lateness: number
}

/**
 * The shortest period: `period_seconds: 0` would otherwise check (and with `exec`, spawn) in a busy loop, and a
 * failing liveness probe would restart its service as fast as it fails.
 */
export const MIN_PERIOD_MS = 100
/** Delay after the first check of a readiness probe. */
export const FIRST_DELAY_MS = 10
/** The readiness delay as a share of the time since the probe started: how late a service may be seen ready. */
export const LATENESS = 0.05
/** The same for exec checks, each of which spawns a process. */
export const EXEC_LATENESS = 0.15

/** The state before the first check, which comes after `firstDelayMs` (none by default). */
export const initial = (
  spec: Pick<ProbeSpec, "initialDelayMs" | "periodMs" | "successThreshold" | "failureThreshold">,
  kind: ProbeKind = "readiness",
  firstDelayMs = 0,
  lateness = LATENESS
): ProbeState => ({
  kind,
  initialDelayMs: Math.max(0, spec.initialDelayMs),
  periodMs: Math.max(MIN_PERIOD_MS, spec.periodMs),
  successThreshold: Math.max(1, spec.successThreshold),
  failureThreshold: Math.max(1, spec.failureThreshold),
  checks: 0,
  consecutiveSuccesses: 0,
  consecutiveFailures: 0,
  verdict: "pending",
  lastCheckMs: 0,
  firstDelayMs: Math.max(0, firstDelayMs),
  lateness
})

/** Milliseconds to wait before the next check: `firstDelayMs` before the first. */
export const nextDelay = (state: ProbeState): number => {
  if (state.checks === 0) return state.firstDelayMs
  if (state.kind === "liveness") return state.periodMs
  return Math.min(state.periodMs, Math.max(FIRST_DELAY_MS, Math.round(state.lastCheckMs * state.lateness)))
}

/** Whether a failure at `elapsedMs` after the start falls in the grace period. */
export const inGracePeriod = (state: ProbeState, elapsedMs: number): boolean => elapsedMs < state.initialDelayMs

/**
 * Folds in the result of one check, done `elapsedMs` after the probe started.
 * Returns the new state and its verdict (the same as `state.verdict`).
 */
export const onResult = (
  state: ProbeState,
  ok: boolean,
  elapsedMs: number
): { readonly state: ProbeState; readonly verdict: ProbeVerdict } => {
  const lastCheckMs = elapsedMs
  const checks = state.checks + 1
  let next: ProbeState
  if (ok) {
    const consecutiveSuccesses = state.consecutiveSuccesses + 1
    next = {
      ...state,
      checks,
      lastCheckMs,
      consecutiveSuccesses,
      consecutiveFailures: 0,
      verdict: consecutiveSuccesses >= state.successThreshold ? "healthy" : state.verdict
    }
  } else {
    const consecutiveFailures = inGracePeriod(state, elapsedMs)
      ? state.consecutiveFailures
      : state.consecutiveFailures + 1
    next = {
      ...state,
      checks,
      lastCheckMs,
      consecutiveSuccesses: 0,
      consecutiveFailures,
      verdict: consecutiveFailures >= state.failureThreshold ? "unhealthy" : state.verdict
    }
  }
  return { state: next, verdict: next.verdict }
}
