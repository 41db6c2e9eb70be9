/**
 * Who a process is: its pid and its start time (`/proc/<pid>/stat`, read by `process/ProcTable.ts`), so that a
 * pid reused by another process is never taken for the one that was recorded. The records of `.core-stack/`
 * and the guardian (supervisor/Guardian.ts, the same rules in `sh`) identify processes this way.
 */
import { type ProcStat, processTable, readProcStat } from "../process/ProcTable.js"

/** A process group the supervisor spawned, as recorded. */
export interface GroupRecord {
  readonly service: string
  /** Leader pid = process group id. */
  readonly pid: number
  /** The leader's start time, or null if it was already gone when recorded. */
  readonly startTime: number | null
  /** No process of the group started before this (the leader's start, else the supervisor's). */
  readonly notBefore: number
}

/**
 * Which processes of `table` belong to the recorded group, by identity:
 * - the leader is alive: it is ours only if its start time is the recorded one; then the whole group is;
 * - the leader is gone: members of the group (same pgid) that started no earlier than `notBefore`.
 * Zombies are left out: they are already dead. A record of pid 0 or 1 names nothing (a spawned group never
 * has one).
 */
export const groupMembers = (record: GroupRecord, table: ReadonlyArray<ProcStat>): ReadonlyArray<ProcStat> => {
  // group 0 is the caller's own in kill(), 1 is init's (kill(-1) signals every process): never a service's
  if (record.pid <= 1) return []
  const leader = table.find((p) => p.pid === record.pid)
  if (leader && leader.startTime !== record.startTime) return []
  return table.filter((p) => p.pgid === record.pid && p.startTime >= record.notBefore && p.state !== "Z")
}

/** Sends `signal` to `pid` (negative: a group); false when it is gone or not ours to signal. */
export const trySignal = (pid: number, signal: NodeJS.Signals): boolean => {
  try {
    process.kill(pid, signal)
    return true
  } catch {
    return false
  }
}

/**
 * SIGKILLs what is left of a recorded group, if it is still ours. Returns the pids that were signalled.
 * Repeats while members remain (a member may fork while it is being killed).
 */
export const killGroup = (record: GroupRecord): ReadonlyArray<number> => {
  const killed = new Set<number>()
  for (let round = 0; round < 5; round++) {
    const members = groupMembers(record, processTable())
    if (members.length === 0) break
    if (!trySignal(-record.pid, "SIGKILL")) for (const m of members) trySignal(m.pid, "SIGKILL")
    for (const m of members) killed.add(m.pid)
  }
  return [...killed]
}

/** A process as a record names it: its pid and, where known, its start time. */
export interface ProcessIdentity {
  readonly pid: number
  /** Clock ticks since boot, or null where unknown (then only the pid is checked). */
  readonly startTime: number | null
}

/**
 * Is the process that this identity names still running: the same pid with the same start time, and not a
 * zombie? Without `/proc`, a process that exists (even one we may not signal) counts as running.
 */
export const isRunning = (identity: ProcessIdentity): boolean => {
  const stat = readProcStat(identity.pid)
  if (stat) return stat.state !== "Z" && (identity.startTime === null || stat.startTime === identity.startTime)
  // a start time was read from /proc: no stat now means the process is gone
  if (identity.startTime !== null) return false
  try {
    process.kill(identity.pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}
