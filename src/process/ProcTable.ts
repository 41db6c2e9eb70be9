/**
 * The processes of this machine as `/proc` describes them (Linux): the identity rules of the guardian and of
 * `cleanLeftovers`, and the check that a process group is gone.
 *
 * Reads are synchronous, the one exception to the platform `FileSystem` in the process code: they are tiny,
 * and they also serve paths where no Effect code can run any more (the second Ctrl-C, a release that must
 * not wait for the scheduler).
 */
import * as fs from "node:fs"

/** A process as `/proc/<pid>/stat` describes it. */
export interface ProcStat {
  readonly pid: number
  /** One-letter state (`R`, `S`, `Z`, ...). */
  readonly state: string
  readonly pgid: number
  readonly sid: number
  /** Clock ticks since boot (field 22): tells a reused pid from the process seen before. */
  readonly startTime: number
  /** CPU time in user and kernel mode, in clock ticks (fields 14 and 15). */
  readonly ticks: number
  /** Resident set size in pages (field 24). */
  readonly rssPages: number
}

/**
 * Parses one `/proc/<pid>/stat` line, or undefined when it is not one. The command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so the fields are counted from the last `)`.
 */
export const parseProcStat = (line: string): ProcStat | undefined => {
  const open = line.indexOf("(")
  const close = line.lastIndexOf(")")
  if (open < 0 || close < open) return undefined
  const pid = Number(line.slice(0, open).trim())
  const rest = line
    .slice(close + 1)
    .trim()
    .split(/\s+/)
  // rest[0] is field 3 (state); field n is rest[n - 3]
  const state = rest[0]
  const stat = {
    pid,
    state: state ?? "",
    pgid: Number(rest[2]),
    sid: Number(rest[3]),
    startTime: Number(rest[19]),
    ticks: Number(rest[11]) + Number(rest[12]),
    rssPages: Number(rest[21])
  }
  const numbers = [stat.pid, stat.pgid, stat.sid, stat.startTime, stat.ticks, stat.rssPages]
  return state?.length === 1 && numbers.every(Number.isSafeInteger) ? stat : undefined
}

/** The stat of a live (or zombie) process, or undefined when there is none (or no `/proc`). */
export const readProcStat = (pid: number): ProcStat | undefined => {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return undefined
  }
}

/** Start time of a process in clock ticks since boot, or undefined when it is gone. */
export const readStartTime = (pid: number): number | undefined => readProcStat(pid)?.startTime

/** Every process on the machine, from `/proc`. */
export const processTable = (): ReadonlyArray<ProcStat> => {
  let entries: Array<string>
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    return []
  }
  const out: Array<ProcStat> = []
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = readProcStat(Number(entry))
    if (stat) out.push(stat)
  }
  return out
}

/** The live (non-zombie) processes of process group `pgid`. */
export const groupProcesses = (pgid: number): ReadonlyArray<ProcStat> =>
  processTable().filter((p) => p.pgid === pgid && p.state !== "Z" && p.state !== "X")

/** How much a process and its descendants have used the CPU, from `/proc` (see `readActivity`). */
export interface Activity {
  /** Time on a CPU plus time runnable and waiting for one, in ns, summed over every thread. */
  readonly busyNs: number
  /** The thread ids seen, in the order read: another set of threads or children is another activity. */
  readonly members: string
  /** The process's start time in clock ticks since boot (see `ProcStat.startTime`): tells a reused pid. */
  readonly startTime: number
  /**
   * Whether every thread was asleep (`S`: waiting for an event) at the reading. A runnable thread waiting for
   * a CPU is not counted in `busyNs` until it gets one, so a reading with one (`R`), or one in disk wait (`D`),
   * stopped (`T`) or just ended (`Z`), is not a quiet one.
   */
  readonly asleep: boolean
}

/** More threads and descendants than a service's start is judged by: such a tree is not read. */
const MAX_ACTIVITY_TASKS = 256

/**
 * What process `pid` and its descendants have run or waited to run so far: the first two numbers of each
 * thread's `/proc/<pid>/task/<tid>/schedstat`, children found through each thread's `children` file (a child
 * that was handed to another parent is not seen), and each thread's state. Undefined when the process is gone
 * or a zombie, when `/proc` cannot tell (no schedstat or no `children` file; a kernel that keeps no scheduler
 * statistics shows no run of the process at all), or when the tree holds more than `MAX_ACTIVITY_TASKS`
 * threads: whoever asks must then not call it idle.
 */
export const readActivity = (pid: number): Activity | undefined => {
  let busyNs = 0
  let asleep = true
  let startTime = Number.NaN
  const members: Array<string> = []
  const visit = (process: number): boolean => {
    for (const tid of fs.readdirSync(`/proc/${process}/task`)) {
      if (members.length >= MAX_ACTIVITY_TASKS) return false
      const task = `/proc/${process}/task/${tid}`
      const stat = readSmall(`${task}/stat`)
      const state = stat.charAt(stat.lastIndexOf(")") + 2)
      if (members.length === 0) startTime = parseProcStat(stat)?.startTime ?? Number.NaN
      const [run, wait, runs] = readSmall(`${task}/schedstat`).split(" ")
      const ns = Number(run) + Number(wait)
      if (!Number.isFinite(ns)) return false
      if (members.length === 0 && (state === "Z" || state === "X" || !(Number(runs) > 0))) return false
      if (state !== "S") asleep = false
      busyNs += ns
      members.push(tid)
      for (const child of readSmall(`${task}/children`).split(" "))
        if (child.trim().length > 0 && !visit(Number(child))) return false
    }
    return true
  }
  try {
    return visit(pid) && Number.isSafeInteger(startTime)
      ? { busyNs, members: members.join(" "), asleep, startTime }
      : undefined
  } catch {
    return undefined
  }
}

/** One buffer for `readSmall`. */
const smallBuffer = Buffer.alloc(4096)

/**
 * A small `/proc` file read whole with one `read` (`readFileSync` asks its size first, which `/proc` does not
 * tell, then reads until an empty read). Throws when it cannot be opened or read, or fills the buffer (a
 * `children` file of hundreds of children: more than `readActivity` reads anyway).
 */
const readSmall = (path: string): string => {
  const fd = fs.openSync(path, "r")
  try {
    const read = fs.readSync(fd, smallBuffer, 0, smallBuffer.length, null)
    if (read === smallBuffer.length) throw new Error(`${path}: longer than ${smallBuffer.length} bytes`)
    return smallBuffer.toString("latin1", 0, read)
  } finally {
    fs.closeSync(fd)
  }
}
