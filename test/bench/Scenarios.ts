/**
 * The measurements: each scenario runs one stack under one orchestrator (or the floor, the same servers
 * without any orchestrator) and returns raw samples. `bench.ts` repeats them and builds the table.
 */
import { Effect, Stream } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { LogFollower } from "./LogFollower.js"
import type { Orchestrator, Running } from "./Orchestrators.js"
import {
  answers200,
  cpuMs,
  helperPids,
  exitOf,
  freePorts,
  membersOf,
  isAlive,
  killGroup,
  killPid,
  launch,
  now,
  run,
  sleep,
  statusMb,
  waitAllGone
} from "./Proc.js"
import { recordedGroups as recordedBy } from "../../src/state/StateRecords.js"
import { DEFAULT_SAMPLE_INTERVAL_MS, HISTORY_MS, makeResourceSampler } from "../../src/supervisor/ResourceSampler.js"
import { type BenchService, coreCommand, httpService, PORT_PLACEHOLDER, type StackDir, writeStack } from "./Stacks.js"

/** Everything started, so that nothing outlives the benchmark, whatever happens. */
export class Cleanup {
  private readonly groups = new Set<number>()
  private readonly running = new Set<Running>()
  private readonly stacks = new Set<StackDir>()

  /** Remembers a process group (a service, a floor server, a supervisor). */
  group(pgid: number | undefined): void {
    if (pgid !== undefined && pgid > 0) this.groups.add(pgid)
  }
  /** Remembers a running stack (its services' groups too, once known). */
  stack(running: Running): void {
    this.running.add(running)
    this.group(running.supervisorPid)
  }
  /**
   * A running stack that was stopped cleanly: its groups that are gone are forgotten at once. Pid numbers come
   * round quickly (pid_max is often 32768, and a curve spawns thousands): a group id kept for the final sweep
   * could by then belong to someone else's processes.
   */
  stopped(running: Running): void {
    this.running.delete(running)
    const live = membersOf(this.groups)
    for (const g of this.groups) if (!live.has(g)) this.groups.delete(g)
  }
  /** Remembers a temp stack directory. */
  dir(stack: StackDir): StackDir {
    this.stacks.add(stack)
    return stack
  }
  /** Adds the current services' groups of `running`. */
  async track(running: Running): Promise<void> {
    for (const s of await running.states()) this.group(s.pid ?? undefined)
  }

  /** Kills whatever is left; returns the processes that were still there (`pid (group g)`). */
  async finish(): Promise<ReadonlyArray<string>> {
    for (const running of this.running) running.abort()
    const leftOver = () => [...membersOf(this.groups)].flatMap(([g, pids]) => pids.map((pid) => `${pid} (group ${g})`))
    let left = leftOver()
    for (let i = 0; i < 40 && left.length > 0; i++) {
      await sleep(50)
      left = leftOver()
    }
    for (const g of membersOf(this.groups).keys()) killGroup(g)
    for (const stack of this.stacks) stack.remove()
    return left
  }
}

/** The bench's settings (see `bench.ts --help`). */
export interface Settings {
  readonly runs: number
  /** Services of the scale scenario. */
  readonly scale: number
  /** Lines of the log scenario. */
  readonly lines: number
  /** Seconds of the idle CPU window. */
  readonly idleSeconds: number
  /** Kills per run of the restart scenario, CLI calls per run of the CLI scenario. */
  readonly repeats: number
  readonly binary: string
}

/** Ready delays of the chain's three levels, first to last. */
export const CHAIN_DELAYS = [100, 200, 300] as const
/** The restart scenario's service start time (ready after this long). */
export const RESTART_DELAY = 100

/** Polls `check` every `everyMs` until it is true (a rejection counts as false); rejects after `timeoutMs`. */
const until = async (check: () => Promise<boolean>, everyMs: number, timeoutMs: number, what: string) => {
  const deadline = now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(everyMs)
  }
}

/** Starts `service` directly (no orchestrator) in its own group. */
const launchDirect = (cleanup: Cleanup, binary: string, service: BenchService): ChildProcess => {
  const args = service.args.map((a) => a.replace(PORT_PLACEHOLDER, String(service.port)))
  const child = launch(binary, args)
  cleanup.group(child.pid)
  return child
}

const stopDirect = async (children: ReadonlyArray<ChildProcess>): Promise<number> => {
  const began = now()
  for (const child of children) killPid(child.pid!, "SIGTERM")
  await Promise.all(children.map(exitOf))
  return now() - began
}

// ---------------------------------------------------------------------------------------------------------
// 1. ready latency of a 3-level chain, and 4. the CLI round trip on it

/** A chain stack: c depends on b, b on a (each `process_healthy`), ready after `CHAIN_DELAYS`. */
export const chainStack = async (cleanup: Cleanup, binary: string): Promise<StackDir> => {
  const [pa, pb, pc] = await freePorts(3)
  return cleanup.dir(
    writeStack("chain", binary, [
      httpService("a", pa!, CHAIN_DELAYS[0]),
      httpService("b", pb!, CHAIN_DELAYS[1], { dependsOn: "a" }),
      httpService("c", pc!, CHAIN_DELAYS[2], { dependsOn: "b" })
    ])
  )
}

/** The floor of the chain: the same servers started one after the other, each polled every 5 ms. */
export const chainFloor = async (cleanup: Cleanup, settings: Settings, stack: StackDir): Promise<number> => {
  const children: Array<ChildProcess> = []
  const began = now()
  try {
    for (const service of stack.services) {
      children.push(launchDirect(cleanup, settings.binary, service))
      await until(() => answers200(service.port!), 5, 10_000, `${service.name} directly`)
    }
    return now() - began
  } finally {
    await stopDirect(children)
  }
}

/** `up` of the chain: time to all ready; then `repeats` status CLI round trips; then down. */
export const chainRun = async (
  cleanup: Cleanup,
  settings: Settings,
  orchestrator: Orchestrator,
  stack: StackDir
): Promise<{ readonly readyMs: number; readonly cliMs: ReadonlyArray<number> }> => {
  const { running, readyMs } = await orchestrator.up(stack, { pollMs: 5 })
  cleanup.stack(running)
  await cleanup.track(running)
  const cliMs: Array<number> = []
  for (let i = 0; i < settings.repeats; i++) cliMs.push(await running.statusCli())
  await running.down()
  cleanup.stopped(running)
  return { readyMs, cliMs }
}

/** `node -e 0`: the floor of any Node CLI. */
export const nodeFloor = async (): Promise<number> => (await run(process.execPath, ["-e", "0"])).ms

// ---------------------------------------------------------------------------------------------------------
// 0. `up -d` against the foreground `up`, one service

/** One HTTP service, ready at once. */
export const detachStack = async (cleanup: Cleanup, settings: Settings): Promise<StackDir> => {
  const [port] = await freePorts(1)
  return cleanup.dir(writeStack("detach", settings.binary, [httpService("svc", port!, 0)]))
}

/** The process groups core records in `.core-stack/pids/` (its journals, `GroupJournal`). */
const recordedGroups = (stack: StackDir): ReadonlyArray<number> =>
  recordedBy(path.join(stack.dir, ".core-stack")).map((record) => record.pid)

/**
 * `core stack up` in the foreground: the time from the command to its "ready" line; then Ctrl-C (SIGINT),
 * waiting until it and its services have exited.
 */
export const foregroundRun = async (cleanup: Cleanup, stack: StackDir): Promise<number> => {
  const began = now()
  const child = spawn(...coreCommand("stack", "up", "--dir", stack.dir), {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, NO_COLOR: "1" }
  })
  cleanup.group(child.pid)
  let stderr = ""
  const readyMs = await new Promise<number>((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
      if (/service\(s\) ready in/.test(stderr)) resolve(now() - began)
    })
    child.once("exit", (code) => reject(new Error(`core stack up exited ${code} before ready:\n${stderr}`)))
  })
  const groups = recordedGroups(stack)
  for (const g of groups) cleanup.group(g)
  killPid(child.pid!, "SIGINT")
  await exitOf(child)
  await waitAllGone(groups, now(), { timeoutMs: 15_000 })
  return readyMs
}

/** `core stack up -d` of the same stack: the time until it returns, every service ready; then down. */
export const detachedRun = async (cleanup: Cleanup, orchestrator: Orchestrator, stack: StackDir): Promise<number> => {
  const { running, readyMs } = await orchestrator.up(stack, { pollMs: 5 })
  cleanup.stack(running)
  await cleanup.track(running)
  await running.down()
  cleanup.stopped(running)
  return readyMs
}

// ---------------------------------------------------------------------------------------------------------
// 2. scale and 3. shutdown

/** `size` independent services on free ports, named `<prefix>001`...; `service` makes each from its name and port. */
const manyStack = async (
  cleanup: Cleanup,
  settings: Settings,
  label: string,
  size: number,
  service: (name: string, port: number) => BenchService
): Promise<StackDir> => {
  const ports = await freePorts(size)
  const width = String(size).length
  const prefix = label.charAt(0)
  return cleanup.dir(
    writeStack(
      label,
      settings.binary,
      ports.map((port, i) => service(`${prefix}${String(i + 1).padStart(width, "0")}`, port))
    )
  )
}

/** `settings.scale` independent HTTP services, each with a readiness probe, ready at once. */
export const scaleStack = (cleanup: Cleanup, settings: Settings): Promise<StackDir> =>
  manyStack(cleanup, settings, "scale", settings.scale, (name, port) => httpService(name, port, 0))

/**
 * A stack of the scaling curve: `size` independent HTTP services ready at once, each with a readiness and a
 * liveness probe (so that the idle window measures what watching them costs).
 */
export const curveStack = (cleanup: Cleanup, settings: Settings, size: number): Promise<StackDir> =>
  manyStack(cleanup, settings, `curve${size}`, size, (name, port) => httpService(name, port, 0, { liveness: true }))

/** `settings.scale` independent services that only run: no probe, "running" is all there is to wait for. */
export const plainStack = (cleanup: Cleanup, settings: Settings): Promise<StackDir> =>
  manyStack(cleanup, settings, "plain", settings.scale, (name, port) => ({
    name,
    args: ["http", String(port), "0"]
  }))

/**
 * A supervisor in bare Node, the least any Node supervisor costs (`node -e`): reads the stack's manifests, spawns
 * each service as core does (its own group, stdout and stderr piped and read), and records when every spawn
 * event is in (`{ at, pids, pid }`, epoch ms, written whole). Nothing else: no logs, no state, no control API.
 */
const BARE_SUPERVISOR = `
const fs = require("node:fs"), path = require("node:path"), { spawn } = require("node:child_process")
const [dir, marker] = process.argv.slice(1)
const names = fs.readdirSync(path.join(dir, "services")).sort()
let left = names.length
const pids = []
for (const name of names) {
  const p = JSON.parse(fs.readFileSync(path.join(dir, "services", name, "service.json"), "utf8")).process
  const child = spawn(p.command, p.args ?? [], { detached: true, stdio: ["ignore", "pipe", "pipe"] })
  child.stdout.on("data", () => {})
  child.stderr.on("data", () => {})
  pids.push(child.pid)
  child.once("spawn", () => {
    if (--left > 0) return
    fs.writeFileSync(marker + ".tmp", JSON.stringify({ at: Date.now(), pids, pid: process.pid }))
    fs.renameSync(marker + ".tmp", marker)
  })
}
setInterval(() => {}, 1 << 30)
`

/**
 * The floor of row 2b's "all running": a Node client that starts `BARE_SUPERVISOR` detached and exits, both
 * without `NODE_EXTRA_CA_CERTS`, as core starts them. From the client's start to the bare supervisor's record
 * of every spawn event; then every group, its own too, is killed.
 */
export const bareNodeRunning = async (cleanup: Cleanup, stack: StackDir): Promise<number> => {
  const marker = path.join(stack.dir, "bare-node-running.json")
  fs.rmSync(marker, { force: true })
  const client = `require("node:child_process").spawn(process.execPath, ["-e", ...process.argv.slice(1)], { detached: true, stdio: "ignore" }).unref()`
  const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env
  const began = Date.now()
  await run(process.execPath, ["-e", client, BARE_SUPERVISOR, stack.dir, marker], { env })
  let record: { readonly at: number; readonly pids: ReadonlyArray<number>; readonly pid: number } | undefined
  for (const until = now() + 30_000; record === undefined && now() < until; ) {
    if (fs.existsSync(marker)) record = JSON.parse(fs.readFileSync(marker, "utf8"))
    else await sleep(2)
  }
  if (record === undefined) throw new Error("the bare Node supervisor did not start every service within 30 s")
  const groups = [record.pid, ...record.pids]
  for (const g of groups) cleanup.group(g)
  for (const g of groups) killGroup(g)
  await waitAllGone(groups, now())
  fs.rmSync(marker, { force: true })
  return record.at - began
}

/** Figures of one scale run. */
export interface ScaleSample {
  readonly readyMs: number
  /** When every service was first seen running by polling the API (`UpOptions.pollRunning`). */
  readonly allRunningMs: number | undefined
  /** Peak RSS of the supervisor (VmHWM) after the idle window. */
  readonly peakRssMb: number
  /** Supervisor CPU over the idle window, in % of one core. */
  readonly idleCpuPercent: number
  readonly downMs: number
}

/** The floor of scale: every server started at once, each polled every 5 ms; then SIGTERM to all. */
export const scaleFloor = async (
  cleanup: Cleanup,
  settings: Settings,
  stack: StackDir
): Promise<{ readonly readyMs: number; readonly downMs: number }> => {
  const began = now()
  const children = stack.services.map((s) => launchDirect(cleanup, settings.binary, s))
  try {
    await Promise.all(stack.services.map((s) => until(() => answers200(s.port!), 5, 30_000, `${s.name} directly`)))
  } catch (e) {
    await stopDirect(children)
    throw e
  }
  const readyMs = now() - began
  return { readyMs, downMs: await stopDirect(children) }
}

/** Seconds after ready before the idle window starts. */
const SETTLE_MS = 1000

/** `up` of the scale stack, its peak RSS and idle CPU, then `down` timed until every process has exited. */
export const scaleRun = async (
  cleanup: Cleanup,
  settings: Settings,
  orchestrator: Orchestrator,
  stack: StackDir,
  idleSeconds: number = settings.idleSeconds,
  pollRunning = false
): Promise<ScaleSample> => {
  const { running, readyMs, allRunningMs } = await orchestrator.up(stack, { pollMs: 20, pollRunning })
  cleanup.stack(running)
  await cleanup.track(running)
  const pid = running.supervisorPid
  // core's spawner helper counts with its supervisor (none for process-compose)
  const pids = [pid, ...helperPids(pid)]
  const cpu = () => pids.reduce((sum, p) => sum + (cpuMs(p) ?? 0), 0)
  await sleep(SETTLE_MS)
  const cpu0 = cpu()
  const t0 = now()
  await sleep(idleSeconds * 1000)
  const idleCpuPercent = ((cpu() - cpu0) / (now() - t0)) * 100
  const peakRssMb = pids.reduce((sum, p) => sum + (statusMb(p, "VmHWM") ?? Number.NaN), 0)
  const downMs = await running.down()
  cleanup.stopped(running)
  return { readyMs, allRunningMs, peakRssMb, idleCpuPercent, downMs }
}

// ---------------------------------------------------------------------------------------------------------
// 5. log throughput

/** One service writing `settings.lines` lines of 50 bytes, then exiting 0. */
export const logStack = (cleanup: Cleanup, settings: Settings): StackDir =>
  cleanup.dir(writeStack("logs", settings.binary, [{ name: "flood", args: ["flood", String(settings.lines)] }]))

/** Figures of one log run. */
export interface LogSample {
  /** From the writer's start to the last line read back from the log file. */
  readonly ms: number
  /** Lines expected but not in the file (or out of order). */
  readonly lost: number
  /** Supervisor CPU time meanwhile. */
  readonly cpuMs: number
}

/** The floor: the writer straight into a file (spawn to exit). */
export const logFloor = async (settings: Settings, dir: string): Promise<number> => {
  const file = path.join(dir, "floor.out")
  const out = fs.openSync(file, "w")
  try {
    const began = now()
    const { spawn } = await import("node:child_process")
    const child = spawn(settings.binary, ["flood", String(settings.lines)], { stdio: ["ignore", out, "ignore"] })
    await exitOf(child)
    return now() - began
  } finally {
    fs.closeSync(out)
    fs.rmSync(file, { force: true })
  }
}

/** Runs the log stack, following `.core-stack/logs/flood.log` until every line is in or it stalls. */
export const logRun = async (
  cleanup: Cleanup,
  settings: Settings,
  orchestrator: Orchestrator,
  stack: StackDir
): Promise<LogSample> => {
  const logFile = path.join(stack.dir, ".core-stack", "logs", "flood.log")
  fs.rmSync(path.join(stack.dir, ".core-stack", "logs"), { recursive: true, force: true })
  const follower = new LogFollower(logFile)
  let stop = false
  let cpuStart: number | undefined
  let cpuEnd: number | undefined
  let supervisorPid = 0
  // follow from before the start: the file may rotate before `up` returns
  const following = (async () => {
    let idleSince = now()
    while (!stop) {
      const read = follower.poll()
      const r = follower.result
      if (cpuStart === undefined && r.startEpochMs !== undefined && supervisorPid > 0) cpuStart = cpuMs(supervisorPid)
      if (r.lines >= settings.lines) {
        if (supervisorPid > 0) cpuEnd = cpuMs(supervisorPid)
        return
      }
      if (read > 0) idleSince = now()
      else if (r.startEpochMs !== undefined && now() - idleSince > 5000) return // stalled: lines are missing
      await sleep(read > 0 ? 0 : 1)
    }
  })()
  let running: Running | undefined
  try {
    running = (
      await orchestrator.up(stack, {
        pollMs: 5,
        onSupervisor: (pid) => {
          supervisorPid = pid
        }
      })
    ).running
    cleanup.stack(running)
    await following
    cpuEnd ??= cpuMs(supervisorPid)
  } finally {
    stop = true
    await following
    follower.close()
  }
  await running.down()
  cleanup.stopped(running)
  const r = follower.result
  return {
    ms: (r.lastLineEpochMs ?? Number.NaN) - (r.startEpochMs ?? Number.NaN),
    lost: settings.lines - r.lines + r.outOfOrder,
    cpuMs: (cpuEnd ?? Number.NaN) - (cpuStart ?? cpuMs(supervisorPid) ?? Number.NaN)
  }
}

// ---------------------------------------------------------------------------------------------------------
// 6. restart after SIGKILL

/** One HTTP service, ready `RESTART_DELAY` after its start, `restart: always` with no backoff. */
export const restartStack = async (cleanup: Cleanup, settings: Settings): Promise<StackDir> => {
  const [port] = await freePorts(1)
  return cleanup.dir(
    writeStack("restart", settings.binary, [httpService("svc", port!, RESTART_DELAY, { restart: "always" })])
  )
}

/** The floor: the service's own start time (spawned, polled every 5 ms until it answers 200). */
export const restartFloor = async (cleanup: Cleanup, settings: Settings, stack: StackDir): Promise<number> => {
  const service = stack.services[0]!
  const began = now()
  const child = launchDirect(cleanup, settings.binary, service)
  try {
    await until(() => answers200(service.port!), 5, 10_000, "svc directly")
    return now() - began
  } finally {
    await stopDirect([child])
  }
}

/** `repeats` times: SIGKILL the service, time until the orchestrator reports a new process of it ready. */
export const restartRun = async (
  cleanup: Cleanup,
  settings: Settings,
  orchestrator: Orchestrator,
  stack: StackDir
): Promise<ReadonlyArray<number>> => {
  const { running } = await orchestrator.up(stack, { pollMs: 5 })
  cleanup.stack(running)
  const samples: Array<number> = []
  for (let i = 0; i < settings.repeats; i++) {
    const [before] = await running.states()
    const pid = before!.pid!
    cleanup.group(pid)
    const began = now()
    killPid(pid, "SIGKILL")
    let seen = false
    await until(
      async () => {
        const [s] = await running.states()
        seen = s?.ready === true && s.pid !== null && s.pid !== pid
        if (s?.pid) cleanup.group(s.pid)
        return seen
      },
      5,
      30_000,
      "restart"
    )
    samples.push(now() - began)
    await waitAllGone([pid], now(), { timeoutMs: 5000 }).catch(() => 0)
    await sleep(200)
  }
  await running.down()
  cleanup.stopped(running)
  return samples
}

/** Whether any of `pids` is alive (for the end-of-run check). */
export const anyAlive = (pids: ReadonlyArray<number>): boolean => pids.some(isAlive)

// ---------------------------------------------------------------------------------------------------------
// 7. the cost of sampling resource use (ResourceSampler) over `scale` process groups

/** Sweeps measured per run of the sampling scenario; they are taken back to back, not at the real interval. */
const SAMPLING_SWEEPS = 50

/**
 * The CPU time of one sweep of the real `ResourceSampler` (read every group's members from /proc, compute the
 * use, record it, publish it) over `scale` live process groups, measured in this process over back-to-back
 * sweeps; returned as a percentage of one core at the supervisor's sampling interval.
 */
export const samplingRun = async (
  cleanup: Cleanup,
  settings: Settings
): Promise<{ percent: number; sweepMs: number }> => {
  const children = Array.from({ length: settings.scale }, () => {
    const child = launch("sleep", ["600"])
    cleanup.group(child.pid)
    return child
  })
  try {
    const watched = children.map((child, i) => ({ name: `s${i}`, pid: child.pid! }))
    const sweepMs = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          // sweeps back to back (the first, a full scan of /proc, is part of the cost), as much history as at 2 s
          const sampler = yield* makeResourceSampler(Effect.succeed(watched), {
            intervalMs: 1,
            historyMs: HISTORY_MS / DEFAULT_SAMPLE_INTERVAL_MS
          })
          const before = process.cpuUsage()
          yield* sampler.samples.pipe(Stream.take(SAMPLING_SWEEPS), Stream.runDrain)
          const used = process.cpuUsage(before)
          return (used.user + used.system) / 1000 / SAMPLING_SWEEPS
        })
      )
    )
    return { percent: (sweepMs / DEFAULT_SAMPLE_INTERVAL_MS) * 100, sweepMs }
  } finally {
    for (const child of children) killGroup(child.pid!)
    await Promise.all(children.map(exitOf))
  }
}
