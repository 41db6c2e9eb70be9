/**
 * The resource use of process groups between two readings of `/proc/<pid>/stat` (parsed by `ProcTable`): the
 * arithmetic, pure, so that `ResourceSampler` only reads files and keeps history.
 */
import type { ProcStat } from "../process/ProcTable.js"

/** One reading of the processes of the groups being watched. */
export interface Reading {
  /** Monotonic milliseconds of the reading. */
  readonly at: number
  readonly processes: ReadonlyArray<ProcStat>
}

/** The use of one process group between two readings. */
export interface GroupUsage {
  /** CPU time over the interval as a percentage of one core (a busy two-thread process shows 200). Null on the first reading. */
  readonly cpu: number | null
  /** Resident memory of every live member, in bytes (shared pages count in each member, as in `ps`). */
  readonly rss: number
  /** Live members of the group (zombies excluded). */
  readonly processes: number
}

const key = (p: ProcStat) => `${p.pid}:${p.startTime}`

/**
 * The use of each watched group between `previous` (if any) and `current`. A member seen in both readings
 * counts the ticks it spent in between; one that appeared since counts all of its ticks (it started within the
 * interval); one that is gone counts nothing more: a process that lives and dies between two readings is not
 * seen, as with `top`. `clockTicks` is the kernel's USER_HZ (100 on Linux), `pageSize` in bytes.
 */
export const groupUsage = (
  previous: Reading | undefined,
  current: Reading,
  groups: Iterable<number>,
  units: { readonly clockTicks: number; readonly pageSize: number }
): Map<number, GroupUsage> => {
  const before = new Map<string, number>()
  for (const p of previous?.processes ?? []) before.set(key(p), p.ticks)
  const seconds = previous === undefined ? 0 : (current.at - previous.at) / 1000
  const result = new Map<number, GroupUsage>()
  const totals = new Map<number, { ticks: number; rss: number; processes: number }>()
  for (const pgid of groups) totals.set(pgid, { ticks: 0, rss: 0, processes: 0 })
  for (const p of current.processes) {
    const total = totals.get(p.pgid)
    if (total === undefined || p.state === "Z") continue
    total.ticks += Math.max(0, p.ticks - (before.get(key(p)) ?? 0))
    total.rss += p.rssPages * units.pageSize
    total.processes++
  }
  for (const [pgid, total] of totals) {
    const cpu = seconds > 0 ? (total.ticks / units.clockTicks / seconds) * 100 : null
    result.set(pgid, { cpu, rss: total.rss, processes: total.processes })
  }
  return result
}
