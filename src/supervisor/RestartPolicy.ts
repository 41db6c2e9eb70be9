/**
 * What happens when a service's process ends: the pure decision, after process-compose's `isRestartable`.
 */
import type { RestartSpec } from "../manifest/ServiceSpec.js"

/** How a process ended. `code` is the exit status (128+n for death by signal n). */
export interface ExitInfo {
  readonly code: number
  /** Whether the supervisor asked it to stop (a stop never triggers a restart). */
  readonly requested: boolean
}

export type RestartDecision =
  | { readonly _tag: "Restart"; readonly delayMs: number }
  /** Leave it ended: `completed` when it exited 0, `failed` otherwise. */
  | { readonly _tag: "Done"; readonly failed: boolean; readonly reason: string | undefined }
  /** End the whole stack (`exit_on_failure`, or `exit_on_end`). */
  | { readonly _tag: "ExitStack"; readonly reason: string }

/**
 * @param restarts restarts already done for this service (by the policy)
 * @param consecutiveFailures failed runs in a row, for the exponential backoff (0 for the first restart)
 */
export const decideRestart = (
  spec: RestartSpec,
  exit: ExitInfo,
  restarts: number,
  consecutiveFailures: number
): RestartDecision => {
  const failed = exit.code !== 0
  if (exit.requested) return { _tag: "Done", failed: false, reason: undefined }
  const ended = failed ? `exited with code ${exit.code}` : "exited with code 0"
  if (failed && spec.policy === "exit_on_failure") return { _tag: "ExitStack", reason: ended }
  const wants = spec.policy === "always" || (spec.policy === "on_failure" && failed)
  if (wants && spec.maxRestarts > 0 && restarts >= spec.maxRestarts) {
    return spec.exitOnEnd
      ? { _tag: "ExitStack", reason: `${ended}; max_restarts (${spec.maxRestarts}) reached` }
      : { _tag: "Done", failed: true, reason: `${ended}; max_restarts (${spec.maxRestarts}) reached` }
  }
  if (wants) return { _tag: "Restart", delayMs: backoffDelay(spec, consecutiveFailures) }
  if (spec.exitOnEnd) return { _tag: "ExitStack", reason: ended }
  return { _tag: "Done", failed, reason: failed ? ended : undefined }
}

/** `backoff_seconds`, doubled per consecutive failure when exponential, capped by `max_backoff_seconds`. */
export const backoffDelay = (spec: RestartSpec, consecutiveFailures: number): number =>
  spec.exponential
    ? Math.min(spec.maxBackoffMs, spec.backoffMs * 2 ** Math.min(consecutiveFailures, 30))
    : spec.backoffMs
