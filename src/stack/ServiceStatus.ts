/**
 * What the supervisor says about a service. It crosses the control API and is the `--json` shape of
 * `stack status` / `stack process list`, so it is a Schema.
 */
import { Schema } from "effect"
import { HEALTHS, SERVICE_STATES } from "./ServiceStates.js"

export { hasProcess } from "./ServiceStates.js"

/**
 * - `pending`: not started yet (or waiting to be asked)
 * - `waiting`: waiting for its dependencies' conditions
 * - `starting`: spawned, not ready yet
 * - `running`: spawned, has no readiness check (or `process_started` is all it offers)
 * - `ready`: readiness check passed (probe or `ready_log_line`)
 * - `restarting`: exited, a restart is scheduled (backoff)
 * - `stopping`: being stopped
 * - `stopped`: stopped on request
 * - `completed`: exited by itself and will not be restarted (see `exitCode`)
 * - `failed`: could not start, or exited and gave up (see `reason`)
 * - `skipped`: not started because a dependency failed
 * - `disabled`: `disabled: true` in its manifest
 */
export const ServiceState = Schema.Literal(...SERVICE_STATES)
export type ServiceState = typeof ServiceState.Type

/** `none`: no readiness probe. `unknown`: not probed yet. */
export const Health = Schema.Literal(...HEALTHS)
export type Health = typeof Health.Type

export const ServiceStatus = Schema.Struct({
  name: Schema.String,
  state: ServiceState,
  health: Health,
  /** Pid of the current process (also its process group id), or null. */
  pid: Schema.NullOr(Schema.Int),
  /** Restarts since the supervisor started it (restarts on request included). */
  restarts: Schema.Int,
  /** Epoch milliseconds when the current process was spawned, or null. */
  startedAt: Schema.NullOr(Schema.Number),
  /** Exit code of the last process (128+n for signal n), or null. */
  exitCode: Schema.NullOr(Schema.Int),
  /** Why it failed, was skipped or stopped, or null. */
  reason: Schema.NullOr(Schema.String),
  ports: Schema.Record({ key: Schema.String, value: Schema.Int }),
  /**
   * CPU use of its whole process group over the last sampling interval (a few seconds), in percent of one core;
   * null when it has no process or none was measured yet. Set by the control API; absent inside the supervisor.
   */
  cpu: Schema.optional(Schema.NullOr(Schema.Number)),
  /** Resident memory of its whole process group in bytes, or null; like `cpu`. */
  rss: Schema.optional(Schema.NullOr(Schema.Number)),
  /**
   * Bytes of its output that could not be written to its log file (a full disk, say; still in memory for
   * `logs` while they last). Absent when none.
   */
  droppedLogBytes: Schema.optional(Schema.Int)
})
export type ServiceStatus = typeof ServiceStatus.Type
