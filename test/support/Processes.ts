/**
 * Test helpers about processes: which members of given process groups are still alive (zombies excluded).
 */
import { readdirSync, readFileSync } from "node:fs"

interface ProcInfo {
  readonly pid: number
  readonly ppid: number
  readonly pgid: number
  readonly state: string
  readonly command: string
}

const readProc = (pid: number): ProcInfo | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const close = stat.lastIndexOf(")")
    const fields = stat.slice(close + 2).split(" ")
    return {
      pid,
      ppid: Number(fields[1]),
      pgid: Number(fields[2]),
      state: fields[0],
      command: stat.slice(stat.indexOf("(") + 1, close)
    }
  } catch {
    return undefined
  }
}

/** Every live (non-zombie) process. */
export const liveProcesses = (): ReadonlyArray<ProcInfo> =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is ProcInfo => p !== undefined && p.state !== "Z")

/** Live processes in any of the given process groups, or with any of the given pids. */
/** A process's parent: its pid and its command name (from `/proc`). */
export const parentOf = (pid: number): { readonly ppid: number; readonly name: string } => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  const parent = readFileSync(`/proc/${ppid}/stat`, "utf8")
  return { ppid, name: parent.slice(parent.indexOf("(") + 1, parent.lastIndexOf(")")) }
}

export const survivors = (ids: Iterable<number>): ReadonlyArray<ProcInfo> => {
  const set = new Set(ids)
  return liveProcesses().filter((p) => set.has(p.pgid) || set.has(p.pid))
}

/** Live processes whose command line mentions `marker` (a temp directory, say). */
export const processesMentioning = (marker: string): ReadonlyArray<{ pid: number; ppid: number; cmdline: string }> =>
  liveProcesses()
    .map((p) => {
      try {
        const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").replaceAll("\0", " ")
        return { pid: p.pid, ppid: p.ppid, cmdline }
      } catch {
        return { pid: p.pid, ppid: p.ppid, cmdline: "" }
      }
    })
    .filter((p) => p.cmdline.includes(marker) && p.pid !== process.pid)

/**
 * `processes` without the ones whose parent is among them: a shell fixture's loop forks a child for each `sleep`,
 * and until that child execs it carries the shell's command line, so on a loaded machine it can be seen as a
 * second instance of the service.
 */
export const withoutForkedCopies = <P extends { readonly pid: number; readonly ppid: number }>(
  processes: ReadonlyArray<P>
): ReadonlyArray<P> => processes.filter((p) => !processes.some((q) => q.pid === p.ppid))

/** Polls until `check` returns true or `ms` pass; returns the last result. */
export const eventually = async (check: () => boolean, ms = 15_000, every = 25): Promise<boolean> => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (check()) return true
    await new Promise((r) => setTimeout(r, every))
  }
  return check()
}

/**
 * Live processes whose environment holds `NAME=value` (read from /proc/<pid>/environ): every descendant of a
 * process started with it, whatever its command line, unless a process cleared its environment.
 */
export const processesWithEnv = (name: string, value: string): ReadonlyArray<{ pid: number; cmdline: string }> => {
  const entry = `${name}=${value}`
  return liveProcesses()
    .filter((p) => p.pid !== process.pid)
    .flatMap((p) => {
      try {
        if (!readFileSync(`/proc/${p.pid}/environ`, "utf8").split("\0").includes(entry)) return []
        return [{ pid: p.pid, cmdline: readFileSync(`/proc/${p.pid}/cmdline`, "utf8").replaceAll("\0", " ").trim() }]
      } catch {
        return []
      }
    })
}
