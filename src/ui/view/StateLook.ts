/**
 * How a service's state and health look: a tone (the colour, set by the style sheet) and a symbol, always next
 * to the state's name, so that nothing is told by colour alone. Pure, for the page's bundle.
 */

export type Tone = "ok" | "busy" | "warn" | "bad" | "idle" | "done"

export interface Look {
  readonly tone: Tone
  readonly symbol: string
}

export const stateLook = (state: string): Look => {
  switch (state) {
    case "ready":
    case "running":
      return { tone: "ok", symbol: "●" }
    case "pending":
    case "waiting":
    case "starting":
    case "stopping":
      return { tone: "busy", symbol: "◐" }
    case "restarting":
      return { tone: "warn", symbol: "↻" }
    case "failed":
      return { tone: "bad", symbol: "✕" }
    case "completed":
      return { tone: "done", symbol: "✓" }
    default:
      // stopped, skipped, disabled
      return { tone: "idle", symbol: "○" }
  }
}

export const healthLook = (health: string): Look => {
  switch (health) {
    case "healthy":
      return { tone: "ok", symbol: "♥" }
    case "unhealthy":
      return { tone: "bad", symbol: "!" }
    case "unknown":
      return { tone: "busy", symbol: "?" }
    default:
      return { tone: "idle", symbol: "–" }
  }
}

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
