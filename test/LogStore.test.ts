import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Stream } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { LogFile } from "../src/logs/LogFile.js"
import { type LogLine, makeServiceLog, type ServiceLog } from "../src/logs/ServiceLog.js"

const flood = path.join(import.meta.dirname, "fixtures", "flood.mjs")

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "core-logs-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The pids among `pids` that still exist (zombies excluded). */
const alive = (pids: ReadonlyArray<number>): Array<number> => {
  const out = execFileSync("ps", ["-eo", "pid=,stat="]).toString()
  const living = new Set(
    out
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, stat]) => stat !== undefined && !stat.startsWith("Z"))
      .map(([pid]) => Number(pid))
  )
  return pids.filter((pid) => living.has(pid))
}

/** Runs a real child process with its stdout and stderr piped into the log, until both pipes closed. */
const runInto = (log: ServiceLog, args: ReadonlyArray<string>) =>
  Effect.async<{ pid: number; code: number | null }>((resume) => {
    const child = spawn(process.execPath, [...args], { stdio: ["ignore", "pipe", "pipe"] })
    let open = 2
    let code: number | null = null
    let exited = false
    const done = () => {
      if (open === 0 && exited) resume(Effect.succeed({ pid: child.pid!, code }))
    }
    for (const stream of ["stdout", "stderr"] as const) {
      child[stream].on("data", (chunk: Buffer) => log.write(stream, chunk))
      child[stream].on("end", () => {
        log.end(stream)
        open--
        done()
      })
    }
    child.on("exit", (c) => {
      code = c
      exited = true
      done()
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const expectedFloodStdout = (lines: number, longLine: number, pad = 40): Array<string> => {
  const out: Array<string> = []
  const p = "x".repeat(pad)
  for (let i = 1; i <= lines; i++) {
    out.push(`out ${i} ${p}`)
    if (longLine > 0 && i === Math.floor(lines / 2)) out.push("L".repeat(longLine))
  }
  out.push("last line without newline")
  return out
}

const fileLines = (file: string): Array<string> => {
  const text = fs.readFileSync(file, "utf8")
  expect(text.endsWith("\n")).toBe(true)
  return text.slice(0, -1).split("\n")
}

/** The lines of the current file and its rotated predecessors, oldest first. */
const allFileLines = (file: string): Array<string> => {
  const dir = path.dirname(file)
  const base = path.basename(file)
  const rotated = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${base}.`))
    .map((f) => Number(f.slice(base.length + 1)))
    .sort((a, b) => b - a)
  return [...rotated.map((n) => `${file}.${n}`), file].flatMap(fileLines)
}

describe("ServiceLog", () => {
  it.scopedLive("keeps every line of a real flooding child, in order, in the file and the listeners", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "logs", "flood.log")
      const log = yield* makeServiceLog({ name: "flood", file })
      const seen: Array<LogLine> = []
      log.onLine((line) => seen.push(line))
      const { pid, code } = yield* runInto(log, [flood, "100000", String(100 * 1024), "40", "1000"])
      expect(code).toBe(0)
      yield* log.flush

      const lines = fileLines(file)
      const stdout = expectedFloodStdout(100000, 100 * 1024)
      const stderr = Array.from({ length: 100 }, (_, i) => `err ${(i + 1) * 1000}`)
      expect(lines.length).toBe(stdout.length + stderr.length)
      expect(lines.filter((l) => !l.startsWith("err "))).toEqual(stdout)
      expect(lines.filter((l) => l.startsWith("err "))).toEqual(stderr)
      expect(lines.find((l) => l.startsWith("L"))?.length).toBe(100 * 1024)

      expect(seen.map((l) => l.text)).toEqual(lines)
      expect(seen.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1))
      expect(seen.filter((l) => l.stream === "stderr").map((l) => l.text)).toEqual(stderr)

      const tail = yield* log.tail(3)
      expect(tail.map((l) => l.text)).toEqual(stdout.slice(-3))
      expect(alive([pid])).toEqual([])
    })
  )

  it.scopedLive("rotation keeps every line, in order, and a line over maxBytes whole", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "rot.log")
      const log = yield* makeServiceLog({ name: "rot", file, maxBytes: 64 * 1024, maxFiles: 1000 })
      const { pid } = yield* runInto(log, [flood, "50000", String(200 * 1024), "10"])
      yield* log.flush
      const rotated = fs.readdirSync(dir).filter((f) => f.startsWith("rot.log."))
      expect(rotated.length).toBeGreaterThan(10)
      expect(allFileLines(file)).toEqual(expectedFloodStdout(50000, 200 * 1024, 10))
      for (const f of [...rotated, "rot.log"]) {
        const size = fs.statSync(path.join(dir, f)).size
        const hasLong = fs.readFileSync(path.join(dir, f), "utf8").includes("LLLL")
        expect(size <= 64 * 1024 || hasLong).toBe(true)
      }
      expect(alive([pid])).toEqual([])
    })
  )

  it.scopedLive("rotation with maxFiles keeps the newest lines, contiguous up to the end", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "few.log")
      const log = yield* makeServiceLog({ name: "few", file, maxBytes: 16 * 1024, maxFiles: 2 })
      const { pid } = yield* runInto(log, [flood, "20000", "0", "10"])
      yield* log.flush
      expect(fs.readdirSync(dir).sort()).toEqual(["few.log", "few.log.1", "few.log.2"])
      const kept = allFileLines(file)
      const expected = expectedFloodStdout(20000, 0, 10)
      expect(kept.length).toBeGreaterThan(1000)
      expect(kept).toEqual(expected.slice(-kept.length))
      expect(alive([pid])).toEqual([])
    })
  )

  it.scopedLive("appends to an existing file and continues across process restarts", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "again.log")
      fs.writeFileSync(file, "from before\n")
      const log = yield* makeServiceLog({ name: "again", file })
      const first = yield* runInto(log, ["-e", "process.stdout.write('one\\ntwo')"])
      const second = yield* runInto(log, ["-e", "process.stderr.write('three\\r\\n'); process.stdout.write('four\\n')"])
      yield* log.flush
      expect(fs.readFileSync(file, "utf8")).toBe("from before\none\ntwo\nthree\r\nfour\n")
      expect((yield* log.tail(10)).map((l) => [l.seq, l.stream, l.text])).toEqual([
        [1, "stdout", "one"],
        [2, "stdout", "two"],
        [3, "stderr", "three"],
        [4, "stdout", "four"]
      ])
      expect(alive([first.pid, second.pid])).toEqual([])
    })
  )

  it.scopedLive("follow sees the tail, then new lines, across restarts; note lines are marked", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "f.log")
      const log = yield* makeServiceLog({ name: "f", file, memoryLines: 5, maxBytes: 200, maxFiles: 50 })
      for (let i = 1; i <= 8; i++) log.write("stdout", Buffer.from(`old ${i}\n`))
      const subscribed = yield* Deferred.make<void>()
      const fiber = yield* log.follow(2).pipe(
        Stream.tap((line) => (line.text === "old 8" ? Deferred.succeed(subscribed, undefined) : Effect.void)),
        Stream.take(2 + 3 + 4),
        Stream.runCollect,
        Effect.fork
      )
      yield* Deferred.await(subscribed)
      const { pid } = yield* runInto(log, [
        "-e",
        "console.log('new 1'); console.error('new 2'); process.stdout.write('new 3')"
      ])
      log.note("restarting")
      yield* runInto(log, ["-e", "console.log('after 1\\nafter 2\\nafter 3')"])
      const got = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(got.slice(0, 2).map((l) => l.text)).toEqual(["old 7", "old 8"])
      expect(new Set(got.slice(2, 5).map((l) => l.text))).toEqual(new Set(["new 1", "new 2", "new 3"]))
      expect(got.slice(5).map((l) => l.text)).toEqual(["restarting", "after 1", "after 2", "after 3"])
      expect(got[5]!.supervisor).toBe(true)
      expect(got[6]!.supervisor).toBeUndefined()
      expect(got.map((l) => l.seq)).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15])
      yield* log.flush
      expect(allFileLines(file).filter((l) => l.includes("restarting"))).toEqual(["[core] restarting"])
      expect(alive([pid])).toEqual([])
    })
  )

  it.scopedLive("follow stops delivering when interrupted (the listener is removed)", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const log = yield* makeServiceLog({ name: "g", file: path.join(dir, "g.log") })
      let listeners = 0
      const probe = log.onLine(() => listeners++)
      const fiber = yield* log.follow(0).pipe(Stream.runDrain, Effect.fork)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      log.write("stdout", Buffer.from("x\n"))
      probe()
      log.write("stdout", Buffer.from("y\n"))
      expect(listeners).toBe(1)
      expect((yield* log.tail(5)).map((l) => l.text)).toEqual(["x", "y"])
    })
  )

  it.scopedLive("closing the scope flushes and closes the file; later lines stay in memory", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "c.log")
      const log = yield* Effect.scoped(
        Effect.gen(function* () {
          const log = yield* makeServiceLog({ name: "c", file })
          log.write("stdout", Buffer.from("a\n".repeat(10000)))
          log.write("stderr", Buffer.from("unterminated"))
          log.end("stderr")
          return log
        })
      )
      expect(fileLines(file).length).toBe(10001)
      log.write("stdout", Buffer.from("late\n"))
      expect((yield* log.tail(1))[0]!.text).toBe("late")
      expect(fileLines(file).length).toBe(10001)
    })
  )

  it.scopedLive("fails with LogError when the file cannot be opened", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      fs.writeFileSync(path.join(dir, "a-file"), "")
      const error = yield* makeServiceLog({ name: "x", file: path.join(dir, "a-file", "logs", "x.log") }).pipe(
        Effect.scoped,
        Effect.flip
      )
      expect(error._tag).toBe("LogError")
      expect(error.reason).toContain("cannot open")
    })
  )
})

describe("LogFile", () => {
  it.scopedLive("creates its files 0600 and refuses a symbolic link planted at its path", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = path.join(dir, "api.log")
      const log = new LogFile({ file, maxBytes: 1024, maxFiles: 1 })
      yield* Effect.async<void>((resume) => log.close(() => resume(Effect.void)))
      expect(fs.statSync(file).mode & 0o777).toBe(0o600)

      const target = path.join(dir, "elsewhere")
      fs.writeFileSync(target, "")
      const planted = path.join(dir, "web.log")
      fs.symlinkSync(target, planted)
      expect(() => new LogFile({ file: planted, maxBytes: 1024, maxFiles: 1 })).toThrow(/ELOOP/)
      expect(fs.readFileSync(target, "utf8")).toBe("")
    })
  )

  it.scopedLive("counts what a full disk drops and keeps accepting lines", () =>
    Effect.gen(function* () {
      // /dev/full fails every write with ENOSPC, as a full filesystem does
      const log = new LogFile({ file: "/dev/full", maxBytes: 1 << 30, maxFiles: 0 })
      log.append(Buffer.from("one\n"))
      yield* Effect.async<void>((resume) => log.whenIdle(() => resume(Effect.void)))
      log.append(Buffer.from("two lines\nhere\n"))
      yield* Effect.async<void>((resume) => log.close(() => resume(Effect.void)))
      expect((log.lastError as NodeJS.ErrnoException).code).toBe("ENOSPC")
      expect(log.droppedBytes).toBe(4 + 15)
    })
  )

  it.scopedLive("a service's log tells how much a full disk dropped (what `status` shows)", () =>
    Effect.gen(function* () {
      const log = yield* makeServiceLog({ name: "web", file: "/dev/full" })
      log.write("stdout", Buffer.from("hello\nworld\n"))
      yield* log.flush
      expect(log.droppedBytes()).toBe(12)
      // the lines are still in memory
      expect((yield* log.tail(5)).map((l) => l.text)).toEqual(["hello", "world"])
    })
  )
})
