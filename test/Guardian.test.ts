import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { join, resolve } from "node:path"
import { type ProcStat, parseProcStat, readProcStat, readStartTime } from "../src/process/ProcTable.js"
import { ProcessRegistry } from "../src/process/ProcessRegistry.js"
import { groupMembers } from "../src/state/ProcessIdentity.js"
import { groupJournalPath, recordedGroups } from "../src/state/StateRecords.js"
import { cleanLeftovers, holdSupervisorLock } from "../src/state/SupervisorLock.js"
import { startGuardian } from "../src/supervisor/Guardian.js"
import { PidRegistry } from "../src/supervisor/PidRegistry.js"
import { eventually, liveProcesses, survivors } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const standIn = resolve(import.meta.dirname, "fixtures/control/standin-supervisor.ts")

interface StandIn {
  readonly child: ChildProcess
  readonly groups: ReadonlyArray<number>
}

/**
 * Starts the stand-in supervisor (its own process group) and waits for the pgids of its services. Whatever
 * the test does, the scope's end SIGKILLs the stand-in, its guardian and its groups if they are still there.
 */
const startStandIn = (stateDir: string, groups = 2) =>
  Effect.acquireRelease(spawnStandIn(stateDir, groups), ({ child, groups }) =>
    Effect.sync(() => {
      for (const g of guardianOf(child.pid!)) sigkill(g.pid)
      sigkill(child.pid!)
      for (const g of groups) sigkill(-g)
    })
  )

const spawnStandIn = (stateDir: string, groups: number) =>
  Effect.async<StandIn, Error>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", standIn, stateDir, String(groups)], {
      stdio: ["ignore", "pipe", "inherit"],
      detached: true
    })
    let out = ""
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString()
      const m = /ready ([\d ]+)\n/.exec(out)
      if (m) resume(Effect.succeed({ child, groups: m[1]!.trim().split(" ").map(Number) }))
    })
    child.once("exit", (code) => resume(Effect.fail(new Error(`stand-in exited with ${code}: ${out}`))))
  })

/** Waits until every group of forker.sh holds its leader and both grandchildren (3 processes per group). */
const allForked = (groups: ReadonlyArray<number>) =>
  Effect.promise(() => eventually(() => survivors(groups).length >= groups.length * 3, 10_000)).pipe(
    Effect.map(() => expect(survivors(groups).length).toBeGreaterThanOrEqual(groups.length * 3))
  )

/** The guardian started by `supervisorPid`: the child of it that runs the guardian script. */
const guardianOf = (supervisorPid: number): ReadonlyArray<ProcStat> =>
  liveProcesses()
    .filter((p) => parentOf(p.pid) === supervisorPid && cmdline(p.pid).includes("trap '' INT HUP PIPE"))
    .map((p) => readProcStat(p.pid))
    .filter((s): s is ProcStat => s !== undefined)

const cmdline = (pid: number): string => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
  } catch {
    return ""
  }
}

const parentOf = (pid: number): number | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined
  }
}

const sigkill = (pid: number) => {
  try {
    process.kill(pid, "SIGKILL")
  } catch {}
}

/** A process that is not ours: a plain `sleep` in its own group. */
const bystander = () =>
  Effect.acquireRelease(
    Effect.sync(() => spawn("sleep", ["60"], { detached: true, stdio: "ignore" })),
    (child) => Effect.sync(() => sigkill(-child.pid!))
  )

describe("parseProcStat", () => {
  it("reads pid, state, pgid, sid and start time, whatever the command name holds", () => {
    const line = "4242 (we (ird) name) S 1 4240 4239 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3"
    expect(parseProcStat(line)).toMatchObject({ pid: 4242, state: "S", pgid: 4240, sid: 4239, startTime: 987654 })
    expect(parseProcStat("garbage")).toBeUndefined()
  })

  it("groupMembers: a live leader with another start time is a reused pid, and nothing is ours", () => {
    const table: ReadonlyArray<ProcStat> = [
      { pid: 10, state: "S", pgid: 10, sid: 10, startTime: 500, ticks: 0, rssPages: 0 },
      { pid: 11, state: "S", pgid: 10, sid: 10, startTime: 510, ticks: 0, rssPages: 0 }
    ]
    expect(groupMembers({ service: "x", pid: 10, startTime: 400, notBefore: 400 }, table)).toEqual([])
    expect(groupMembers({ service: "x", pid: 10, startTime: 500, notBefore: 500 }, table).map((p) => p.pid)).toEqual([
      10, 11
    ])
    // leader gone: members that started no earlier than the leader did
    const orphans = table.filter((p) => p.pid !== 10)
    expect(groupMembers({ service: "x", pid: 10, startTime: 500, notBefore: 500 }, orphans).map((p) => p.pid)).toEqual([
      11
    ])
    expect(groupMembers({ service: "x", pid: 10, startTime: 500, notBefore: 600 }, orphans)).toEqual([])
  })
})

describe("Guardian", () => {
  it.scopedLive("kill -9 of the supervisor: every group, grandchildren included, and the guardian are gone", () =>
    Effect.gen(function* () {
      const dir = tempDir("core-guard-")
      const stateDir = join(dir, ".core-stack")
      const { child, groups } = yield* startStandIn(stateDir)
      const guardian = guardianOf(child.pid!)
      expect(guardian.length).toBe(1)
      // the guardian has its own session: in none of the service groups, nor in the supervisor's
      expect(guardian[0]!.sid).toBe(guardian[0]!.pid)
      for (const g of groups) expect(guardian[0]!.pgid).not.toBe(g)
      // the stand-in says ready once it spawned the groups: their grandchildren come a moment later
      yield* allForked(groups)
      expect(recordedGroups(stateDir).length).toBe(groups.length)

      child.kill("SIGKILL")
      const gone = yield* Effect.promise(() => eventually(() => survivors(groups).length === 0, 15_000))
      expect(survivors(groups)).toEqual([])
      expect(gone).toBe(true)
      expect(yield* Effect.promise(() => eventually(() => readProcStat(guardian[0]!.pid) === undefined, 15_000))).toBe(
        true
      )
    })
  )

  it.scopedLive("leftovers of a crash that took the guardian too are ended by the next command", () =>
    Effect.gen(function* () {
      const dir = tempDir("core-guard-")
      const stateDir = join(dir, ".core-stack")
      const { child, groups } = yield* startStandIn(stateDir)
      yield* allForked(groups)
      const guardian = guardianOf(child.pid!)
      expect(guardian.length).toBe(1)
      // while the supervisor lives, its records are not leftovers
      expect(yield* cleanLeftovers(stateDir)).toEqual([])
      const taken = yield* Effect.flip(Effect.scoped(holdSupervisorLock(stateDir)))
      expect(taken._tag).toBe("SupervisorRunning")

      sigkill(guardian[0]!.pid)
      yield* Effect.promise(() => eventually(() => readProcStat(guardian[0]!.pid) === undefined))
      child.kill("SIGKILL")
      yield* Effect.promise(() => eventually(() => readProcStat(child.pid!) === undefined))
      const before = survivors(groups)
      expect(before.length).toBeGreaterThanOrEqual(groups.length * 3)

      const leftovers = yield* cleanLeftovers(stateDir)
      expect(leftovers.map((l) => l.pid).sort()).toEqual([...groups].sort())
      expect(leftovers.flatMap((l) => l.killed).sort()).toEqual(before.map((p) => p.pid).sort())
      expect(yield* Effect.promise(() => eventually(() => survivors(groups).length === 0))).toBe(true)
      expect(fs.readdirSync(join(stateDir, "pids"))).toEqual([])
      expect(fs.existsSync(join(stateDir, "supervisor.pid"))).toBe(false)
      // and the directory can be taken over
      yield* Effect.scoped(holdSupervisorLock(stateDir))
    })
  )

  it.scopedLive("a reused pid is never signalled: a recorded start time that differs spares the process", () =>
    Effect.gen(function* () {
      const other = yield* bystander()
      const pid = other.pid!
      yield* Effect.promise(() => eventually(() => readStartTime(pid) !== undefined))
      const start = readStartTime(pid)!

      // the guardian, ending with a record whose start time is not the process's
      const scope = yield* Scope.make()
      const guardian = yield* startGuardian.pipe(Scope.extend(scope))
      guardian.watch({ service: "x", pid, startTime: start + 1, notBefore: start + 1 })
      yield* Scope.close(scope, Exit.void)
      expect(readProcStat(guardian.pid)).toBeUndefined()
      expect(survivors([pid]).length).toBe(1)

      // cleanLeftovers, with a record of a dead supervisor
      const stateDir = join(tempDir("core-guard-"), ".core-stack")
      fs.mkdirSync(join(stateDir, "pids"), { recursive: true })
      const record = { service: "x", pid, startTime: start + 1, notBefore: start + 1, supervisorPid: 999_999_999 }
      const line = `+ ${JSON.stringify({ ...record, supervisorStart: 1 })}\n`
      fs.writeFileSync(groupJournalPath(stateDir, 999_999_999, 1), line)
      fs.writeFileSync(join(stateDir, "supervisor.pid"), JSON.stringify({ pid: 999_999_999, startTime: 1, dir: "x" }))
      const leftovers = yield* cleanLeftovers(stateDir)
      expect(leftovers).toEqual([{ service: "x", pid, killed: [] }])
      expect(survivors([pid]).length).toBe(1)
      expect(fs.readdirSync(join(stateDir, "pids"))).toEqual([])

      // the same record with the right start time: the group is ended
      const scope2 = yield* Scope.make()
      const guardian2 = yield* startGuardian.pipe(Scope.extend(scope2))
      guardian2.watch({ service: "x", pid, startTime: start, notBefore: start })
      yield* Scope.close(scope2, Exit.void)
      expect(yield* Effect.promise(() => eventually(() => survivors([pid]).length === 0))).toBe(true)
    })
  )

  it.live("a group forgotten by the supervisor is not killed when the guardian ends", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const other = yield* bystander().pipe(Scope.extend(scope))
      const pid = other.pid!
      yield* Effect.promise(() => eventually(() => readStartTime(pid) !== undefined))
      const start = readStartTime(pid)!
      const inner = yield* Scope.make()
      const guardian = yield* startGuardian.pipe(Scope.extend(inner))
      guardian.watch({ service: "x", pid, startTime: start, notBefore: start })
      yield* guardian.forget(pid)
      yield* Scope.close(inner, Exit.void)
      expect(survivors([pid]).length).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => eventually(() => survivors([pid]).length === 0))).toBe(true)
    })
  )

  it.live("after many groups forgotten (its list rebuilt), the guardian ends exactly the groups still watched", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      // 100 groups, 90 of them forgotten: the list is rebuilt once it holds more than twice the live ones and 64
      const children = yield* Effect.forEach(Array.from({ length: 100 }), () => bystander().pipe(Scope.extend(scope)))
      const pids = children.map((c) => c.pid!)
      yield* Effect.promise(() => eventually(() => pids.every((pid) => readStartTime(pid) !== undefined)))
      const inner = yield* Scope.make()
      const guardian = yield* startGuardian.pipe(Scope.extend(inner))
      for (const pid of pids) {
        const start = readStartTime(pid)!
        guardian.watch({ service: "x", pid, startTime: start, notBefore: start })
      }
      const [forgotten, watched] = [pids.slice(0, 90), pids.slice(90)]
      for (const pid of forgotten) yield* guardian.forget(pid)
      yield* Scope.close(inner, Exit.void)
      expect(yield* Effect.promise(() => eventually(() => survivors(watched).length === 0))).toBe(true)
      expect(survivors(forgotten).length).toBe(90)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => eventually(() => survivors(pids).length === 0))).toBe(true)
    })
  )

  it.live(
    "a whole stop (unregisterAfter) forgets its groups together, soon, and no other group late nor a pid used again",
    () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const children = yield* Effect.forEach([1, 2, 3], () => bystander().pipe(Scope.extend(scope)))
        const [a, b, c] = children.map((child) => child.pid!) as [number, number, number]
        yield* Effect.promise(() => eventually(() => [a, b, c].every((pid) => readStartTime(pid) !== undefined)))
        const stateDir = join(tempDir(), ".core-stack")
        const inner = yield* Scope.make()
        const registry = yield* Layer.buildWithScope(PidRegistry.layer(stateDir), inner).pipe(
          Effect.map((context) => Context.get(context, ProcessRegistry))
        )
        for (const [name, pid] of [
          ["a", a],
          ["b", b],
          ["c", c]
        ] as const)
          yield* registry.register(name, pid)
        const recorded = (pid: number) => recordedGroups(stateDir).some((record) => record.pid === pid)
        yield* registry.unregisterAfter!(
          [a, b],
          Effect.gen(function* () {
            yield* registry.unregister("a", a)
            yield* registry.unregister("b", b)
            // b's pid taken by a new group of the stack while the stop goes on (a reused pid)
            yield* registry.register("b again", b)
            // only noted so far: the records are there, the guardian still watches both
            expect([recorded(a), recorded(b)]).toEqual([true, true])
            // a group that is not the stop's (an exec probe, say) is forgotten at once
            yield* registry.unregister("c", c)
            expect(yield* Effect.promise(() => eventually(() => !recorded(c)))).toBe(true)
            // a stop that goes on (a service in its grace period) holds the others a moment only
            expect(yield* Effect.promise(() => eventually(() => !recorded(a)))).toBe(true)
          })
        )
        expect(recorded(b)).toBe(true)
        // the guardian ends: it kills the group it still watches (b), not those forgotten (a, c)
        yield* Scope.close(inner, Exit.void)
        expect(yield* Effect.promise(() => eventually(() => survivors([b]).length === 0))).toBe(true)
        expect(survivors([a, c]).length).toBe(2)
        yield* Scope.close(scope, Exit.void)
        expect(yield* Effect.promise(() => eventually(() => survivors([a, c]).length === 0))).toBe(true)
      })
  )

  it.scopedLive("signal: the guardian sends the signal to each listed group, and to no other", () =>
    Effect.gen(function* () {
      const listed = [yield* bystander(), yield* bystander()]
      const other = yield* bystander()
      const ended = listed.map(
        (child) =>
          new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)))
      )
      const guardian = yield* startGuardian
      expect(guardian.signal("NOTASIGNAL" as NodeJS.Signals, [listed[0]!.pid!])).toBe(false)
      expect(
        guardian.signal(
          "SIGTERM",
          listed.map((child) => child.pid!)
        )
      ).toBe(true)
      expect(yield* Effect.promise(() => Promise.all(ended))).toEqual(["SIGTERM", "SIGTERM"])
      expect(survivors([other.pid!]).length).toBe(1)
      // by number: the shell knows no SIGPOLL by name (Node calls signal 29 SIGIO)
      const polled = yield* bystander()
      const pollEnded = new Promise((resolve) => polled.once("exit", (_code, signal) => resolve(signal)))
      expect(guardian.signal("SIGPOLL", [polled.pid!])).toBe(true)
      expect(yield* Effect.promise(() => pollEnded)).toBe("SIGIO")
    })
  )
})
