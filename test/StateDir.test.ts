import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { join } from "node:path"
import { rotateIfLarger } from "../src/logs/LogFile.js"
import { readStartTime } from "../src/process/ProcTable.js"
import { isRunning } from "../src/state/ProcessIdentity.js"
import { backgroundRemovals, removeState, stateDirOf, statePaths } from "../src/state/StateDir.js"
import { GroupRecordFile, readRecord, readSupervisorRecord, SupervisorRecord } from "../src/state/StateRecords.js"
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

describe("backgroundRemovals", () => {
  it.live(
    "removes files on the thread pool; settle waits for them, and removes on the loop what a busy pool holds up",
    () =>
      Effect.gen(function* () {
        const dir = tempDir("core-state-")
        const files = ["a.json", "b.json"].map((f) => join(dir, f))
        for (const f of files) fs.writeFileSync(f, "{}")
        fs.mkdirSync(join(dir, "c.json", "inner"), { recursive: true })
        const removals = backgroundRemovals()
        for (const f of [...files, join(dir, "c.json"), join(dir, "missing.json")]) removals.remove(f)
        // a directory in the way is removed too; a missing file is no failure
        expect(yield* removals.settle(5_000)).toEqual([])
        expect(fs.readdirSync(dir)).toEqual([])

        // every thread of the pool held by an open() of a FIFO that nobody writes (a hung lookup, a stuck disk)
        const fifos = Array.from({ length: Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, (_, i) =>
          join(dir, `fifo${i}`)
        )
        for (const fifo of fifos) spawnSync("mkfifo", [fifo])
        const opened = fifos.map((fifo) => new Promise<number>((resolve) => fs.open(fifo, "r", (_, fd) => resolve(fd))))
        const held = join(dir, "held.json")
        fs.writeFileSync(held, "{}")
        removals.remove(held)
        // a task queued behind the held threads: it shows the pool is still held when settle returns
        let poolFree = false
        fs.stat(dir, () => {
          poolFree = true
        })
        // remove() returned at once; settle gives up waiting after its limit and removes the file itself
        expect(yield* removals.settle(100)).toEqual([])
        expect(poolFree).toBe(false)
        expect(fs.existsSync(held)).toBe(false)
        // the pool freed: each FIFO opened for writing ends the open() that held a thread
        const writers = fifos.map((fifo) => fs.openSync(fifo, "w"))
        for (const fd of [...writers, ...(yield* Effect.promise(() => Promise.all(opened)))]) fs.closeSync(fd)
        fs.rmSync(dir, { recursive: true, force: true })
      })
  )
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
