import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { join } from "node:path"
import { rotateIfLarger } from "../src/logs/LogFile.js"
import { readStartTime } from "../src/process/ProcTable.js"
import { isRunning } from "../src/state/ProcessIdentity.js"
import { removeState, stateDirOf, statePaths } from "../src/state/StateDir.js"
import {
  GroupRecordFile,
  groupJournals,
  openGroupJournal,
  readRecord,
  readSupervisorRecord,
  recordedGroups,
  SupervisorRecord
} from "../src/state/StateRecords.js"
import { holdSupervisorLock, probeSupervisor } from "../src/state/SupervisorLock.js"
import { tempDir } from "./support/Specs.js"

/** A pid that was used and is gone: a child that has exited and been reaped. */
const deadPid = (): number => spawnSync("true").pid!

describe("removeState", () => {
  it("removes a file, a socket, a folder with what it holds, and nothing when nothing is there", () => {
    const dir = tempDir("core-state-")
    const file = join(dir, "record.json")
    fs.writeFileSync(file, "{}")
    const folder = join(dir, "folder")
    fs.mkdirSync(join(folder, "inner"), { recursive: true })
    fs.writeFileSync(join(folder, "inner", "f"), "x")
    const link = join(dir, "link")
    fs.symlinkSync(folder, link)
    for (const path of [file, link, folder, join(dir, "missing")]) removeState(path)
    expect(fs.readdirSync(dir)).toEqual([])
    fs.rmSync(dir, { recursive: true, force: true })
  })
})

describe("state records", () => {
  it("a record file is found, missing, or invalid (not JSON, or not the Schema's shape)", () => {
    const dir = tempDir("core-state-")
    const file = join(dir, "r.json")
    expect(readRecord(SupervisorRecord, file)).toEqual({ _tag: "Missing" })
    fs.writeFileSync(file, "{ not json")
    expect(readRecord(SupervisorRecord, file)).toEqual({ _tag: "Invalid" })
    fs.writeFileSync(file, JSON.stringify({ pid: 1.5, startTime: null, dir }))
    expect(readRecord(SupervisorRecord, file)).toEqual({ _tag: "Invalid" })
    fs.writeFileSync(file, JSON.stringify({ pid: 12, startTime: null, dir }))
    expect(readRecord(SupervisorRecord, file)).toEqual({ _tag: "Found", value: { pid: 12, startTime: null, dir } })
    // a group record without the supervisor that spawned it is not one
    fs.writeFileSync(file, JSON.stringify({ service: "a", pid: 5, startTime: 1, notBefore: 1 }))
    expect(readRecord(GroupRecordFile, file)._tag).toBe("Invalid")
  })

  it("isRunning: this process is; a reaped pid is not; a reused pid with another start time is not", () => {
    const me = { pid: process.pid, startTime: readStartTime(process.pid) ?? null }
    expect(isRunning(me)).toBe(true)
    expect(isRunning({ pid: process.pid, startTime: null })).toBe(true)
    expect(isRunning({ pid: deadPid(), startTime: null })).toBe(false)
    if (me.startTime !== null) expect(isRunning({ pid: process.pid, startTime: me.startTime + 1 })).toBe(false)
  })
})

describe("a supervisor's journal of its process groups", () => {
  const record = (service: string, pid: number) => ({
    service,
    pid,
    startTime: pid * 10,
    notBefore: pid * 10,
    supervisorPid: 42,
    supervisorStart: 7
  })
  const setUp = () => {
    const stateDir = join(tempDir("core-journal-"), ".core-stack")
    const { pidsDir } = statePaths(stateDir)
    fs.mkdirSync(pidsDir, { recursive: true })
    // the one journal there (named by the supervisor and how many this process opened)
    const file = () => join(pidsDir, fs.readdirSync(pidsDir).find((f) => f.endsWith(".log"))!)
    return { stateDir, file }
  }

  it.effect("replays to the groups still recorded, in order (a pid used again included); a torn line is skipped", () =>
    Effect.gen(function* () {
      const { stateDir, file } = setUp()
      const journal = yield* openGroupJournal(stateDir, 42, 7)
      for (const step of [
        journal.add(record("a", 100)),
        journal.add(record("b", 200)),
        journal.remove(100),
        journal.add(record("a again", 100)),
        journal.remove(300) // never recorded: nothing written
      ])
        expect(step).toBeUndefined()
      fs.appendFileSync(file(), '+ {"service":"torn","pid":5')
      expect(recordedGroups(stateDir)).toEqual([record("b", 200), record("a again", 100)])
      expect(groupJournals(stateDir).map((j) => j.owner)).toEqual([{ pid: 42, startTime: 7 }])
      // groups left: the journal stays for the next command's check
      const kept = file()
      expect(journal.close()).toBeUndefined()
      expect(fs.existsSync(kept)).toBe(true)
    })
  )

  it.effect("is written anew with the live groups once it holds many more lines; removed at the end when empty", () =>
    Effect.gen(function* () {
      const { stateDir, file } = setUp()
      const journal = yield* openGroupJournal(stateDir, 42, 7)
      journal.add(record("stays", 1))
      for (let i = 0; i < 3000; i++) {
        journal.add(record("restarts", 2))
        journal.remove(2)
      }
      const lines = fs.readFileSync(file(), "utf8").split("\n").length
      expect(lines).toBeLessThan(1100)
      expect(recordedGroups(stateDir)).toEqual([record("stays", 1)])
      journal.remove(1)
      expect(journal.close()).toBeUndefined()
      expect(fs.readdirSync(statePaths(stateDir).pidsDir)).toEqual([])
    })
  )

  it.effect("a rewrite that fails leaves the journal as it was, and is tried again later", () =>
    Effect.gen(function* () {
      const { stateDir, file } = setUp()
      const journal = yield* openGroupJournal(stateDir, 42, 7)
      // a folder where the rewrite's file goes: writing it fails (EISDIR), and it is cleared for the next try
      fs.mkdirSync(`${file()}.tmp`)
      expect(journal.add(record("stays", 1))).toBeUndefined()
      for (let i = 0; i < 1500; i++) {
        expect(journal.add(record("restarts", 2))).toBeUndefined()
        expect(journal.remove(2)).toBeUndefined()
      }
      expect(recordedGroups(stateDir)).toEqual([record("stays", 1)])
      expect(fs.readFileSync(file(), "utf8").split("\n").length).toBeLessThan(2200)
      expect(fs.existsSync(`${file()}.tmp`)).toBe(false)
      journal.remove(1)
      expect(journal.close()).toBeUndefined()
    })
  )

  it("a record file of the version before the journals counts as a journal of one group", () => {
    const { stateDir } = setUp()
    const legacy = { ...record("old", 300), supervisorPid: 999_999_999, supervisorStart: 1 }
    fs.writeFileSync(join(statePaths(stateDir).pidsDir, "300.json"), JSON.stringify(legacy))
    fs.writeFileSync(join(statePaths(stateDir).pidsDir, "42-7-1.log.tmp"), "")
    expect(groupJournals(stateDir).map((j) => [j.owner, j.records])).toEqual(
      expect.arrayContaining([
        [{ pid: 999_999_999, startTime: 1 }, [legacy]],
        [{ pid: 42, startTime: 7 }, []]
      ])
    )
    expect(recordedGroups(stateDir)).toEqual([legacy])
  })
})

describe("the supervisor lock", () => {
  it.effect("probe: missing, then live while held, then missing again; a dead owner's file is stale", () =>
    Effect.gen(function* () {
      const stateDir = stateDirOf(tempDir("core-lock-"))
      expect(probeSupervisor(stateDir)._tag).toBe("Missing")
      const scope = yield* Scope.make()
      yield* holdSupervisorLock(stateDir).pipe(Scope.extend(scope))
      const held = probeSupervisor(stateDir)
      expect(held._tag).toBe("Live")
      expect(readSupervisorRecord(stateDir)).toMatchObject({ _tag: "Found", value: { pid: process.pid } })
      // held already by this process: taking it again is fine and leaves the release to the first scope
      yield* Effect.scoped(holdSupervisorLock(stateDir))
      expect(probeSupervisor(stateDir)._tag).toBe("Live")
      yield* Scope.close(scope, Exit.void)
      expect(probeSupervisor(stateDir)._tag).toBe("Missing")

      const { pidFile } = statePaths(stateDir)
      fs.writeFileSync(pidFile, JSON.stringify({ pid: deadPid(), startTime: null, dir: "/x" }))
      expect(probeSupervisor(stateDir)).toMatchObject({ _tag: "Stale", record: { dir: "/x" } })
      fs.writeFileSync(pidFile, "garbage")
      expect(probeSupervisor(stateDir)).toEqual({ _tag: "Stale", record: undefined })
      // a stale lock is taken over
      yield* Effect.scoped(
        Effect.zipRight(
          holdSupervisorLock(stateDir),
          Effect.sync(() => expect(probeSupervisor(stateDir)._tag).toBe("Live"))
        )
      )
      expect(fs.existsSync(pidFile)).toBe(false)
    })
  )
})

describe("rotation of the supervisor's output", () => {
  it("keeps one older file once the limit is passed, and nothing happens below it", () => {
    const file = join(tempDir("core-rotate-"), "supervisor.log")
    expect(rotateIfLarger(file, 10, 1)).toBe(false)
    fs.writeFileSync(file, "0123456789")
    expect(rotateIfLarger(file, 10, 1)).toBe(false)
    fs.appendFileSync(file, "a")
    expect(rotateIfLarger(file, 10, 1)).toBe(true)
    expect(fs.existsSync(file)).toBe(false)
    expect(fs.readFileSync(`${file}.1`, "utf8")).toBe("0123456789a")
    fs.writeFileSync(file, "second output")
    expect(rotateIfLarger(file, 10, 1)).toBe(true)
    expect(fs.readFileSync(`${file}.1`, "utf8")).toBe("second output")
    expect(fs.existsSync(`${file}.2`)).toBe(false)
  })
})
