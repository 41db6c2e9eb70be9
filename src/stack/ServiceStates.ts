/**
 * The values of a service's `state` and `health`, as plain constants: the Schema of `ServiceStatus` is built
 * from them, and the launcher's plain-Node client (`api/PlainControl.ts`) checks an answer against them
 * without loading Effect.
 */

/** Every `state`, in the order of `ServiceStatus.ts`'s description. */
export const SERVICE_STATES = [
  "pending",
  "waiting",
  "starting",
  "running",
  "ready",
  "restarting",
  "stopping",
  "stopped",
  "completed",
  "failed",
  "skipped",
  "disabled"
] as const

/** Every `health`. */
export const HEALTHS = ["none", "unknown", "healthy", "unhealthy"] as const

/** States in which the service has a process (running, or being started, stopped or restarted). */
export const hasProcess = (state: (typeof SERVICE_STATES)[number]): boolean =>
  state === "starting" || state === "running" || state === "ready" || state === "stopping"
