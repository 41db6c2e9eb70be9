/**
 * `CORE_TRACE=1`: the phases of `up` and `down` with their times, on stderr, one line each:
 * `core trace +123.4 ms  cli  bundle evaluated`. Times count from the start of the command the user typed: a
 * process started by another `core` process (the background supervisor of `up -d`) gets that start as
 * `CORE_TRACE_ORIGIN` (epoch ms) and counts from it too, so that both processes' lines read as one timeline.
 *
 * Phases that happen once per service (a spawn, a first probe, a service ready, a group gone) are counted, not
 * printed one by one: `summary` prints each as one line (how many, the first and the last time, and the time
 * spent inside the call when it was timed).
 *
 * Off (the default) every function returns after one test of a constant; plain Node, no Effect, so that the
 * launcher can use it before the CLI bundle is loaded.
 */

import * as fs from "node:fs"

const fromEnv = (): boolean => process.env.CORE_TRACE === "1" || process.env.CORE_TRACE === "true"

let enabled = fromEnv()

/**
 * Reads `CORE_TRACE` again: a supervisor started from a V8 startup snapshot (`SupervisorSnapshot.ts`) has this
 * module's state from the build, not from its own environment.
 */
export const refresh = (): void => {
  enabled = fromEnv()
}

/** Whether tracing is on in this process. */
export const tracing = (): boolean => enabled

const origin = (): number => {
  const given = Number(process.env.CORE_TRACE_ORIGIN)
  return Number.isFinite(given) && given > 0 ? given : performance.timeOrigin
}

/** Milliseconds since the traced command started (this process's start unless `CORE_TRACE_ORIGIN` says otherwise). */
const elapsed = (): number => performance.timeOrigin + performance.now() - origin()

const role = (): string => (process.env.CORE_SUPERVISOR === "1" ? "supervisor" : "cli")

const format = (at: number, who: string, text: string, epoch: number): string =>
  `core trace ${`+${at.toFixed(1)}`.padStart(9)} ms  ${who.padEnd(10)} ${text}  @${epoch.toFixed(1)}\n`

const write = (at: number, text: string): void => {
  process.stderr.write(format(at, role(), text, origin() + at))
}

const traceLine = /^core trace +\+[\d.]+ ms {2}(\S+) +(.*) {2}@([\d.]+)$/

/**
 * The trace lines among `lines` (another process's output, e.g. `.core-stack/supervisor.log`), re-timed from
 * this command's start: `down` shows the supervisor's side of the shutdown on its own timeline.
 */
export const retime = (lines: ReadonlyArray<string>): string =>
  lines
    .flatMap((line) => {
      const m = traceLine.exec(line)
      if (m === null) return []
      const epoch = Number(m[3])
      return [format(epoch - origin(), m[1]!, m[2]!, epoch)]
    })
    .join("")

/** One phase reached now. */
export const mark = (phase: string): void => {
  if (enabled) write(elapsed(), phase)
}

interface Tally {
  count: number
  first: number
  last: number
  /** Time spent inside the timed calls, ms. */
  inside: number
  timed: boolean
}

const tallies = new Map<string, Tally>()

const tally = (phase: string, at: number, inside: number, timed: boolean): void => {
  const t = tallies.get(phase)
  if (t === undefined) tallies.set(phase, { count: 1, first: at, last: at, inside, timed })
  else {
    t.count++
    t.last = at
    t.inside += inside
  }
}

/** One more occurrence of a per-service phase (printed by `summary`). */
export const count = (phase: string): void => {
  if (enabled) tally(phase, elapsed(), 0, false)
}

/** Runs `f`, counting it as one occurrence of `phase` and adding the time spent inside it. */
export const timed = <A>(phase: string, f: () => A): A => {
  if (!enabled) return f()
  const start = performance.now()
  try {
    return f()
  } finally {
    tally(phase, elapsed(), performance.now() - start, true)
  }
}

/**
 * Prints the counted phases and forgets them: for each, a line at its first occurrence and one at its last
 * (`spawn() of a process group: 1st of 200` ... `200th of 200, 310.2 ms inside in all`), in time order.
 */
export const summary = (): void => {
  if (!enabled) return
  const lines: Array<[number, string]> = []
  for (const [phase, t] of tallies) {
    const inside = t.timed ? `, ${t.inside.toFixed(1)} ms inside in all` : ""
    if (t.count === 1) lines.push([t.first, `${phase}${inside}`])
    else lines.push([t.first, `${phase}: first of ${t.count}`], [t.last, `${phase}: last of ${t.count}${inside}`])
  }
  for (const [at, text] of lines.sort((a, b) => a[0] - b[0])) write(at, text)
  tallies.clear()
}

/** The environment for a `core` process started by this one: it counts from this command's start. */
export const childEnv = (): Record<string, string> =>
  enabled ? { CORE_TRACE: "1", CORE_TRACE_ORIGIN: String(origin()) } : {}

/** The size of `file` (0 when it cannot be read): where another process's trace lines will start. */
export const fileSize = (file: string): number => {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

/**
 * Prints the trace lines written to `file` (the background supervisor's output) from byte `from` on, on this
 * command's timeline. Nothing when tracing is off or the file cannot be read.
 */
export const echoFrom = (file: string, from: number): void => {
  if (!enabled) return
  try {
    const text = fs.readFileSync(file).subarray(from).toString("utf8")
    process.stderr.write(retime(text.split("\n")))
  } catch {
    // no output to show
  }
}
