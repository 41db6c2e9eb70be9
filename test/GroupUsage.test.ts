import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { idleWatch, SETTLED_IDLE_MS } from "../src/app/DetachedProgress.js"
import { type ProcStat, parseProcStat, readActivity, readProcStat } from "../src/process/ProcTable.js"
import { groupUsage } from "../src/supervisor/GroupUsage.js"
import { formatBytes, formatCpu } from "../src/supervisor/StatusFormat.js"
import { eventually } from "./support/Processes.js"

/** A stat line as the kernel writes it: 52 fields, the ones we read set from `o`. */
const statLine = (o: {
  pid: number
  comm: string
  state?: string
  pgid: number
  utime: number
  stime: number
  start: number
  rss: number
}) => {
  const fields = Array.from({ length: 50 }, () => "0")
  fields[0] = o.state ?? "S"
  fields[1] = "1" // ppid
  fields[2] = String(o.pgid)
  fields[11] = String(o.utime)
  fields[12] = String(o.stime)
  fields[19] = String(o.start)
  fields[20] = "123456789" // vsize
  fields[21] = String(o.rss)
  return `${o.pid} (${o.comm}) ${fields.join(" ")}\n`
}

describe("parseProcStat", () => {
  it("reads pid, state, group, CPU ticks, start time and RSS pages", () => {
    expect(
      parseProcStat(statLine({ pid: 42, comm: "nats-server", pgid: 40, utime: 7, stime: 3, start: 999, rss: 250 }))
    ).toEqual({
      pid: 42,
      state: "S",
      pgid: 40,
      sid: 0,
      ticks: 10,
      startTime: 999,
      rssPages: 250
    })
  })

  it("counts fields after the last parenthesis: a command name may hold spaces and parentheses", () => {
    const stat = parseProcStat(
      statLine({ pid: 7, comm: "a) (b c) Z 1", pgid: 7, utime: 1, stime: 2, start: 5, rss: 9 })
    )
    expect(stat).toMatchObject({ pid: 7, state: "S", pgid: 7, ticks: 3, rssPages: 9 })
  })

  it("reads a real line of this process", async () => {
    const { readFileSync } = await import("node:fs")
    const stat = parseProcStat(readFileSync("/proc/self/stat", "utf8"))
    expect(stat?.pid).toBeGreaterThan(0)
    expect(stat?.rssPages).toBeGreaterThan(0)
  })

  it("refuses what is not a stat line", () => {
    expect(parseProcStat("")).toBeUndefined()
    expect(parseProcStat("garbage")).toBeUndefined()
    expect(parseProcStat("12 (x) S 1 2")).toBeUndefined()
    expect(
      parseProcStat(
        statLine({ pid: 1, comm: "x", pgid: 1, utime: 1, stime: 1, start: 1, rss: 1 }).replace(" 1 1 ", " a b ")
      )
    ).toBeUndefined()
  })
})

describe("groupUsage", () => {
  const units = { clockTicks: 100, pageSize: 4096 }
  const p = (pid: number, pgid: number, ticks: number, rssPages = 100, state = "S", startTime = pid): ProcStat => ({
    pid,
    state,
    pgid,
    sid: pgid,
    ticks,
    startTime,
    rssPages
  })

  it("first reading: RSS and member count, no CPU yet", () => {
    const usage = groupUsage(undefined, { at: 0, processes: [p(10, 10, 50), p(11, 10, 5, 20)] }, [10, 20], units)
    expect(usage.get(10)).toEqual({ cpu: null, rss: 120 * 4096, processes: 2 })
    expect(usage.get(20)).toEqual({ cpu: null, rss: 0, processes: 0 })
  })

  it("CPU over the interval: ticks since the last reading, a new member's ticks whole, zombies and other groups left out", () => {
    const before = { at: 1_000, processes: [p(10, 10, 50), p(11, 10, 5)] }
    const after = {
      at: 3_000,
      processes: [
        p(10, 10, 150), // +100 ticks
        p(12, 10, 20), // new member: 20 ticks
        p(13, 10, 999, 100, "Z"), // zombie
        p(30, 30, 5_000) // not watched
      ]
    }
    const usage = groupUsage(before, after, [10], units)
    // 120 ticks = 1.2 s of CPU over 2 s
    expect(usage.get(10)).toEqual({ cpu: 60, rss: 200 * 4096, processes: 2 })
    expect(usage.has(30)).toBe(false)
  })

  it("a reused pid (another start time) counts as a new process", () => {
    const before = { at: 0, processes: [p(10, 10, 500, 100, "S", 1)] }
    const after = { at: 1_000, processes: [p(10, 10, 30, 100, "S", 2)] }
    expect(groupUsage(before, after, [10], units).get(10)?.cpu).toBe(30)
  })
})

describe("formatting", () => {
  it("formatCpu and formatBytes", () => {
    expect([null, undefined, 0, 0.04, 3.25, 12.6, 230].map(formatCpu)).toEqual([
      "-",
      "-",
      "0.0%",
      "0.0%",
      "3.3%",
      "13%",
      "230%"
    ])
    expect([null, 512, 2048, 23.4 * 1024 ** 2, 1.25 * 1024 ** 3].map(formatBytes)).toEqual([
      "-",
      "512B",
      "2.0K",
      "23M",
      "1.3G"
    ])
  })
})

describe("readActivity and idleWatch: has a started process settled?", () => {
  const started: Array<ChildProcess> = []
  afterEach(async () => {
    await Promise.all(
      started.splice(0).map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done()
            child.once("exit", () => done())
            // the group: the busy grandchild too
            process.kill(-child.pid!, "SIGKILL")
          })
      )
    )
  })
  const spawnGroup = (script: string) => {
    const child = spawn("sh", ["-c", script], { stdio: "ignore", detached: true })
    started.push(child)
    return child.pid!
  }

  it("a process that waits (sleep) settles", async () => {
    const pid = spawnGroup("sleep 60; :")
    const idle = idleWatch()
    expect(await eventually(() => idle({ pid, startedAt: 0 }), 15_000, 10)).toBe(true)
  })

  it("a busy process never settles, nor does an idle one whose child is busy, nor a stopped one", async () => {
    const busy = spawnGroup("while :; do :; done")
    const parent = spawnGroup('sh -c "while :; do :; done"; :')
    const stopped = spawnGroup("while :; do :; done")
    process.kill(stopped, "SIGSTOP")
    const idle = idleWatch()
    const first = Date.now()
    // looked at over several times the idle span: a process that runs, waits to run or is stopped never settles
    let seen = 0
    await eventually(() => {
      const now = Date.now()
      expect(idle({ pid: busy, startedAt: 0 })).toBe(false)
      expect(idle({ pid: parent, startedAt: 0 })).toBe(false)
      expect(idle({ pid: stopped, startedAt: 0 })).toBe(false)
      seen++
      return now - first > 6 * SETTLED_IDLE_MS && seen >= 10
    })
    const tree = readActivity(parent)
    expect(tree?.members.split(" ").length).toBeGreaterThanOrEqual(2)
  })

  it("a process that is gone, or a zombie, is not read", async () => {
    // the background `sleep 0` exits and stays a zombie: `sleep 60`, which the shell became, never reaps it
    const pid = spawnGroup("sleep 0 & exec sleep 60")
    let zombie = 0
    const found = await eventually(() => {
      const child = Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim())
      if (child > 0 && readProcStat(child)?.state === "Z") zombie = child
      return zombie > 0
    })
    expect(found).toBe(true)
    expect(readActivity(zombie)).toBeUndefined()
    expect(readActivity(pid)?.members.split(" ")).toContain(String(pid))
    const child = started[0]!
    process.kill(-pid, "SIGKILL")
    await new Promise((done) => child.once("exit", done))
    expect(readActivity(pid)).toBeUndefined()
  })
})
