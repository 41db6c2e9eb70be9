/**
 * The spawner helper (`src/spawner`, `process/Spawner.ts`): `spawnGroup` through it gives what Node's `spawn()`
 * gave (output, exit statuses, the same located errors), the processes are the helper's children, and nothing
 * is left when the helper or the supervisor dies.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { join } from "node:path"
import { type Ended, runGroup, spawnGroup } from "../src/process/ProcessGroup.js"
import { readStartTime } from "../src/process/ProcTable.js"
import type { SpawnedBy } from "../src/process/ProcessRegistry.js"
import * as Spawner from "../src/process/Spawner.js"
import { eventually, liveProcesses, parentOf, survivors } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const binary = Spawner.spawnerBinary()!

/** `effect` with a spawner helper of its own, ended after it. */
const withHelper = <A, E>(effect: Effect.Effect<A, E, Spawner.Spawner | Scope.Scope>) =>
  effect.pipe(Effect.provide(Layer.fresh(Spawner.layer)), Effect.scoped)

/** A silent group of `command` in `dir` (stopped with SIGTERM, then SIGKILL after `graceMs`). */
const quietGroup = (dir: string, command: string, args: ReadonlyArray<string>, graceMs = 1000) =>
  spawnGroup({
    owner: "t",
    command,
    args,
    cwd: dir,
    env: process.env,
    shutdown: { signal: "SIGTERM", timeoutMs: graceMs },
    onOutput: () => {},
    onEnd: () => {}
  })

const sh = (
  dir: string,
  script: string,
  extra: { readonly cwd?: string; readonly env?: Record<string, string> } = {}
) =>
  runGroup({
    owner: "t",
    command: "sh",
    args: ["-c", script],
    cwd: extra.cwd ?? dir,
    env: { ...process.env, ...extra.env },
    timeoutMs: 10_000
  })

describe("the spawner helper", () => {
  it("is built (npm run build, with Go)", () => {
    expect(fs.existsSync(binary), `${binary} is missing: npm run build builds it with Go`).toBe(true)
  })

  it.live("runs the process as its child, in a session of its own, with output, env, cwd and exit status", () => {
    const dir = tempDir()
    return withHelper(
      Effect.gen(function* () {
        let output = ""
        const group = yield* spawnGroup({
          owner: "t",
          command: "sh",
          args: [
            "-c",
            'echo "out $FOO $(pwd) [${HOME-unset}]"; echo err >&2; echo via-path > /dev/stdout; echo "parent $(cat /proc/$PPID/comm)"; echo "stdin $(readlink /proc/$$/fd/0)"; echo "ids $(ps -o pid=,sid=,pgid= -p $$)"; exit 7'
          ],
          cwd: dir,
          // the helper gets what differs from its base environment: one variable set, one taken out
          env: { ...process.env, FOO: "bar", HOME: undefined },
          shutdown: { signal: "SIGTERM", timeoutMs: 1000 },
          onOutput: (_, chunk) => {
            output += chunk.toString()
          },
          onEnd: () => {}
        })
        const ended: Ended = yield* group.ended
        expect(ended).toEqual({ status: 7, signal: undefined })
        yield* Effect.promise(() => eventually(() => output.includes("ids"), 5_000))
        expect(output).toContain(`out bar ${fs.realpathSync(dir)} [unset]`)
        expect(output).toContain("via-path")
        expect(output).toContain("parent core-spawner")
        expect(output).toContain("stdin /dev/null")
        // its own session and group: pid, sid and pgid are one number
        const ids = /ids\s+(\d+)\s+(\d+)\s+(\d+)/.exec(output)!.slice(1)
        expect(new Set(ids)).toEqual(new Set([String(group.pid)]))
        expect(output).toContain("err")
      })
    )
  })

  it.live(
    "a process that exits at once, silent or not, has its output ended (no hang-up comes for a late reader)",
    () => {
      const dir = tempDir()
      const run = (script: string) =>
        Effect.gen(function* () {
          const ends: Array<string> = []
          let output = ""
          const group = yield* spawnGroup({
            owner: "t",
            command: "sh",
            args: ["-c", script],
            cwd: dir,
            env: process.env,
            shutdown: { signal: "SIGTERM", timeoutMs: 1000 },
            onOutput: (_, chunk) => {
              output += chunk.toString()
            },
            onEnd: (stream) => ends.push(stream)
          })
          yield* group.ended
          const ended = yield* Effect.promise(() => eventually(() => ends.length === 2, 10_000))
          return { ended, output }
        }).pipe(Effect.scoped)
      return withHelper(
        Effect.gen(function* () {
          for (let i = 0; i < 20; i++) {
            expect(yield* run("true")).toEqual({ ended: true, output: "" })
            expect(yield* run("echo last")).toEqual({ ended: true, output: "last\n" })
          }
        })
      )
    }
  )

  it.live("a base variable named __proto__ is taken out like any other, and one named toString is set", () => {
    const dir = tempDir()
    // the helper's base environment is this process's, taken when it starts (process.env holds such a name as
    // a variable, not as the accessor)
    const proto = "__proto__"
    process.env[proto] = "base"
    let output = ""
    return withHelper(
      Effect.gen(function* () {
        const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== proto))
        const group = yield* spawnGroup({
          owner: "t",
          command: "sh",
          args: ["-c", "env"],
          cwd: dir,
          env: { ...env, toString: "set" },
          shutdown: { signal: "SIGTERM", timeoutMs: 1000 },
          onOutput: (_, chunk) => {
            output += chunk.toString()
          },
          onEnd: () => {}
        })
        expect(yield* group.ended).toEqual({ status: 0, signal: undefined })
        yield* Effect.promise(() => eventually(() => output.includes("toString="), 5_000))
      })
    ).pipe(
      Effect.ensuring(Effect.sync(() => delete process.env[proto])),
      Effect.tap(() => {
        expect(output.split("\n")).toContain("toString=set")
        expect(output).not.toContain("__proto__=")
      })
    )
  })

  it.live("a file without #! runs with sh, as execvp does", () => {
    const dir = tempDir()
    fs.writeFileSync(join(dir, "script"), "echo ran $1\n", { mode: 0o755 })
    return withHelper(
      Effect.gen(function* () {
        const result = yield* runGroup({ owner: "t", command: "./script", args: ["here"], cwd: dir, env: process.env })
        expect([result.status, result.output]).toEqual([0, "ran here\n"])
      })
    )
  })

  it.live(
    "a process writes to pipes that this process reads; the helper lets go of its read ends once they are opened",
    () => {
      const dir = tempDir()
      return withHelper(
        Effect.gen(function* () {
          const group = yield* quietGroup(dir, "sleep", ["3600"])
          const helper = parentOf(group.pid).ppid
          const pipesOf = (pid: number) =>
            fs.readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
              try {
                const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
                return target.startsWith("pipe:") ? [target] : []
              } catch {
                return [] // closed meanwhile
              }
            })
          const ours = pipesOf(process.pid)
          const outputs = [1, 2].map((stream) => fs.readlinkSync(`/proc/${group.pid}/fd/${stream}`))
          for (const target of outputs) {
            expect(target).toMatch(/^pipe:/)
            expect(ours).toContain(target)
          }
          const helperLetGo = () => !pipesOf(helper).some((target) => outputs.includes(target))
          expect(yield* Effect.promise(() => eventually(helperLetGo, 5_000))).toBe(true)
        })
      )
    }
  )

  it.live("a process whose output nobody reads any more gets EPIPE, as with a pipe", () => {
    const dir = tempDir()
    return Effect.gen(function* () {
      const spawner = yield* Spawner.Spawner
      const ended = yield* Effect.async<{ code: number | null; signal: NodeJS.Signals | null }>((resume) => {
        spawner.spawn(
          { command: "yes", args: [], cwd: dir, env: process.env },
          {
            started: (_pid, _startTime, stdout, stderr) => {
              stdout.destroy()
              stderr.destroy()
            },
            failed: (error) => resume(Effect.die(error)),
            exited: (code, signal) => resume(Effect.succeed({ code, signal }))
          }
        )
      })
      expect(ended).toEqual({ code: null, signal: "SIGPIPE" })
    }).pipe(Effect.provide(Layer.fresh(Spawner.layer)), Effect.scoped)
  })

  it.live("reports each process's start time as /proc has it (the identity its group is recorded with)", () => {
    const dir = tempDir()
    return Effect.gen(function* () {
      const spawner = yield* Spawner.Spawner
      const seen = yield* Effect.async<{ pid: number; spawned: SpawnedBy }>((resume) => {
        spawner.spawn(
          { command: "sleep", args: ["30"], cwd: dir, env: process.env },
          {
            started: (pid, spawned, stdout, stderr) => {
              stdout.destroy()
              stderr.destroy()
              resume(Effect.succeed({ pid, spawned }))
            },
            failed: (error) => resume(Effect.die(error)),
            exited: () => {}
          }
        )
      })
      try {
        expect(seen.spawned.startTime).toBeTypeOf("number")
        expect(seen.spawned.startTime).toBe(readStartTime(seen.pid))
      } finally {
        process.kill(-seen.pid, "SIGKILL")
      }
    }).pipe(Effect.provide(Layer.fresh(Spawner.layer)), Effect.scoped)
  })

  it.live("reports a death by signal as Node does", () => {
    const dir = tempDir()
    return withHelper(
      Effect.gen(function* () {
        const result = yield* sh(dir, "kill -TERM $$")
        expect([result.status, result.signal]).toEqual([143, "SIGTERM"])
      })
    )
  })

  it.live("names what is wrong when the process cannot start, as with Node's spawn()", () => {
    const dir = tempDir()
    fs.writeFileSync(join(dir, "file"), "")
    fs.writeFileSync(join(dir, "noexec"), "#!/bin/sh\n")
    const reasons = (command: string, cwd: string, args: ReadonlyArray<string> = [], env = process.env) =>
      runGroup({ owner: "t", command, args, cwd, env }).pipe(
        Effect.flip,
        Effect.map((e) => e.reason)
      )
    const all = Effect.gen(function* () {
      return [
        yield* reasons("no-such-command-xyz", dir),
        yield* reasons("sh", join(dir, "missing")),
        yield* reasons("sh", join(dir, "file")),
        yield* reasons(join(dir, "noexec"), dir),
        yield* reasons(
          "sh",
          dir,
          Array.from({ length: 200_000 }, (_, i) => `a${i}`)
        ),
        yield* reasons("sh", dir, ["-c", "a\0b"]),
        yield* reasons("sh", dir, [], { ...process.env, CORE_TEST_NUL: "a\0b" })
      ]
    })
    return Effect.gen(function* () {
      const helper = yield* withHelper(all)
      const node = yield* all.pipe(Effect.provide(Spawner.Spawner.none))
      expect(helper.slice(0, 4)).toEqual([
        "command not found",
        `ENOENT: working directory ${join(dir, "missing")} does not exist`,
        `ENOTDIR: working directory ${join(dir, "file")} is not a directory`,
        "permission denied (is it executable?)"
      ])
      expect(helper[4]).toContain("E2BIG")
      // the same words either way (Node's own message for the NUL byte: the helper leaves that to Node)
      expect(helper.slice(0, 4)).toEqual(node.slice(0, 4))
      expect(helper[5]).toEqual(node[5])
      expect(helper[6]).toEqual(node[6])
      expect(helper[6]).toContain("null bytes")
    })
  })

  it.live("a helper that dies takes its groups down, their runs end killed, and later spawns use Node", () => {
    const dir = tempDir()
    return withHelper(
      Effect.gen(function* () {
        const group = yield* quietGroup(dir, "sh", ["-c", "sleep 3600 & sleep 3600"])
        expect(parentOf(group.pid).name).toBe("core-spawner")
        const helper = parentOf(group.pid).ppid
        yield* Effect.promise(() => eventually(() => survivors([group.pid]).length >= 2, 5_000))
        process.kill(helper, "SIGKILL")
        expect(yield* group.ended).toEqual({ status: 137, signal: "SIGKILL" })
        yield* Effect.promise(() => eventually(() => survivors([group.pid]).length === 0, 5_000))
        expect(survivors([group.pid])).toEqual([])
        const later = yield* quietGroup(dir, "sleep", ["3600"])
        expect(parentOf(later.pid).ppid).toBe(process.pid)
      })
    )
  })

  it.live("a stop does not wait without limit for an exit that a stopped helper cannot report", () => {
    const dir = tempDir()
    return withHelper(
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const group = yield* quietGroup(dir, "sleep", ["3600"], 100).pipe(Scope.extend(scope))
        const parent = parentOf(group.pid)
        // the helper, never this process (with Node's spawn() the stop below would stop the test itself)
        expect(parent.name).toBe("core-spawner")
        const helper = parent.ppid
        process.kill(helper, "SIGSTOP")
        yield* Scope.close(scope, Exit.void).pipe(Effect.ensuring(Effect.sync(() => process.kill(helper, "SIGCONT"))))
        // gone: a zombie at most, which the helper reaps once it runs again
        expect(survivors([group.pid]).filter((p) => p.state !== "Z")).toEqual([])
      })
    )
  })

  it("a supervisor killed with -9, spawns in flight, leaves nothing: the helper kills what it started", async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tempDir()
      const holder = spawn(
        process.execPath,
        ["--import", "tsx", join(__dirname, "fixtures/spawner/holder.ts"), dir, "50"],
        // run from the sources by tsx, an ES module: the binary is named (no folder of the working directory is)
        { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, CORE_SPAWNER: binary } }
      )
      // killed whatever happens: a failed check must not leave it (and its helper's 50 processes) running
      try {
        let text = ""
        holder.stdout!.on("data", (chunk: Buffer) => {
          text += chunk.toString()
        })
        expect(await eventually(() => text.includes("\n"), 30_000)).toBe(true)
        const first = Number(text.split("\n")[0])
        expect(parentOf(first).name).toBe("core-spawner")
        const helper = parentOf(first).ppid
        // killed after its first answer, with most of the 50 requests still on their way
        holder.kill("SIGKILL")
        const inDir = () =>
          liveProcesses().filter((p) => {
            try {
              return fs.readlinkSync(`/proc/${p.pid}/cwd`) === fs.realpathSync(dir)
            } catch {
              return false
            }
          })
        expect(await eventually(() => inDir().length === 0 && survivors([helper]).length === 0, 10_000)).toBe(true)
      } finally {
        holder.kill("SIGKILL")
      }
    }
  })
})

describe("the spawner helper's input", () => {
  it("a malformed request (a count past any limit, no arguments) ends it cleanly, not with a panic", () => {
    for (const input of ["S\x001\x00x\x00/\x0099999999999\x00", "S\x001\x00x\x00/\x000\x000\x000\x00", "Z\x00"]) {
      const run = spawnSync(binary, [], { input, env: { ...process.env, CORE_SPAWNER_HELPER: "1" }, timeout: 10_000 })
      expect([run.status, run.stderr.toString()]).toEqual([0, ""])
    }
  })
})

describe("the spawner's read of a pipe at its process's exit", () => {
  it("leaves alone an fd its socket has closed (its number may belong to another file by now)", () => {
    const dir = tempDir()
    const other = join(dir, "other")
    fs.writeFileSync(other, "GET /status HTTP/1.1\r\n\r\n")
    const fd = fs.openSync(other, "r")
    const socket = new net.Socket()
    socket.destroy()
    let read = ""
    socket.on("data", (chunk: Buffer) => {
      read += chunk.toString()
    })
    Spawner.drain([{ fd, socket }])
    fs.closeSync(fd)
    expect(read).toBe("")
  })
})
