/**
 * When a service may start and when `up` is done, as pure decisions on the states of services: whether a
 * dependency's state meets a `depends_on` condition, and whether a started service has settled.
 */
import type { DependencyCondition } from "../manifest/ServiceManifest.js"
import type { ServiceState, ServiceStatus } from "./ServiceStatus.js"

/** Met now, may still be met (wait), or never will be (with the reason). */
export type Verdict = "met" | "wait" | { readonly failed: string }

/** What a condition looks at in a dependency. */
export interface DependencyState {
  readonly status: Pick<ServiceStatus, "state" | "exitCode" | "reason">
  /** `ready_log_line` matched in the current run. */
  readonly logReady: boolean
  /** The dependency has a `ready_log_line`. */
  readonly hasLogLine: boolean
}

/** States a service does not leave by itself: it will not start unless asked again. */
const gone: ReadonlyArray<ServiceState> = ["failed", "skipped", "disabled", "stopped"]

const why = (status: DependencyState["status"]) => `it is ${status.state}${status.reason ? ` (${status.reason})` : ""}`

/** Whether a dependency's state satisfies a `depends_on` condition, may still, or never will. */
export const conditionVerdict = (condition: DependencyCondition, dependency: DependencyState): Verdict => {
  const { state, exitCode } = dependency.status
  const failed = { failed: why(dependency.status) }
  switch (condition) {
    case "process_started":
      if (state === "starting" || state === "running" || state === "ready" || state === "completed") return "met"
      if (state === "failed" && exitCode !== null) return "met"
      return gone.includes(state) ? failed : "wait"
    case "process_healthy":
    case "process_log_ready":
      if (condition === "process_log_ready" && dependency.hasLogLine) {
        if (dependency.logReady && (state === "starting" || state === "running" || state === "ready")) return "met"
      } else if (state === "running" || state === "ready") return "met"
      return gone.includes(state) || state === "completed" ? failed : "wait"
    case "process_completed":
      if (state === "completed" || (state === "failed" && exitCode !== null)) return "met"
      return gone.includes(state) ? failed : "wait"
    case "process_completed_successfully":
      if (state === "completed" && exitCode === 0) return "met"
      if (state === "completed" || gone.includes(state)) return failed
      return "wait"
  }
}

/**
 * Whether a service that `up` started has settled: met when it runs, is ready, or completed successfully;
 * failed when it failed, was skipped, stopped or disabled, or completed with a non-zero code.
 */
export const settledVerdict = (status: DependencyState["status"]): Verdict => {
  const { state, exitCode } = status
  if (state === "completed") return exitCode === null || exitCode === 0 ? "met" : { failed: why(status) }
  if (state === "running" || state === "ready") return "met"
  return gone.includes(state) ? { failed: why(status) } : "wait"
}
