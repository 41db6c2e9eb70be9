/**
 * What happens when a service's process ends: the pure decision, after process-compose's `isRestartable`.
 */
import type { RestartSpec } from "../manifest/ServiceSpec.js"

/** How a process ended. `code` is the exit status (128+n for death by signal n). */
export interface ExitInfo {
  readonly code: number
  /** Whether the supervisor asked it to stop (a stop never triggers a restart). */
  readonly requested: boolean
  /** It had a readiness check and ended before passing it: a failed run, whatever its code. */
  readonly beforeReady?: boolean
}

/** A run shorter than this is brief: runs that are all brief are a crash loop. */
export const BRIEF_RUN_MS = 10_000
/** Brief runs in a row restarted at once (after `backoff_seconds`): a restart or two is not yet a loop. */
export const CRASH_LOOP_FREE_RUNS = 3
/** The least delay after the first brief run past the free ones; it doubles with every brief run in a row. */
export const CRASH_LOOP_FIRST_MS = 250
/** The most the least delay grows to. */
export const CRASH_LOOP_MAX_MS = 30_000

/**
 * The least delay before a restart, whatever `backoff_seconds` says, after `briefRuns` runs in a row (the last
 * one included) that each lasted less than `BRIEF_RUN_MS`: nothing for the first `CRASH_LOOP_FREE_RUNS` (a
 * service killed once or twice comes back at once), then 250 ms, 500 ms, 1 s, 2 s ... up to 30 s. A process that
 * exits at once restarts about eight times in its first 10 s, then twice a minute, instead of spinning
 * (thousands of restarts in seconds with `backoff_seconds: 0`).
 */
export const crashLoopDelay = (briefRuns: number): number =>
  briefRuns <= CRASH_LOOP_FREE_RUNS
    ? 0
    : Math.min(CRASH_LOOP_MAX_MS, CRASH_LOOP_FIRST_MS * 2 ** Math.min(briefRuns - CRASH_LOOP_FREE_RUNS - 1, 30))

export type RestartDecision =
  | { readonly _tag: "Restart"; readonly delayMs: number }
  /** Leave it ended: `completed` when it exited 0, `failed` otherwise. */
  | { readonly _tag: "Done"; readonly failed: boolean; readonly reason: string | undefined }
  /** End the whole stack (`exit_on_failure`, or `exit_on_end`). */
  | { readonly _tag: "ExitStack"; readonly reason: string }

/**
 * @param restarts restarts already done for this service (by the policy)
 * @param consecutiveFailures failed runs in a row, for the exponential backoff (0 for the first restart)
 * @param briefRuns runs in a row, this one included, shorter than `BRIEF_RUN_MS` (see `crashLoopDelay`)
 */
export const decideRestart = (
  spec: RestartSpec,
  exit: ExitInfo,
  restarts: number,
  consecutiveFailures: number,
  briefRuns = 0
): RestartDecision => {
  const failed = exit.code !== 0 || exit.beforeReady === true
  if (exit.requested) return { _tag: "Done", failed: false, reason: undefined }
  const ended =
    exit.code !== 0
      ? `exited with code ${exit.code}`
      : exit.beforeReady === true
        ? "exited with code 0 before it was ready"
        : "exited with code 0"
  if (failed && spec.policy === "exit_on_failure") return { _tag: "ExitStack", reason: ended }
  const wants = spec.policy === "always" || (spec.policy === "on_failure" && failed)
  if (wants && spec.maxRestarts > 0 && restarts >= spec.maxRestarts) {
    return spec.exitOnEnd
      ? { _tag: "ExitStack", reason: `${ended}; max_restarts (${spec.maxRestarts}) reached` }
      : { _tag: "Done", failed: true, reason: `${ended}; max_restarts (${spec.maxRestarts}) reached` }
  }
  if (wants) {
    return { _tag: "Restart", delayMs: Math.max(backoffDelay(spec, consecutiveFailures), crashLoopDelay(briefRuns)) }
  }
  if (spec.exitOnEnd) return { _tag: "ExitStack", reason: ended }
  return { _tag: "Done", failed, reason: failed ? ended : undefined }
}

/** `backoff_seconds`, doubled per consecutive failure when exponential, capped by `max_backoff_seconds`. */
export const backoffDelay = (spec: RestartSpec, consecutiveFailures: number): number =>
  spec.exponential
    ? Math.min(spec.maxBackoffMs, spec.backoffMs * 2 ** Math.min(consecutiveFailures, 30))
    : spec.backoffMs
