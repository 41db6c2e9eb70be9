/**
 * How a service's state and health look: a tone (the colour, set by the style sheet) and a symbol, always next
 * to the state's name, so that nothing is told by colour alone. Pure, for the page's bundle.
 */

export type Tone = "ok" | "busy" | "warn" | "bad" | "idle" | "done"

export interface Look {
  readonly tone: Tone
  readonly symbol: string
}

const STATES: Readonly<Record<string, Look>> = {
  ready: { tone: "ok", symbol: "●" },
  running: { tone: "ok", symbol: "●" },
  pending: { tone: "busy", symbol: "◐" },
  waiting: { tone: "busy", symbol: "◐" },
  starting: { tone: "busy", symbol: "◐" },
  stopping: { tone: "busy", symbol: "◐" },
  restarting: { tone: "warn", symbol: "↻" },
  failed: { tone: "bad", symbol: "✕" },
  completed: { tone: "done", symbol: "✓" }
}

const HEALTH: Readonly<Record<string, Look>> = {
  healthy: { tone: "ok", symbol: "♥" },
  unhealthy: { tone: "bad", symbol: "!" },
  unknown: { tone: "busy", symbol: "?" }
}

/** stopped, skipped, disabled; `none` health */
const IDLE: Look = { tone: "idle", symbol: "○" }

export const stateLook = (state: string): Look => STATES[state] ?? IDLE

export const healthLook = (health: string): Look => HEALTH[health] ?? { tone: "idle", symbol: "–" }

/** States whose process is alive (as the supervisor's `isAlive`). */
export const isAliveState = (state: string): boolean =>
  state === "starting" || state === "running" || state === "ready" || state === "stopping"

/** Which verbs make sense now: start a service that does not run, stop one that does, restart any enabled one. */
export const verbsFor = (
  state: string
): { readonly start: boolean; readonly stop: boolean; readonly restart: boolean } => {
  const alive = isAliveState(state) || state === "restarting" || state === "waiting"
  return { start: !alive && state !== "disabled", stop: alive, restart: state !== "disabled" }
}
