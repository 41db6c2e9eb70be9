/**
 * `.core-stack/` is trusted only when it is the user's own: a real folder (not a symbolic link), theirs, and not
 * writable by others; a record file only when it is theirs and not writable by others. Its records name the
 * processes that `core` signals (a dead supervisor's groups are SIGKILLed by any command for the directory) and
 * its socket answers `status` and `down`: planted by another user, they would choose what a `core` run by you,
 * or by root, kills. A real process in its own group plays the victim; the built CLI (`dist/core.cjs`) is run
 * on both of its paths (the launcher's quick ones and the full CLI, `CORE_QUICK=0`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { join } from "node:path"
import { readStartTime } from "../src/process/ProcTable.js"
import { groupMembers } from "../src/state/ProcessIdentity.js"
import { groupJournalPath } from "../src/state/StateRecords.js"
import { cleanLeftovers } from "../src/state/SupervisorLock.js"
import { cli, runCli } from "./support/Cli.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A process in its own group, as a service would be; killed (group and all) by `end`. */
const victim = async (): Promise<{ pid: number; startTime: number; end: () => void }> => {
  const child: ChildProcess = spawn("sleep", ["600"], { detached: true, stdio: "ignore" })
  await new Promise((resolve) => child.once("spawn", resolve))
  const pid = child.pid!
  const startTime = readStartTime(pid)!
  return {
    pid,
    startTime,
    end: () => {
      try {
        process.kill(-pid, "SIGKILL")
      } catch {}
    }
  }
}

/** A stack folder with one service, and a `.core-stack/` holding a dead supervisor's record of `victim`'s group. */
const plantedStack = (group: { pid: number; startTime: number }) => {
  const dir = tempDir("core-trust-")
  fs.mkdirSync(join(dir, "services", "a"), { recursive: true })
  fs.writeFileSync(join(dir, "services", "a", "service.json"), JSON.stringify({ process: { command: "true" } }))
  const stateDir = join(dir, ".core-stack")
  fs.mkdirSync(join(stateDir, "pids"), { recursive: true, mode: 0o700 })
  fs.chmodSync(stateDir, 0o700)
  const record = groupJournalPath(stateDir, 999_999_999, 1)
  const text = `+ ${JSON.stringify({
    service: "a",
    pid: group.pid,
    startTime: group.startTime,
    notBefore: 0,
    supervisorPid: 999_999_999,
    supervisorStart: 1
  })}\n`
  fs.writeFileSync(record, text, { mode: 0o600 })
  return { dir, stateDir, record }
}

describe("records of .core-stack/ are trusted only when the folder and the file are the user's own", () => {
  it("a dead supervisor's group is ended from the user's own folder (the control case)", async () => {
    const group = await victim()
    try {
      const { stateDir, record } = plantedStack(group)
      const ended = await Effect.runPromise(cleanLeftovers(stateDir))
      expect(ended.map((l) => l.pid)).toEqual([group.pid])
      expect(await eventually(() => !alive(group.pid))).toBe(true)
      expect(fs.existsSync(record)).toBe(false)
    } finally {
      group.end()
    }
  })

  it("nothing is signalled from a folder writable by others, one behind a symbolic link, or a record file writable by others", async () => {
    const group = await victim()
    try {
      const open = plantedStack(group)
      fs.chmodSync(open.stateDir, 0o777)
      expect(await Effect.runPromise(cleanLeftovers(open.stateDir))).toEqual([])

      const linked = plantedStack(group)
      const elsewhere = `${linked.stateDir}.real`
      fs.renameSync(linked.stateDir, elsewhere)
      fs.symlinkSync(elsewhere, linked.stateDir)
      expect(await Effect.runPromise(cleanLeftovers(linked.stateDir))).toEqual([])

      const loose = plantedStack(group)
      fs.chmodSync(loose.record, 0o666)
      expect(await Effect.runPromise(cleanLeftovers(loose.stateDir))).toEqual([])

      expect(alive(group.pid)).toBe(true)
    } finally {
      group.end()
    }
  })

  it.skipIf(process.geteuid?.() !== 0)("as root, nothing is signalled from another user's folder", async () => {
    const group = await victim()
    try {
      const { stateDir } = plantedStack(group)
      fs.chownSync(stateDir, 54_321, 54_321)
      expect(await Effect.runPromise(cleanLeftovers(stateDir))).toEqual([])
      expect(alive(group.pid)).toBe(true)
      // root becomes that user to read them (see below): a record of root's process is then not that user's
      // to act on, and the process lives
      const run = await runCli(["stack", "status", "--dir", join(stateDir, "..")], 30_000)
      expect(run.output).toContain("no stack running")
      expect(alive(group.pid)).toBe(true)
    } finally {
      group.end()
    }
  })

  it("a record of group 0 or 1 names no process", () => {
    const table = [{ pid: 1, ppid: 0, pgid: 1, startTime: 5, state: "S" }] as never
    expect(groupMembers({ service: "a", pid: 1, startTime: 5, notBefore: 0 }, table)).toEqual([])
    expect(groupMembers({ service: "a", pid: 0, startTime: null, notBefore: 0 }, table)).toEqual([])
  })
})

describe("the CLI refuses a .core-stack/ it must not trust, saying why, and leaves the victim and the link's target alone", () => {
  for (const quick of ["1", "0"]) {
    it(`status, down, generate and up -d (CORE_QUICK=${quick})`, async () => {
      const group = await victim()
      try {
        const { dir, stateDir } = plantedStack(group)
        // a supervisor record naming the victim, as `down` would signal it
        const pidFile = join(stateDir, "supervisor.pid")
        fs.writeFileSync(pidFile, JSON.stringify({ pid: group.pid, startTime: group.startTime, dir }), { mode: 0o600 })
        const elsewhere = tempDir("core-trust-target-")
        fs.chmodSync(elsewhere, 0o755)
        fs.renameSync(stateDir, join(elsewhere, "state"))
        fs.symlinkSync(join(elsewhere, "state"), stateDir)
        const env = { CORE_QUICK: quick }
        for (const verb of [["status"], ["down"], ["process", "list"], ["generate"], ["up", "-d"]]) {
          const run = await runCli(["stack", ...verb, "--dir", dir], 60_000, env)
          expect(run.code, `${verb.join(" ")}: ${run.output}`).not.toBe(0)
          expect(run.output, verb.join(" ")).toContain(`${stateDir}: it is a symbolic link`)
        }
        expect(alive(group.pid)).toBe(true)
        expect(fs.readdirSync(join(elsewhere, "state")).sort()).toEqual(["pids", "supervisor.pid"])
        expect(fs.statSync(elsewhere).mode & 0o777).toBe(0o755)

        // the same folder in place, but writable by others
        fs.rmSync(stateDir)
        fs.renameSync(join(elsewhere, "state"), stateDir)
        fs.chmodSync(stateDir, 0o777)
        for (const verb of [["status"], ["down"], ["up", "-d"]]) {
          const run = await runCli(["stack", ...verb, "--dir", dir], 60_000, env)
          expect(run.code, `${verb.join(" ")}: ${run.output}`).not.toBe(0)
          expect(run.output, verb.join(" ")).toContain(`${stateDir}: it is writable by other users (mode 0777)`)
        }
        expect(alive(group.pid)).toBe(true)
        expect(fs.statSync(stateDir).mode & 0o777).toBe(0o777)
      } finally {
        group.end()
      }
    }, 120_000)
  }
})

/**
 * A supervisor whose start fails as a `down` reaches it (its `up` was stopped on request) ends before its answer:
 * the control server answers HTTP 503 as it closes. Played by a Node process that holds the stack directory as
 * a supervisor does (its record, its socket), says hello, and answers `POST /down` with 503 and exits.
 */
const FAKE_SUPERVISOR = `
const fs = require("node:fs"), http = require("node:http"), path = require("node:path")
const dir = process.argv[1], state = path.join(dir, ".core-stack")
const startTime = Number(fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ")[19])
const identity = { pid: process.pid, startTime, dir, services: ["a"] }
fs.mkdirSync(state, { recursive: true, mode: 0o700 })
const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/hello") {
    res.writeHead(200, { "content-type": "application/json" })
    return res.end(JSON.stringify(identity))
  }
  if (req.method === "POST" && req.url === "/down") {
    res.writeHead(503, { "content-type": "text/plain" })
    return res.end("", () => setTimeout(() => process.exit(0), 20))
  }
  res.writeHead(404)
  res.end()
})
server.listen(path.join(state, "control.sock"), () => {
  fs.writeFileSync(path.join(state, "supervisor.pid"), JSON.stringify({ pid: process.pid, startTime, dir }), { mode: 0o600 })
  console.log("listening")
})
`

describe("down, when the supervisor ends without its answer", () => {
  for (const quick of ["1", "0"]) {
    it(`says the stack stopped and exits 0 (CORE_QUICK=${quick})`, async () => {
      const dir = tempDir("core-down-503-")
      fs.mkdirSync(join(dir, "services", "a"), { recursive: true })
      fs.writeFileSync(join(dir, "services", "a", "service.json"), JSON.stringify({ process: { command: "true" } }))
      const fake = spawn(process.execPath, ["-e", FAKE_SUPERVISOR, dir], { stdio: ["ignore", "pipe", "inherit"] })
      try {
        await new Promise<void>((resolve) => fake.stdout!.once("data", () => resolve()))
        const run = await runCli(["stack", "down", "--dir", dir], 60_000, { CORE_QUICK: quick })
        expect(run.output).toContain(`stack in ${dir} stopped (supervisor pid ${fake.pid})`)
        expect(run.code).toBe(0)
        expect(alive(fake.pid!)).toBe(false)
      } finally {
        fake.kill("SIGKILL")
      }
    }, 90_000)
  }
})

/** A stack folder in a folder all may enter, with one service `a` (`sh` sleeping, its command naming the folder). */
const sleepingStack = (prefix: string, name: string) => {
  const parent = tempDir(prefix)
  fs.chmodSync(parent, 0o755)
  const dir = join(parent, name)
  fs.mkdirSync(join(dir, "services", "a"), { recursive: true, mode: 0o755 })
  fs.writeFileSync(
    join(dir, "services", "a", "service.json"),
    JSON.stringify({ process: { command: "sh", args: ["-c", `sleep 600; true # ${dir}`] } }),
    { mode: 0o644 }
  )
  return { parent, dir }
}

/** `core ARGS --dir DIR` run as `uid` (group the same number), with only PATH, NO_COLOR and `env`. */
const coreAs = (uid: number, args: ReadonlyArray<string>, dir: string, env: Record<string, string>) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, [cli, ...args, "--dir", dir], {
      uid,
      gid: uid,
      env: { PATH: process.env["PATH"], NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout!.on("data", (b) => (output += b))
    child.stderr!.on("data", (b) => (output += b))
    child.once("close", (code) => resolve({ code, output }))
  })

/** Ends whatever is left of a test's stack (by its folder in their command lines). */
const endAll = (dir: string) => {
  for (const p of processesMentioning(dir)) {
    try {
      process.kill(p.pid, "SIGKILL")
    } catch {}
  }
}

describe("root at a stack another user runs (as `fly ssh console` logs in)", () => {
  it.skipIf(process.geteuid?.() !== 0)(
    "status and down work, as that user: the stack's records can only make core do what that user may",
    async () => {
      const owner = 54_322
      const { dir } = sleepingStack("core-trust-owner-", "stack")
      for (const p of [dir, join(dir, "services"), join(dir, "services", "a")]) fs.chownSync(p, owner, owner)
      fs.chownSync(join(dir, "services", "a", "service.json"), owner, owner)
      const up = (await coreAs(owner, ["stack", "up", "-d"], dir, { HOME: dir })).code
      try {
        expect(up).toBe(0)
        expect(fs.statSync(join(dir, ".core-stack")).uid).toBe(owner)
        for (const quick of ["1", "0"]) {
          const status = await runCli(["stack", "status", "--dir", dir], 30_000, { CORE_QUICK: quick })
          expect(status.output).toMatch(/^a\s+running\b/m)
          expect(status.code).toBe(0)
        }
        const down = await runCli(["stack", "down", "--dir", dir], 60_000)
        expect(down.output).toContain(`stack in ${dir} stopped`)
        expect(down.code).toBe(0)
        expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true)
      } finally {
        endAll(dir)
      }
    },
    120_000
  )
})

describe("a state folder moved into a volume writable by all (CORE_STATE_DIR, as the Kubernetes pods run)", () => {
  it.skipIf(process.geteuid?.() !== 0)(
    "an unprivileged user runs the stack with its state in a folder it makes there; .core-stack as that volume is refused",
    async () => {
      const user = 54_323
      // the image: root's, readable by all
      const { parent, dir: app } = sleepingStack("core-trust-volume-", "app")
      // the kubelet's emptyDir: root's, writable by all
      const volume = join(parent, "volume")
      fs.mkdirSync(volume)
      fs.chmodSync(volume, 0o777)
      const asUser = (args: ReadonlyArray<string>, env: Record<string, string>) =>
        coreAs(user, args, app, { HOME: volume, CORE_DATA_DIR: join(volume, "data"), ...env })
      const moved = { CORE_STATE_DIR: join(volume, "stack") }
      try {
        const up = await asUser(["stack", "up", "-d"], moved)
        expect(up.code, up.output).toBe(0)
        const state = fs.statSync(join(volume, "stack"))
        expect([state.uid, state.mode & 0o777]).toEqual([user, 0o700])
        expect(fs.existsSync(join(app, ".core-stack"))).toBe(false)
        const status = await asUser(["stack", "status"], moved)
        expect(status.output).toMatch(/^a\s+running\b/m)
        const down = await asUser(["stack", "down"], moved)
        expect(down.code, down.output).toBe(0)
        expect(await eventually(() => processesMentioning(app).length === 0)).toBe(true)

        // the volume mounted as .core-stack itself, as the pods did before: refused, saying why
        fs.renameSync(volume, join(app, ".core-stack"))
        const refused = await asUser(["stack", "up", "-d"], {})
        expect(refused.code).not.toBe(0)
        expect(refused.output).toContain(`${join(app, ".core-stack")}: it belongs to another user (uid 0)`)
      } finally {
        endAll(app)
      }
    },
    120_000
  )
})
