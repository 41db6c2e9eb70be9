/**
 * How `up -d` reads a starting background supervisor: from its status rows, whether the stack is ready or has
 * failed (`progressOf`); from its output, which progress lines to show and what failure it reported. Plain
 * code (no Effect): the full CLI (`StackUpDetached`) and the launcher's quick wait (`QuickUp`) share it.
 */
import * as fs from "node:fs"
import { settledVerdict } from "../stack/DependencyCondition.js"
import { type Activity, readActivity } from "../process/ProcTable.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { isRunning } from "../state/ProcessIdentity.js"
import * as Trace from "../trace/Trace.js"
import { sizeOf } from "./SupervisorSpawn.js"

/** Where a polled stack stands. */
export type Progress =
  /** `settling`: only services without a readiness check that have neither stayed up nor settled are left. */
  | { readonly _tag: "Starting"; readonly settling?: true }
  | { readonly _tag: "Ready"; readonly services: ReadonlyArray<string> }
  /** `ending`: the supervisor ends by itself (a failed start); a service that keeps restarting does not end it. */
  | { readonly _tag: "Failed"; readonly service: string; readonly reason: string; readonly ending?: false }

/**
 * How long a service without a readiness check must have been running before `up -d` calls it up, unless it
 * has settled sooner (`SETTLED_IDLE_MS`): a process that exits at once (a bad flag, a missing file) is then seen
 * failing or restarting instead.
 */
export const STAYED_UP_MS = 500

/**
 * A service without a readiness check has also settled once its processes have been quiet this long: asleep
 * (waiting for an event) at two readings this far apart, and between them neither run nor waited for a CPU
 * (`readActivity`) for more than `IDLE_SHARE` of the span. A process that fails at its start is busy until it
 * exits, and one starved of the CPU is runnable, so neither settles; one that waits for work (a server, a
 * `sleep`) is quiet within a few ms of its start, and waiting 500 ms for it only cost time (issue 14).
 */
export const SETTLED_IDLE_MS = 50

/** The share of the quiet span a settled process may have run or waited to run (a timer's wake-up, say). */
const IDLE_SHARE = 0.02

/** Whether process `pid` runs (not a zombie), and is the same one when its start time is given (`isRunning`). */
const alive = (pid: number, startTime?: number): boolean => isRunning({ pid, startTime: startTime ?? null })

/**
 * Whether a service's process has settled: asked at each poll, it reads the process's activity (`read`,
 * `readActivity` by default) and answers true once two readings at least `SETTLED_IDLE_MS` apart found it quiet
 * (see there); a span that is not due yet is not read again. A process that cannot be read (gone, a zombie, no
 * `/proc`) has not settled. Once settled, a process is only checked to be alive and the same. Processes are told
 * apart by pid and spawn time (`startedAt`) and by their start time in `/proc`. `clock` times the spans; `wall`
 * is the clock of `startedAt`.
 */
export const idleWatch = (
  read: (pid: number) => Activity | undefined = readActivity,
  clock: () => number = () => performance.now(),
  isAlive: (pid: number, startTime?: number) => boolean = alive,
  wall: () => number = Date.now
) => {
  const quietSince = new Map<
    string,
    { readonly at: number; readonly activity: Activity; readonly startedAt: number | null }
  >()
  const settled = new Map<string, number>()
  const judge = (process: { readonly pid: number; readonly startedAt: number | null }): boolean => {
    const key = `${process.pid}@${process.startedAt}`
    const settledStart = settled.get(key)
    if (settledStart !== undefined) {
      if (isAlive(process.pid, settledStart)) return true
      settled.delete(key)
      return false
    }
    const now = clock()
    const since = quietSince.get(key)
    // a quiet span that cannot be judged yet goes on unread
    if (since !== undefined && now - since.at < SETTLED_IDLE_MS) return false
    const activity = Trace.timed("activity of a process read", () => read(process.pid))
    if (activity === undefined || !activity.asleep) {
      quietSince.delete(key)
      return false
    }
    const busyMs = since === undefined ? Number.NaN : (activity.busyNs - since.activity.busyNs) / 1e6
    const same = since?.activity.members === activity.members && since.activity.startTime === activity.startTime
    // NaN (no earlier reading) fails both comparisons: a quiet span starts here
    if (!same || !(busyMs >= 0 && busyMs <= IDLE_SHARE * (now - since!.at))) {
      quietSince.set(key, { at: now, activity, startedAt: process.startedAt })
      return false
    }
    quietSince.delete(key)
    settled.set(key, activity.startTime)
    return true
  }
  /**
   * How long until the first quiet span can be judged: `SETTLED_IDLE_MS` when none is waiting, and never less
   * than `MIN_SETTLE_GAP_MS`. The spans of one poll begin one after the other as its readings go, and a poll that
   * comes when the first is due finds the next ones due as it reads them: the wait is `SETTLED_IDLE_MS` from the
   * first reading, not from the last. The spans of services no longer young (see `progressOf`), which are not
   * asked again, are dropped.
   */
  const waitMs = (): number => {
    const now = clock()
    const wallNow = wall()
    let due = Number.POSITIVE_INFINITY
    for (const [key, span] of quietSince) {
      if (span.startedAt !== null && wallNow - span.startedAt >= STAYED_UP_MS) quietSince.delete(key)
      else due = Math.min(due, span.at + SETTLED_IDLE_MS)
    }
    return Number.isFinite(due) ? Math.max(MIN_SETTLE_GAP_MS, due - now) : SETTLED_IDLE_MS
  }
  return Object.assign(judge, { waitMs })
}

/** An `idleWatch`. */
export type IdleWatch = ReturnType<typeof idleWatch>

/** The shortest wait between two polls while settling (see `waitMs`): a poll reads processes, which costs CPU. */
const MIN_SETTLE_GAP_MS = 10

/**
 * When `up -d` polls next (see `whenChanged`): when only settling is left, once the first quiet span can be
 * judged (`waitMs`; `SETTLED_IDLE_MS` without a watch), a few ms later; a line of the supervisor's output does
 * not bring it sooner.
 */
export const pollGapFor = (progress: Progress, idle?: IdleWatch): { readonly least: number; readonly most: number } => {
  if (progress._tag !== "Starting" || progress.settling !== true) return POLL_GAP_MS
  const wait = (idle?.waitMs() ?? SETTLED_IDLE_MS) + SETTLE_SLACK_MS
  return { least: wait, most: wait }
}

/** See `pollGapFor`: a poll that comes this much after a span is due finds it so whatever the clocks' rounding. */
const SETTLE_SLACK_MS = 2

/**
 * Decides from the status rows whether `up` is done: every named service (all enabled ones when none is
 * named) and every service that was launched for them has settled (`settledVerdict`), and those without a
 * readiness check have been running for `STAYED_UP_MS` (at `now`) or are idle (`idle`, an `idleWatch`; it is
 * asked only once everything else is done). A service that has restarted has not stayed up: that is a failure.
 */
export const progressOf = (
  rows: ReadonlyArray<ServiceStatus>,
  selected: ReadonlyArray<string>,
  now = Date.now(),
  idle: (process: { readonly pid: number; readonly startedAt: number | null }) => boolean = () => false
): Progress => {
  const wanted =
    selected.length > 0 ? rows.filter((r) => selected.includes(r.name)) : rows.filter((r) => r.state !== "disabled")
  const involved = rows.filter((r) => wanted.includes(r) || (r.state !== "pending" && r.state !== "disabled"))
  const bad = involved.find((r) => typeof settledVerdict(r) === "object")
  if (bad) return { _tag: "Failed", service: bad.name, reason: bad.reason ?? `it is ${bad.state}` }
  const restarted = involved.find((r) => r.restarts > 0)
  if (restarted) {
    const times = `${restarted.restarts} time${restarted.restarts === 1 ? "" : "s"}`
    const last = restarted.reason === null ? "" : `; ${restarted.reason}`
    return {
      _tag: "Failed",
      service: restarted.name,
      reason: `it has not stayed up: restarted ${times}${last}`,
      ending: false
    }
  }
  if (wanted.length === 0 || !involved.every((r) => settledVerdict(r) === "met")) return { _tag: "Starting" }
  const young = involved.filter(
    (r) => r.state === "running" && r.startedAt !== null && now - r.startedAt < STAYED_UP_MS
  )
  // every young one is asked at each poll (a span not due yet is not read), so that each has its earlier reading
  const unsettled = young.filter((r) => r.pid === null || !idle({ pid: r.pid, startedAt: r.startedAt }))
  return unsettled.length === 0
    ? { _tag: "Ready", services: involved.map((r) => r.name) }
    : { _tag: "Starting", settling: true }
}

/**
 * The rows of the previous poll judged again, when only settling was left then: what changed since is the
 * services' activity, read now. Given only while the rows may stand for the supervisor's (`mayJudgeAgain`) and
 * every service with a process still has it alive, and only when it is ready or still settling; otherwise
 * undefined, and the supervisor is asked.
 */
export const progressAgain = (
  rows: ReadonlyArray<ServiceStatus>,
  selected: ReadonlyArray<string>,
  idle: (process: { readonly pid: number; readonly startedAt: number | null }) => boolean
): Progress | undefined => {
  const living = (r: ServiceStatus) => r.pid === null || !(r.state === "running" || r.state === "ready") || alive(r.pid)
  if (!rows.every(living)) return undefined
  const again = progressOf(rows, selected, Date.now(), idle)
  return again._tag === "Ready" || (again._tag === "Starting" && again.settling === true) ? again : undefined
}

/** How long the rows of the last poll of the supervisor may be judged again (`progressAgain`), in ms. */
export const REJUDGED_FOR_MS = STAYED_UP_MS

/**
 * Whether the rows of the last poll of the supervisor may still stand for its own (`progressAgain`): they are
 * less than `REJUDGED_FOR_MS` old (`since`, on `performance.now()`), the supervisor lives, and it has noted
 * nothing since (`logFrom`: its output's size at that poll). The supervisor notes every transition of a service
 * (`NAME | [core] ...`), a failure and a stop there; what the services print, and its own "ready" line, do not
 * count.
 */
export const mayJudgeAgain = (since: number, supervisorPid: number | undefined, log: string, logFrom: number) =>
  performance.now() - since < REJUDGED_FOR_MS &&
  supervisorPid !== undefined &&
  alive(supervisorPid) &&
  !supervisorNoted(log, logFrom)

/** A line of the supervisor's own about a service (`NAME | [core] ...`): a transition. */
const transitionLine = /^\S+\s+\| \[core\] /

/** Whether `file` holds, from byte `from` on, a line of the supervisor's own (see `mayJudgeAgain`). */
const supervisorNoted = (file: string, from: number): boolean =>
  readFrom(file, from)
    .toString("utf8")
    .split("\n")
    .some(
      (line) =>
        line.length > 0 &&
        !traceLine.test(line) &&
        !readyLine.test(line) &&
        (!serviceLine.test(line) || transitionLine.test(line))
    )

/**
 * How `up -d` judges its polls, in both of its waits (the launcher's `QuickUp`, the CLI's `StackUpDetached`):
 * the rows of each poll of the supervisor with `progressOf` and one `idleWatch`, and, while only settling is
 * left, the rows of the last such poll judged again instead of asking it (`progressAgain`, while they may
 * stand: `mayJudgeAgain`). `log` is the supervisor's output, `supervisorPid` its pid.
 */
export const pollJudge = (selected: ReadonlyArray<string>, log: string, supervisorPid: number | undefined) => {
  const idle = idleWatch()
  // the last poll of the supervisor that left only settling: when (`performance.now()`) and its output's size
  let settlingSince: { readonly at: number; readonly logSize: number } | undefined
  return {
    /** The rows of the last poll judged again, or undefined: the supervisor is to be asked. */
    again: (rows: ReadonlyArray<ServiceStatus>): Progress | undefined =>
      settlingSince !== undefined && mayJudgeAgain(settlingSince.at, supervisorPid, log, settlingSince.logSize)
        ? progressAgain(rows, selected, idle)
        : undefined,
    /** The rows the supervisor just gave, asked when its output was `logSize` bytes. */
    judge: (rows: ReadonlyArray<ServiceStatus>, logSize: number): Progress => {
      const progress = progressOf(rows, selected, Date.now(), idle)
      settlingSince =
        progress._tag === "Starting" && progress.settling === true ? { at: performance.now(), logSize } : undefined
      return progress
    },
    /** When to poll after `progress` (`whenChanged`'s gap). */
    gap: (progress: Progress) => pollGapFor(progress, idle)
  }
}

/** The supervisor's own report of a failed start (`core: NAME failed to start: REASON`), the last one. */
export const failureIn = (
  lines: ReadonlyArray<string>
): { readonly service: string; readonly reason: string } | undefined => {
  for (const line of [...lines].reverse()) {
    const m = /^core: (\S+) failed to start: (.*)$/.exec(line)
    if (m) return { service: m[1]!, reason: m[2]! }
  }
  return undefined
}

/**
 * Whether the supervisor has said that its `up` is done (`core: N service(s) ready in ...`): from then on a
 * service that fails does not end it (it stays, with the service failed), so `up -d` need not wait for its exit.
 */
export const saidReady = (lines: ReadonlyArray<string>): boolean => lines.some((line) => readyLine.test(line))

/** The supervisor's own "ready" line, the foreground's (`...; Ctrl-C to stop`). */
const readyLine = /^core: \d+ service\(s\) ready in /

/** The last `n` non-empty lines written to `file` from byte `from` on. */
export const lastLines = (file: string, n: number, from = 0): ReadonlyArray<string> =>
  readFrom(file, from)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .slice(-n)

/** The bytes of `file` from `offset` to its end (empty when it cannot be read). */
const readFrom = (file: string, offset: number): Buffer => {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, "r")
    const size = fs.fstatSync(fd).size
    const buffer = Buffer.alloc(Math.max(0, size - offset))
    const read = fs.readSync(fd, buffer, 0, buffer.length, offset)
    return buffer.subarray(0, read)
  } catch {
    return Buffer.alloc(0)
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/** Lines of the supervisor's output that are its own (not `name | line` of a service). */
const serviceLine = /^\S+\s+\| /

/** `CORE_TRACE` lines: shown at the end, on this command's timeline (`Trace.echoFrom`). */
const traceLine = /^core trace /

/**
 * Which new lines of the supervisor's output to show while waiting: its own progress lines, until the first
 * service line (from then on the stack starts, and its outcome is reported at the end). Each call returns
 * the complete lines written since the previous one.
 */
export const progressForwarder = (file: string, from: number) => {
  let offset = from
  let servicesStarted = false
  return (): ReadonlyArray<string> => {
    if (servicesStarted) return []
    const chunk = readFrom(file, offset)
    const end = chunk.lastIndexOf(10)
    if (end < 0) return []
    offset += end + 1
    const out: Array<string> = []
    for (const line of chunk.subarray(0, end).toString("utf8").split("\n")) {
      // its "ready ...; Ctrl-C to stop" is the foreground's line, not for `up -d` (which says its own); it can come
      // before the services' first lines, which the supervisor writes a turn later
      if (serviceLine.test(line) || readyLine.test(line)) {
        servicesStarted = true
        break
      }
      if (line.trim().length > 0 && !traceLine.test(line)) out.push(line)
    }
    return out
  }
}

/** Least and most time between two polls of a starting supervisor. */
const POLL_GAP_MS = { least: 20, most: 100 } as const

/**
 * Calls `done` once it is time for the next poll: once `file` (the supervisor's output, where it notes every
 * service's transitions) has grown past `seen` bytes (its size before the previous poll), but at least
 * `POLL_GAP_MS.least` and at most `POLL_GAP_MS.most` from now. A stack is seen ready within a few ms of its last
 * transition, not up to a whole polling period later, and a busy supervisor is not polled more often than every
 * 20 ms. `gap` replaces those bounds (`pollGapFor`). Returns a function that cancels the wait.
 */
export const whenChanged = (
  file: string,
  seen: number,
  done: () => void,
  gap: { readonly least: number; readonly most: number } = POLL_GAP_MS
): (() => void) => {
  let watcher: fs.FSWatcher | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let over = false
  const stop = () => {
    over = true
    clearTimeout(timer)
    watcher?.close()
  }
  const fire = () => {
    if (over) return
    stop()
    done()
  }
  timer = setTimeout(() => {
    if (over) return
    // a fixed gap (settling): the output does not bring the poll sooner
    if (gap.most <= gap.least) return fire()
    timer = setTimeout(fire, gap.most - gap.least)
    try {
      watcher = fs.watch(file, { persistent: false }, fire)
    } catch {
      // cannot watch: the timer polls
    }
    // written during the previous poll, or before the watch began
    if (sizeOf(file) !== seen) fire()
  }, gap.least)
  return stop
}
