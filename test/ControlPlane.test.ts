/**
 * The control plane end to end: real supervisors started by the built CLI (dist/core.cjs, made by `npm
 * test`'s build step) in temp stack directories, driven by the CLI's verbs. Every test ends by checking that
 * no process of its stack directory is left (supervisor, services, grandchildren, guardian).
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { join, resolve } from "node:path"
import { formatStatusJson, formatStatusTable, formatUptime, StatusJson } from "../src/cli/StackStatus.js"
import { idleWatch, mayJudgeAgain, pollGapFor, progressAgain, SETTLED_IDLE_MS } from "../src/app/DetachedProgress.js"
import { failureIn, progressForwarder, progressOf, STAYED_UP_MS } from "../src/app/StackUpDetached.js"
import type { Activity } from "../src/process/ProcTable.js"
import type { ServiceStatus } from "../src/stack/ServiceStatus.js"
import { eventually, liveProcesses, processesMentioning, withoutForkedCopies } from "./support/Processes.js"
import { statusRow } from "./support/FakeSupervisor.js"
import { tempDir } from "./support/Specs.js"

const cli = resolve(import.meta.dirname, "../dist/core.cjs")
const svcScript = resolve(import.meta.dirname, "fixtures/control/svc.sh")

interface Done {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: string
  readonly stdout: string
  readonly ms: number
}

interface Started {
  readonly child: ChildProcess
  output: string
  readonly done: Promise<Done>
}

const started: Array<Started> = []
const stacks: Array<string> = []

/** Runs `core ARGS --dir DIR` as a child process. */
const startCore = (args: ReadonlyArray<string>, dir: string): Started => {
  const began = Date.now()
  const child = spawn(process.execPath, [cli, ...args, "--dir", dir], {
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  const run: Started = {
    child,
    output: "",
    done: new Promise((r) =>
      child.once("close", (code, signal) => r({ code, signal, output: run.output, stdout, ms: Date.now() - began }))
    )
  }
  child.stdout!.on("data", (b) => {
    run.output += b
    stdout += b
  })
  child.stderr!.on("data", (b) => (run.output += b))
  started.push(run)
  return run
}

/** Runs `core ARGS --dir DIR` to its end. */
const core = (args: ReadonlyArray<string>, dir: string) => startCore(args, dir).done

interface Svc {
  readonly mode?: "fork" | "fail" | "slow"
  readonly dependsOn?: ReadonlyArray<string>
}

/** A stack directory of svc.sh services, each ready when it prints "NAME started". */
const makeStack = (services: Record<string, Svc>) => {
  const dir = join(tempDir("core-ctl-"), "stack")
  fs.mkdirSync(join(dir, "bin"), { recursive: true })
  fs.copyFileSync(svcScript, join(dir, "bin", "svc.sh"))
  fs.chmodSync(join(dir, "bin", "svc.sh"), 0o755)
  for (const [name, svc] of Object.entries(services)) {
    fs.mkdirSync(join(dir, "services", name), { recursive: true })
    const manifest = {
      process: {
        command: "${dir}/../../bin/svc.sh",
        args: svc.mode ? [name, svc.mode] : [name],
        compose: {
          ready_log_line: `^${name} started`,
          shutdown: { timeout_seconds: 2 },
          ...(svc.dependsOn
            ? { depends_on: Object.fromEntries(svc.dependsOn.map((d) => [d, { condition: "process_log_ready" }])) }
            : {})
        }
      }
    }
    fs.writeFileSync(join(dir, "services", name, "service.json"), JSON.stringify(manifest, null, 2))
  }
  stacks.push(dir)
  return dir
}

const stateDir = (dir: string) => join(dir, ".core-stack")

const supervisorPid = (dir: string): number =>
  JSON.parse(fs.readFileSync(join(stateDir(dir), "supervisor.pid"), "utf8")).pid

/** Children of `pid` running the guardian script. */
const guardiansOf = (pid: number) =>
  liveProcesses()
    .filter((p) => {
      try {
        const stat = fs.readFileSync(`/proc/${p.pid}/stat`, "utf8")
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        return ppid === pid && fs.readFileSync(`/proc/${p.pid}/cmdline`, "utf8").includes("trap '' INT HUP PIPE")
      } catch {
        return false
      }
    })
    .map((p) => p.pid)

/** The spawner helper of the supervisor `pid` (`core-spawner`, its services' parent). */
const spawnersOf = (pid: number) =>
  liveProcesses()
    .filter((p) => p.ppid === pid && p.command === "core-spawner")
    .map((p) => p.pid)

const alive = (pid: number) => liveProcesses().some((p) => p.pid === pid)

const statusOf = async (dir: string): Promise<ReadonlyArray<ServiceStatus>> => {
  const run = await core(["stack", "status", "--json"], dir)
  expect(run.code).toBe(0)
  return Schema.decodeUnknownSync(StatusJson)(JSON.parse(run.stdout))
}

const pidsOf = (dir: string, name: string) =>
  withoutForkedCopies(
    processesMentioning(dir)
      .filter((p) => p.cmdline.includes("bin/svc.sh") && p.cmdline.split(" ").includes(name))
      .filter((p) => !p.cmdline.includes("grandchild"))
  ).map((p) => p.pid)

afterEach(async () => {
  for (const run of started.splice(0)) run.child.kill("SIGKILL")
  for (const dir of stacks.splice(0)) {
    try {
      process.kill(supervisorPid(dir), "SIGKILL")
    } catch {}
    // the guardian ends the services; anything else of the directory is a failure the test has reported
    await eventually(() => processesMentioning(dir).length === 0, 15_000)
    for (const p of processesMentioning(dir)) {
      try {
        process.kill(p.pid, "SIGKILL")
      } catch {}
    }
  }
})

/** The test's end: nothing of the stack directory is running, and the guardian is gone. */
const expectNothingLeft = async (dir: string, guardians: ReadonlyArray<number> = []) => {
  expect(await eventually(() => processesMentioning(dir).length === 0, 15_000)).toBe(true)
  expect(processesMentioning(dir)).toEqual([])
  for (const g of guardians) expect(alive(g)).toBe(false)
}

describe("pure parts", () => {
  it("formatUptime", () => {
    expect([0, 45_000, 184_000, 7_500_000, 277_000_000].map(formatUptime)).toEqual([
      "0s",
      "45s",
      "3m04s",
      "2h05m",
      "3d04h"
    ])
  })

  const row = statusRow

  it("formatStatusTable: a note under the table names the services whose log output was dropped", () => {
    const table = formatStatusTable([row({ name: "api", droppedLogBytes: 1234 }), row({ name: "db" })], 0)
    expect(table.split("\n").at(-1)).toBe("log output not written to .core-stack/logs (disk full?): api 1234 bytes")
    expect(formatStatusTable([row({ name: "db" })], 0)).not.toContain("disk full")
  })

  it("formatStatusTable: a note under the table when the supervisor dropped its own output", () => {
    const table = formatStatusTable([row({ name: "db" })], 0, 4096)
    expect(table.split("\n").at(-1)).toBe("supervisor output not written (disk full?): 4096 bytes")
    expect(formatStatusTable([row({ name: "db" })], 0, 0)).not.toContain("disk full")
  })

  it("formatStatusTable: columns, uptime only while alive, CPU and RSS, ports", () => {
    const table = formatStatusTable(
      [
        row({
          name: "nats",
          state: "ready",
          health: "healthy",
          pid: 42,
          startedAt: 1_000,
          ports: { client: 4222, monitor: 8222 },
          cpu: 1.234,
          rss: 23.4 * 1024 * 1024
        }),
        row({ name: "pocketbase", state: "stopped", restarts: 2, cpu: null, rss: null })
      ],
      61_000
    )
    expect(table.split("\n")).toEqual([
      "SERVICE     STATE    HEALTH   PID  RESTARTS  UPTIME  CPU   RSS  PORTS",
      "nats        ready    healthy  42   0         1m00s   1.2%  23M  client=4222,monitor=8222",
      "pocketbase  stopped  none     -    2         -       -     -    -"
    ])
  })

  it("the --json text decodes with the API's Schema", () => {
    const rows = [row({ name: "x", state: "ready", pid: 7, startedAt: 5, ports: { http: 80 } })]
    expect(Schema.decodeUnknownSync(StatusJson)(JSON.parse(formatStatusJson(rows)))).toEqual(rows)
  })

  it("progressOf: a service that restarted has not stayed up; one without readiness check must run 500 ms", () => {
    const looping = row({
      name: "a",
      state: "restarting",
      restarts: 2,
      reason: "exited with code 1; restarting in 500 ms"
    })
    expect(progressOf([looping], [])).toEqual({
      _tag: "Failed",
      service: "a",
      reason: "it has not stayed up: restarted 2 times; exited with code 1; restarting in 500 ms",
      ending: false
    })
    const back = row({ name: "a", state: "running", restarts: 1, reason: "restarted after: exited with code 1" })
    expect(progressOf([back], [])).toMatchObject({
      _tag: "Failed",
      reason: expect.stringContaining("restarted 1 time;")
    })
    const young = row({ name: "a", state: "running", startedAt: 10_000 })
    expect(progressOf([young], [], 10_000 + STAYED_UP_MS - 1)).toEqual({ _tag: "Starting", settling: true })
    expect(progressOf([young], [], 10_000 + STAYED_UP_MS)).toEqual({ _tag: "Ready", services: ["a"] })
    // a young one that has settled (idle) is up; the idle check is asked only once nothing else is left
    const asked: Array<number> = []
    const idleOnes = ({ pid }: { readonly pid: number }) => {
      asked.push(pid)
      return pid === 7
    }
    const settled = row({ name: "a", state: "running", pid: 7, startedAt: 10_000 })
    const busy = row({ name: "b", state: "running", pid: 8, startedAt: 10_000 })
    expect(progressOf([settled], [], 10_001, idleOnes)).toEqual({ _tag: "Ready", services: ["a"] })
    expect(progressOf([settled, busy], [], 10_001, idleOnes)).toEqual({ _tag: "Starting", settling: true })
    expect(progressOf([settled, busy], [], 10_000 + STAYED_UP_MS, idleOnes)).toMatchObject({ _tag: "Ready" })
    asked.length = 0
    expect(progressOf([settled, row({ name: "c", state: "starting" })], [], 10_001, idleOnes)).toEqual({
      _tag: "Starting"
    })
    expect(asked).toEqual([])
  })

  it("idleWatch: settled once two quiet readings are SETTLED_IDLE_MS apart; busy, awake or other threads start over", () => {
    const reading = (busyNs: number, members: string, asleep = true, startTime = 100): Activity => ({
      busyNs,
      members,
      asleep,
      startTime
    })
    let activity: Activity | undefined = reading(5e6, "7")
    let now = 0
    let wallNow = 1
    let living = true
    const aliveAsked: Array<number | undefined> = []
    const idle = idleWatch(
      () => activity,
      () => now,
      (_pid, startTime) => {
        aliveAsked.push(startTime)
        return living
      },
      () => wallNow
    )
    // a span is judged once due: the next poll is timed from the first reading of a span, not the last
    expect(idle.waitMs()).toBe(SETTLED_IDLE_MS)
    expect(idle({ pid: 8, startedAt: 1 })).toBe(false)
    now = 10
    expect(idle.waitMs()).toBe(SETTLED_IDLE_MS - 10)
    expect(pollGapFor({ _tag: "Starting", settling: true }, idle).least).toBeGreaterThanOrEqual(SETTLED_IDLE_MS - 10)
    expect(pollGapFor({ _tag: "Starting" }, idle).least).toBeLessThan(SETTLED_IDLE_MS - 10)
    // never a wait shorter than a few ms, whatever is overdue
    now = 10 * SETTLED_IDLE_MS
    expect(idle.waitMs()).toBeGreaterThanOrEqual(10)
    // the span of a service no longer young is dropped: it is not asked again
    wallNow = 1 + STAYED_UP_MS
    expect(idle.waitMs()).toBe(SETTLED_IDLE_MS)
    wallNow = 1
    const p = { pid: 7, startedAt: 1 }
    // each step: the reading, its time in idle spans, and the verdict
    const steps: ReadonlyArray<readonly [Activity, number, boolean]> = [
      [reading(5e6, "7"), 0, false],
      [reading(5e6, "7"), 0.98, false],
      // ran 10 ms: the quiet span starts again
      [reading(15e6, "7"), 1, false],
      // a thread runnable at the reading (maybe starved of the CPU, which schedstat shows only later): not quiet
      [reading(15e6, "7", false), 2, false],
      [reading(15e6, "7"), 3, false],
      // a new child: starts again
      [reading(15e6, "7 9"), 4, false],
      // less than it had (a thread ended, or another process): starts again
      [reading(14e6, "7 9"), 5, false],
      // another process under the same pid (its start time): starts again
      [reading(14e6, "7 9", true, 101), 6, false],
      [reading(14e6, "7 9", true, 101), 7, true]
    ]
    for (const [next, spans, verdict] of steps) {
      activity = next
      now = spans * SETTLED_IDLE_MS
      expect(idle(p), `at ${spans} spans`).toBe(verdict)
    }
    // settled: only its life (as the same process) is checked from then on; the same pid started anew is another
    activity = undefined
    expect(idle(p)).toBe(true)
    expect(aliveAsked).toEqual([101])
    expect(idle({ pid: 7, startedAt: 2 })).toBe(false)
    living = false
    expect(idle(p)).toBe(false)
    living = true
    activity = reading(14e6, "7 9")
    expect(idle(p)).toBe(false)
  })

  it("mayJudgeAgain: only while the rows are young, the supervisor lives and has noted nothing since", () => {
    const log = join(tempDir("core-judge-"), "supervisor.log")
    fs.writeFileSync(log, "a    | [core] running\n")
    const from = fs.statSync(log).size
    const since = performance.now()
    expect(mayJudgeAgain(since, process.pid, log, from)).toBe(true)
    // what a service prints, a trace line and the supervisor's ready line do not count
    fs.appendFileSync(log, "a    | listening on 80\ncore trace   +1 ms  x\ncore: 1 service(s) ready in 5 ms\n")
    expect(mayJudgeAgain(since, process.pid, log, from)).toBe(true)
    expect(mayJudgeAgain(since - STAYED_UP_MS, process.pid, log, from)).toBe(false)
    expect(mayJudgeAgain(since, 999_999_999, log, from)).toBe(false)
    expect(mayJudgeAgain(since, undefined, log, from)).toBe(false)
    // a transition of a service, or a line of the supervisor's own
    fs.appendFileSync(log, "a    | [core] stopping\n")
    expect(mayJudgeAgain(since, process.pid, log, from)).toBe(false)
    expect(mayJudgeAgain(since, process.pid, log, fs.statSync(log).size)).toBe(true)
    fs.appendFileSync(log, "core: stopping every service\n")
    expect(mayJudgeAgain(since, process.pid, log, from)).toBe(false)
  })

  it("progressAgain: the previous rows are ready again only while every service's process lives", () => {
    const old = Date.now() - 10 * STAYED_UP_MS
    const living = row({ name: "a", state: "running", pid: process.pid, startedAt: old })
    // no such pid (above any pid_max)
    const gone = row({ name: "b", state: "ready", pid: 999_999_999, startedAt: old })
    expect(progressAgain([living], [], () => false)).toEqual({ _tag: "Ready", services: ["a"] })
    expect(progressAgain([living, gone], [], () => false)).toBeUndefined()
    const young = row({ name: "c", state: "running", pid: process.pid, startedAt: Date.now() })
    // still settling, everything alive: judged again without asking; one gone: the supervisor is asked
    expect(progressAgain([living, young], [], () => false)).toEqual({ _tag: "Starting", settling: true })
    expect(progressAgain([young, gone], [], () => false)).toBeUndefined()
    expect(progressAgain([row({ name: "d", state: "starting" })], [], () => true)).toBeUndefined()
    expect(progressAgain([living, young], [], () => true)).toMatchObject({ _tag: "Ready" })
  })

  it("progressOf: ready when every wanted and launched service settled; failed names the service", () => {
    const up = [row({ name: "a", state: "ready" }), row({ name: "b", state: "running" }), row({ name: "c" })]
    expect(progressOf(up, ["b"])).toEqual({ _tag: "Ready", services: ["a", "b"] })
    expect(progressOf(up, [])).toEqual({ _tag: "Starting" })
    expect(progressOf([row({ name: "a", state: "starting" })], [])).toEqual({ _tag: "Starting" })
    expect(
      progressOf([row({ name: "a", state: "disabled" }), row({ name: "b", state: "completed", exitCode: 0 })], [])
    ).toEqual({
      _tag: "Ready",
      services: ["b"]
    })
    expect(
      progressOf(
        [row({ name: "a", state: "failed", reason: "exited with code 7" }), row({ name: "b", state: "skipped" })],
        []
      )
    ).toEqual({
      _tag: "Failed",
      service: "a",
      reason: "exited with code 7"
    })
  })

  it("progressForwarder: the supervisor's own complete lines since the start, until a service line", () => {
    const file = join(tempDir("core-fwd-"), "supervisor.log")
    fs.writeFileSync(file, "old run line\n")
    const next = progressForwarder(file, fs.statSync(file).size)
    expect(next()).toEqual([])
    fs.appendFileSync(file, "provisioning nats: downloading\nbuilding pocket")
    expect(next()).toEqual(["provisioning nats: downloading"])
    fs.appendFileSync(file, "base with go\n\nnats | [core] pending\nlater note\n")
    expect(next()).toEqual(["building pocketbase with go"])
    fs.appendFileSync(file, "more\n")
    expect(next()).toEqual([])
    // the supervisor's own ready line ends the progress too, unshown (it says "Ctrl-C to stop")
    fs.writeFileSync(file, "")
    const again = progressForwarder(file, 0)
    fs.appendFileSync(
      file,
      "provisioning nats: checked\ncore: 1 service(s) ready in 84 ms (provisioning 1 ms, start 83 ms); Ctrl-C to stop\nlater\n"
    )
    expect(again()).toEqual(["provisioning nats: checked"])
    expect(again()).toEqual([])
  })

  it("failureIn: the supervisor's last report of a failed start", () => {
    const lines = ["a    | [core] ready", "core: db failed to start: exited with code 7", "last lines of db:", "  boom"]
    expect(failureIn(lines)).toEqual({ service: "db", reason: "exited with code 7" })
    expect(failureIn(["db   | core: db failed to start: fake"])).toBeUndefined()
  })
})

describe("core stack (control plane, end to end)", () => {
  it("up -d, status, a second up refused, socket mode, down; then every verb says no stack", async () => {
    const dir = makeStack({ a: {}, b: { dependsOn: ["a"] }, c: { dependsOn: ["b"] } })
    const up = await core(["stack", "up", "-d"], dir)
    expect(up.output).toContain("3 service(s) ready")
    expect(up.code).toBe(0)
    const supervisor = supervisorPid(dir)
    const guardians = guardiansOf(supervisor)
    expect(guardians.length).toBe(1)

    const rows = await statusOf(dir)
    expect(rows.map((r) => [r.name, r.state])).toEqual([
      ["a", "ready"],
      ["b", "ready"],
      ["c", "ready"]
    ])
    for (const r of rows) expect(pidsOf(dir, r.name)).toEqual([r.pid])
    const table = await core(["stack", "status"], dir)
    expect(table.stdout.split("\n")[0]).toMatch(
      /^SERVICE\s+STATE\s+HEALTH\s+PID\s+RESTARTS\s+UPTIME\s+CPU\s+RSS\s+PORTS$/
    )
    // every live service's group is measured within two sampling intervals (CPU needs two readings)
    let measured = rows
    for (let i = 0; i < 50 && !measured.every((r) => (r.rss ?? 0) > 0 && typeof r.cpu === "number"); i++) {
      await new Promise((r) => setTimeout(r, 100))
      measured = await statusOf(dir)
    }
    for (const r of measured) {
      expect(r.rss, r.name).toBeGreaterThan(1024 * 1024)
      expect(r.cpu, r.name).toBeGreaterThanOrEqual(0)
    }
    const list = await core(["stack", "process", "list", "--json"], dir)
    expect(Schema.decodeUnknownSync(StatusJson)(JSON.parse(list.stdout)).map((r) => r.name)).toEqual(["a", "b", "c"])

    expect(fs.statSync(join(stateDir(dir), "control.sock")).mode & 0o777).toBe(0o600)
    expect(fs.statSync(stateDir(dir)).mode & 0o777).toBe(0o700)

    const again = await core(["stack", "up", "-d"], dir)
    expect(again.code).not.toBe(0)
    expect(again.output).toContain(`a stack is already running in ${dir}`)
    const foreground = await core(["stack", "up"], dir)
    expect(foreground.code).not.toBe(0)
    expect(foreground.output).toContain("already running")
    expect(alive(supervisor)).toBe(true)

    const down = await core(["stack", "down"], dir)
    expect(down.code).toBe(0)
    // down returns when every process has exited
    expect(processesMentioning(dir)).toEqual([])
    expect(alive(supervisor)).toBe(false)
    expect(fs.existsSync(join(stateDir(dir), "control.sock"))).toBe(false)
    expect(fs.existsSync(join(stateDir(dir), "supervisor.pid"))).toBe(false)
    await expectNothingLeft(dir, guardians)
  })

  it("down of a stack with nothing left running says it stopped it (the supervisor ends as it answers)", async () => {
    // the supervisor has nothing to stop: it ends as it answers
    for (let round = 0; round < 5; round++) {
      const dir = join(tempDir("core-ctl-"), "stack")
      fs.mkdirSync(join(dir, "services", "once"), { recursive: true })
      const once = { command: "sh", args: ["-c", "echo once started"], compose: { ready_log_line: "^once started" } }
      fs.writeFileSync(join(dir, "services", "once", "service.json"), JSON.stringify({ process: once }))
      stacks.push(dir)
      const up = await core(["stack", "up", "-d"], dir)
      expect(up.code, up.output).toBe(0)
      const supervisor = supervisorPid(dir)
      const down = await core(["stack", "down"], dir)
      expect(down.code, down.output).toBe(0)
      expect(down.stdout).toContain(`stack in ${dir} stopped (supervisor pid ${supervisor})`)
      expect(alive(supervisor)).toBe(false)
    }
  })

  it("a down whose client goes away before the answer still ends the supervisor, and nothing is left", async () => {
    const dir = makeStack({ a: {}, b: {} })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    const supervisor = supervisorPid(dir)
    const guardians = guardiansOf(supervisor)
    // the request, then the connection closed at once (a Ctrl-C of `core stack down`)
    await new Promise<void>((done, fail) => {
      const socket = net.connect(join(stateDir(dir), "control.sock"), () => {
        socket.write("POST /down HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n", () => {
          socket.destroy()
          done()
        })
      })
      socket.once("error", fail)
    })
    expect(await eventually(() => !alive(supervisor), 15_000)).toBe(true)
    await expectNothingLeft(dir, guardians)
  })

  it("two up -d at once: one supervisor wins, the other says the stack is running", async () => {
    const dir = makeStack({ a: {} })
    const [one, two] = await Promise.all([core(["stack", "up", "-d"], dir), core(["stack", "up", "-d"], dir)])
    const codes = [one!.code, two!.code].sort()
    expect(codes).toEqual([0, 1])
    const loser = one!.code === 0 ? two! : one!
    expect(loser.output).toContain("already running")
    const supervisors = processesMentioning(dir).filter((p) => p.cmdline.includes("stack up"))
    expect(supervisors.map((p) => p.pid)).toEqual([supervisorPid(dir)])
    expect(pidsOf(dir, "a").length).toBe(1)
    expect((await core(["stack", "down"], dir)).code).toBe(0)
    await expectNothingLeft(dir)
  })

  it("a foreground up serves the verbs too, and down from another terminal ends it", async () => {
    const dir = makeStack({ a: {}, b: { dependsOn: ["a"] } })
    const foreground = startCore(["stack", "up"], dir)
    expect(await eventually(() => foreground.output.includes("service(s) ready"), 30_000)).toBe(true)
    const supervisor = supervisorPid(dir)
    expect(supervisor).toBe(foreground.child.pid)
    const guardians = guardiansOf(supervisor)
    expect((await statusOf(dir)).map((r) => r.state)).toEqual(["ready", "ready"])
    expect((await core(["stack", "process", "restart", "b"], dir)).code).toBe(0)
    expect(foreground.output).toMatch(/b\s+\| b started \(pid \d+\)[\s\S]*b\s+\| b started/)
    const down = await core(["stack", "down"], dir)
    expect(down.code).toBe(0)
    const end = await foreground.done
    expect(end.code).toBe(0)
    await expectNothingLeft(dir, guardians)
  })

  it("every client verb without a supervisor: one line, non-zero, at once", async () => {
    const dir = makeStack({ a: {} })
    const verbs = [
      ["stack", "status"],
      ["stack", "status", "--json"],
      ["stack", "down"],
      ["stack", "process", "list"],
      ["stack", "process", "logs", "a"],
      ["stack", "process", "logs", "a", "-f"],
      ["stack", "process", "restart", "a"],
      ["stack", "process", "stop", "a"],
      ["stack", "process", "start", "a"]
    ]
    const runs = await Promise.all(verbs.map((v) => core(v, dir)))
    for (const run of runs) {
      expect(run.code).toBe(1)
      expect(run.output).toBe(`core: no stack running in ${dir} (start one with: core stack up -d)\n`)
      // "at once": a hang would be caught here (the bound is generous for a loaded machine)
      expect(run.ms).toBeLessThan(10_000)
    }
    await expectNothingLeft(dir)
  })

  it("a stale socket and pid file: detected, cleaned, never a hang; up works after", async () => {
    const dir = makeStack({ a: {} })
    fs.mkdirSync(stateDir(dir), { mode: 0o700 })
    const socket = join(stateDir(dir), "control.sock")
    // a listener killed with SIGKILL leaves its socket file behind
    const ghost = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socket)})`])
    expect(await eventually(() => fs.existsSync(socket))).toBe(true)
    ghost.kill("SIGKILL")
    await new Promise((r) => ghost.once("exit", r))
    expect(fs.statSync(socket).isSocket()).toBe(true)
    expect(await new Promise((r) => net.connect(socket).once("error", (e: NodeJS.ErrnoException) => r(e.code)))).toBe(
      "ECONNREFUSED"
    )
    fs.writeFileSync(join(stateDir(dir), "supervisor.pid"), JSON.stringify({ pid: ghost.pid, startTime: 1, dir }))

    const status = await core(["stack", "status"], dir)
    expect(status.code).toBe(1)
    expect(status.output).toContain("no stack running")
    expect(fs.existsSync(socket)).toBe(false)
    expect(fs.existsSync(join(stateDir(dir), "supervisor.pid"))).toBe(false)

    // and with only a stale socket (no pid file), up takes the directory over
    const ghost2 = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socket)})`])
    expect(await eventually(() => fs.existsSync(socket))).toBe(true)
    ghost2.kill("SIGKILL")
    await new Promise((r) => ghost2.once("exit", r))
    const up = await core(["stack", "up", "-d"], dir)
    expect(up.code).toBe(0)
    expect((await statusOf(dir)).map((r) => r.state)).toEqual(["ready"])
    expect((await core(["stack", "down"], dir)).code).toBe(0)
    await expectNothingLeft(dir)
  })

  it("stop takes dependents first, start waits for dependency conditions, restart keeps dependents", async () => {
    const dir = makeStack({ a: {}, b: { dependsOn: ["a"] }, c: { dependsOn: ["b"] }, d: {} })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    const before = await statusOf(dir)
    const pidOf = (rows: ReadonlyArray<ServiceStatus>, name: string) => rows.find((r) => r.name === name)!.pid

    const restart = await core(["stack", "process", "restart", "a"], dir)
    expect(restart.code).toBe(0)
    expect(restart.stdout).toMatch(/^a: ready \(pid \d+, restarts 1\)/)
    const afterRestart = await statusOf(dir)
    expect(pidOf(afterRestart, "a")).not.toBe(pidOf(before, "a"))
    expect(pidOf(afterRestart, "b")).toBe(pidOf(before, "b"))
    expect(pidOf(afterRestart, "c")).toBe(pidOf(before, "c"))
    expect(pidsOf(dir, "a")).toEqual([pidOf(afterRestart, "a")])

    const stop = await core(["stack", "process", "stop", "b"], dir)
    expect(stop.code).toBe(0)
    const afterStop = await statusOf(dir)
    expect(afterStop.map((r) => [r.name, r.state])).toEqual([
      ["a", "ready"],
      ["b", "stopped"],
      ["c", "stopped"],
      ["d", "ready"]
    ])
    expect(pidsOf(dir, "b")).toEqual([])
    expect(pidsOf(dir, "c")).toEqual([])
    // c (the dependent) has stopped before b begins to stop: the supervisor's output is in order
    const out = fs.readFileSync(join(stateDir(dir), "supervisor.log"), "utf8")
    const cStopped = out.lastIndexOf("c    | [core] stopped")
    const bStopping = out.lastIndexOf("b    | [core] stopping")
    expect(cStopped).toBeGreaterThan(0)
    expect(bStopping).toBeGreaterThan(cStopped)
    const logC = await core(["stack", "process", "logs", "c", "-n", "2"], dir)
    expect(logC.stdout).toMatch(/\[core\] stopping\n\[core\] stopped: stopped on request\n$/)

    const early = await core(["stack", "process", "start", "c"], dir)
    expect(early.code).toBe(1)
    expect(early.output).toContain("c failed to start")
    expect(early.output).toContain("dependency b")
    expect((await core(["stack", "process", "start", "b"], dir)).code).toBe(0)
    const startC = await core(["stack", "process", "start", "c"], dir)
    expect(startC.code).toBe(0)
    expect(startC.stdout).toMatch(/^c: ready/)

    const unknown = await core(["stack", "process", "restart", "nope"], dir)
    expect(unknown.code).toBe(1)
    expect(unknown.output).toContain('unknown service "nope"')

    expect((await core(["stack", "down"], dir)).code).toBe(0)
    await expectNothingLeft(dir)
  })

  it("start waits for its dependency's condition while the dependency is starting", async () => {
    const dir = makeStack({ a: { mode: "slow" }, b: { dependsOn: ["a"] } })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    expect((await core(["stack", "process", "stop", "a"], dir)).code).toBe(0)
    const startA = startCore(["stack", "process", "start", "a"], dir)
    expect(
      await eventually(
        () => fs.readFileSync(join(stateDir(dir), "supervisor.log"), "utf8").endsWith("a    | [core] starting\n"),
        10_000
      )
    ).toBe(true)
    const startB = await core(["stack", "process", "start", "b"], dir)
    expect(startB.code).toBe(0)
    expect(startB.stdout).toMatch(/^b: ready/)
    expect((await startA.done).code).toBe(0)
    const out = fs.readFileSync(join(stateDir(dir), "supervisor.log"), "utf8")
    // b was asked while a was starting, and started only once a was ready
    expect(out.lastIndexOf("b    | [core] starting")).toBeGreaterThan(out.lastIndexOf("a    | [core] ready"))
    expect((await statusOf(dir)).map((r) => r.state)).toEqual(["ready", "ready"])
    expect((await core(["stack", "down"], dir)).code).toBe(0)
    await expectNothingLeft(dir)
  })

  it("logs -n N, and --follow across restarts until interrupted", async () => {
    const dir = makeStack({ a: {} })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    const one = await core(["stack", "process", "logs", "a", "-n", "1"], dir)
    expect(one.code).toBe(0)
    expect(one.stdout.trimEnd().split("\n").length).toBe(1)
    const all = await core(["stack", "process", "logs", "a"], dir)
    expect(all.stdout).toMatch(/a started \(pid \d+\)/)

    // following from the last line: its arrival shows the follow is connected (a fixed wait raced a busy machine)
    const follower = startCore(["stack", "process", "logs", "a", "--follow", "-n", "1"], dir)
    expect(await eventually(() => follower.output.length > 0, 20_000)).toBe(true)
    const seen = follower.output.length
    expect((await core(["stack", "process", "restart", "a"], dir)).code).toBe(0)
    expect((await core(["stack", "process", "restart", "a"], dir)).code).toBe(0)
    const startedSince = () => (follower.output.slice(seen).match(/a started/g) ?? []).length
    expect(await eventually(() => startedSince() >= 2, 30_000)).toBe(true)
    expect(follower.child.exitCode).toBeNull()
    follower.child.kill("SIGINT")
    const end = await follower.done
    expect(end.code).toBe(0)

    expect((await core(["stack", "down"], dir)).code).toBe(0)
    await expectNothingLeft(dir)
  })

  it("twenty concurrent restarts end with exactly one instance running", async () => {
    const dir = makeStack({ a: {}, b: { dependsOn: ["a"] } })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    const runs = await Promise.all(Array.from({ length: 20 }, () => core(["stack", "process", "restart", "a"], dir)))
    for (const run of runs) expect(run.code).toBe(0)
    const rows = await statusOf(dir)
    const a = rows.find((r) => r.name === "a")!
    expect(a.state).toBe("ready")
    expect(a.restarts).toBe(20)
    expect(pidsOf(dir, "a")).toEqual([a.pid])
    expect((await core(["stack", "down"], dir)).code).toBe(0)
    await expectNothingLeft(dir)
  })

  it("up -d with a failing service: non-zero, names the service, the reason and its last lines; nothing left", async () => {
    const dir = makeStack({ a: {}, db: { mode: "fail", dependsOn: ["a"] } })
    const up = await core(["stack", "up", "-d"], dir)
    expect(up.code).not.toBe(0)
    expect(up.output).toMatch(/^core: db failed to start: exited with code 7\n/)
    expect(up.output).toContain("db cannot open its database")
    expect(fs.existsSync(join(stateDir(dir), "supervisor.pid"))).toBe(false)
    await expectNothingLeft(dir)
    const status = await core(["stack", "status"], dir)
    expect(status.output).toContain("no stack running")
  })

  it("Ctrl-C while up -d waits stops the background supervisor too", async () => {
    const dir = makeStack({ a: {}, b: { mode: "slow", dependsOn: ["a"] } })
    const up = startCore(["stack", "up", "-d"], dir)
    expect(
      await eventually(() => {
        try {
          return fs.readFileSync(join(stateDir(dir), "supervisor.log"), "utf8").includes("b    | [core] starting")
        } catch {
          return false
        }
      }, 20_000)
    ).toBe(true)
    up.child.kill("SIGINT")
    const end = await up.done
    expect(end.code).not.toBeNull()
    await expectNothingLeft(dir)
    expect(fs.existsSync(join(stateDir(dir), "supervisor.pid"))).toBe(false)
  })

  it("kill -9 of the supervisor: services and their grandchildren are gone within 2 s", async () => {
    const dir = makeStack({ a: { mode: "fork" }, b: { mode: "fork", dependsOn: ["a"] } })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    const supervisor = supervisorPid(dir)
    const guardians = guardiansOf(supervisor)
    expect(guardians.length).toBe(1)
    const grandchildren = processesMentioning(dir).filter((p) => p.cmdline.includes("grandchild"))
    expect(grandchildren.length).toBe(2)

    process.kill(supervisor, "SIGKILL")
    expect(await eventually(() => processesMentioning(dir).length === 0, 15_000)).toBe(true)
    await expectNothingLeft(dir, guardians)

    // the next command cleans the dead supervisor's files and says so in one line
    const status = await core(["stack", "status"], dir)
    expect(status.output).toContain("no stack running")
    expect(fs.existsSync(join(stateDir(dir), "supervisor.pid"))).toBe(false)
    expect(fs.existsSync(join(stateDir(dir), "control.sock"))).toBe(false)
  })

  /**
   * A stack of one service (which forks a grandchild) started with `up -d`, then its supervisor and spawner
   * SIGKILLed, and the guardian too when `guardianToo`: the supervisor stopped first, so that it does not see its
   * spawner die (it would kill the spawner's groups itself).
   */
  const crashed = async (guardianToo: boolean) => {
    const dir = makeStack({ a: { mode: "fork" } })
    expect((await core(["stack", "up", "-d"], dir)).code).toBe(0)
    const supervisor = supervisorPid(dir)
    const guardian = guardiansOf(supervisor)[0]!
    const spawner = spawnersOf(supervisor)[0]!
    expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(2) // a and its grandchild, at least
    process.kill(supervisor, "SIGSTOP")
    process.kill(spawner, "SIGKILL")
    if (guardianToo) process.kill(guardian, "SIGKILL")
    process.kill(supervisor, "SIGKILL")
    return { dir, supervisor, guardian, spawner }
  }

  it("a supervisor and its spawner killed together: the guardian ends what the spawner started", async () => {
    const { dir, guardian } = await crashed(false)
    // no other command runs: the guardian alone ends them, and then itself
    expect(await eventually(() => processesMentioning(dir).length === 0 && !alive(guardian))).toBe(true)
    await expectNothingLeft(dir)
  })

  it("leftovers of an older crash (guardian gone too) are ended by the next command", async () => {
    // all three at once (a crash of the machine's side that takes everything of core)
    const { dir, supervisor, guardian, spawner } = await crashed(true)
    expect(await eventually(() => !alive(supervisor) && !alive(guardian) && !alive(spawner))).toBe(true)
    const leftovers = processesMentioning(dir)
    expect(leftovers.length).toBe(2) // a and its grandchild

    const status = await core(["stack", "status"], dir)
    expect(status.code).toBe(1)
    expect(status.output).toContain("no stack running")
    await expectNothingLeft(dir)
    expect(fs.readdirSync(join(stateDir(dir), "pids"))).toEqual([])
  })
})
