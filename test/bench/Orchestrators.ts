/**
 * The two orchestrators behind one interface: core (the built CLI: `stack up -d`, `status`, `down`, its control
 * socket) and process-compose (headless, its API on a Unix socket, run on the file `core stack generate` writes).
 */
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  exitOf,
  hasExited,
  httpGet,
  isAlive,
  killGroup,
  killPid,
  launch,
  now,
  run,
  runOk,
  sleep,
  waitAllGone
} from "./Proc.js"
import { coreCommand, repoRoot, type StackDir } from "./Stacks.js"

/** Where a service stands, as its orchestrator reports it. */
export interface ServiceState {
  readonly name: string
  readonly pid: number | null
  /** Running and ready (its readiness probe passed, or it has none), or completed successfully. */
  readonly ready: boolean
  readonly restarts: number
}

/** A running stack. */
export interface Running {
  /** The supervisor's pid (core's background supervisor, or process-compose itself). */
  readonly supervisorPid: number
  /** Every service's state, through the orchestrator's API (not its CLI). */
  readonly states: () => Promise<ReadonlyArray<ServiceState>>
  /** One round trip of the status CLI (`core stack status`, `process-compose process list`): its wall time. */
  readonly statusCli: () => Promise<number>
  /** Stops the stack the orchestrator's way; resolves with the time until the supervisor and every service exited. */
  readonly down: () => Promise<number>
  /** Kills whatever is left of the stack, at once (cleanup after a failure). */
  readonly abort: () => void
}

/** Options of `Orchestrator.up`. */
export interface UpOptions {
  /** How often the bench polls an API for readiness (process-compose). Default 5 ms. */
  readonly pollMs?: number
  /**
   * Also poll the stack's API every `pollMs` from the command's start and report when every service was first
   * seen running (or ready, or completed): what the process-compose figure is, for core too (core's `up -d`
   * returns later, once each service without a readiness check has settled: idle for 50 ms, or up 500 ms).
   */
  readonly pollRunning?: boolean
  /** Called once the supervisor's pid is known, possibly before `up` resolves. */
  readonly onSupervisor?: (pid: number) => void
}

/** One orchestrator. */
export interface Orchestrator {
  readonly name: "core" | "process-compose"
  /** Starts `stack` and resolves once every service is ready, with the time it took from the command. */
  readonly up: (
    stack: StackDir,
    options?: UpOptions
  ) => Promise<{ running: Running; readyMs: number; allRunningMs: number | undefined }>
}

/** The stack's process groups: each service's pid is its group id in both orchestrators. */
const serviceGroups = (states: ReadonlyArray<ServiceState>): ReadonlyArray<number> =>
  states.flatMap((s) => (s.pid !== null && s.pid > 0 ? [s.pid] : []))

/** core, through `dist/core.cjs`. */
export const core: Orchestrator = {
  name: "core",
  up: async (stack, options = {}) => {
    const cli = (...args: ReadonlyArray<string>) => coreCommand("stack", ...args, "--dir", stack.dir)
    const stateDir = path.join(stack.dir, ".core-stack")
    const pidFile = path.join(stateDir, "supervisor.pid")
    const readPid = (): number => {
      try {
        return JSON.parse(fs.readFileSync(pidFile, "utf8")).pid
      } catch {
        return 0 // not there yet, or up failed: reported below
      }
    }
    let told = false
    const watch =
      options.onSupervisor === undefined
        ? undefined
        : setInterval(() => {
            const pid = readPid()
            if (pid > 0 && !told) {
              told = true
              options.onSupervisor?.(pid)
            }
          }, 1)
    const socketPath = path.join(stateDir, "control.sock")
    const began = now()
    let allRunningMs: number | undefined
    let upDone = false
    let upFailed = false
    const poller = options.pollRunning
      ? (async () => {
          // until seen, even after `up -d` returned (a poll starved on a loaded machine then counts late,
          // against core); at most 10 s after it did
          let deadline = Number.POSITIVE_INFINITY
          while (allRunningMs === undefined && !upFailed && now() < deadline) {
            if (upDone && deadline === Number.POSITIVE_INFINITY) deadline = now() + 10_000
            try {
              const answer = await httpGet({ socketPath }, "/status")
              const rows = answer.status === 200 ? (JSON.parse(answer.body) as ReadonlyArray<{ state: string }>) : []
              const up = (r: { state: string }) => ["running", "ready", "completed"].includes(r.state)
              if (rows.length === stack.services.length && rows.every(up)) allRunningMs = now() - began
            } catch {
              // no socket yet
            }
            if (allRunningMs === undefined) await sleep(options.pollMs ?? 5)
          }
        })()
      : undefined
    const up = await run(...cli("up", "-d"), { env: { ...process.env, NO_COLOR: "1" } }).finally(() => {
      clearInterval(watch)
      upDone = true
    })
    upFailed = up.code !== 0
    await poller
    const supervisorPid = readPid()
    if (supervisorPid > 0 && !told) options.onSupervisor?.(supervisorPid)
    const states = async (): Promise<ReadonlyArray<ServiceState>> => {
      const answer = await httpGet({ socketPath }, "/status")
      if (answer.status !== 200) throw new Error(`core /status answered ${answer.status}: ${answer.body}`)
      return (
        JSON.parse(answer.body) as ReadonlyArray<{
          name: string
          state: string
          health: string
          pid: number | null
          restarts: number
          exitCode: number | null
        }>
      ).map((s) => ({
        name: s.name,
        pid: s.pid,
        restarts: s.restarts,
        ready:
          s.state === "ready" ||
          (s.state === "running" && s.health === "none") ||
          (s.state === "completed" && s.exitCode === 0)
      }))
    }
    let known: ReadonlyArray<number> = []
    const abort = () => {
      if (supervisorPid > 0) killPid(supervisorPid)
      for (const group of known) killGroup(group)
    }
    if (up.code !== 0) {
      abort()
      throw new Error(`core stack up -d exited ${up.code}:\n${up.stdout}${up.stderr}`.trim())
    }
    known = serviceGroups(await states())
    const running: Running = {
      supervisorPid,
      states: async () => {
        const all = await states()
        known = [...new Set([...known, ...serviceGroups(all)])]
        return all
      },
      statusCli: async () => (await runOk(...cli("status"))).ms,
      down: async () => {
        const pids = [supervisorPid, ...serviceGroups(await running.states())]
        const began = now()
        const client = runOk(...cli("down"))
        const gone = await waitAllGone(pids, began)
        await client
        return gone
      },
      abort
    }
    return { running, readyMs: up.ms, allRunningMs }
  }
}

/** process-compose (the binary built into `.dep/tools`), or undefined when it is not there. */
export const processCompose = (
  binary: string = process.env.PROCESS_COMPOSE_BIN ?? path.join(repoRoot, ".dep", "tools", "process-compose")
): Orchestrator | undefined => {
  if (!fs.existsSync(binary)) return undefined
  return {
    name: "process-compose",
    up: async (stack, options = {}) => {
      await runOk(...coreCommand("stack", "generate", "--dir", stack.dir))
      const file = path.join(stack.dir, ".core-stack", "process-compose.yaml")
      const socketPath = path.join(stack.dir, "pc.sock")
      const client = (...args: ReadonlyArray<string>) => [...args, "-U", "-u", socketPath]

      const states = async (): Promise<ReadonlyArray<ServiceState>> => {
        const answer = await httpGet({ socketPath }, "/processes")
        if (answer.status !== 200) throw new Error(`process-compose /processes answered ${answer.status}`)
        return (
          JSON.parse(answer.body) as {
            data: ReadonlyArray<{
              name: string
              status: string
              is_ready: string
              has_ready_probe: boolean
              pid: number
              restarts: number
              exit_code: number
            }>
          }
        ).data.map((s) => ({
          name: s.name,
          pid: s.pid > 0 ? s.pid : null,
          restarts: s.restarts,
          ready:
            (s.status === "Running" && (!s.has_ready_probe || s.is_ready === "Ready")) ||
            (s.status === "Completed" && s.exit_code === 0)
        }))
      }

      const began = now()
      const child: ChildProcess = launch(
        binary,
        ["up", "-f", file, "--tui=false", ...client(), "-L", path.join(stack.dir, "process-compose.log")],
        { cwd: stack.dir }
      )
      const supervisorPid = child.pid ?? 0
      options.onSupervisor?.(supervisorPid)
      let known: ReadonlyArray<number> = []
      const abort = () => {
        killGroup(supervisorPid)
        for (const group of known) killGroup(group)
      }
      const expected = stack.services.length
      let readyMs: number | undefined
      let last = "no answer"
      const deadline = began + 120_000
      while (readyMs === undefined) {
        if (hasExited(child) || now() > deadline) {
          abort()
          throw new Error(`process-compose did not get every process ready: ${last}`)
        }
        try {
          const all = await states()
          known = serviceGroups(all)
          if (all.length === expected && all.every((s) => s.ready)) readyMs = now() - began
          else last = `${all.filter((s) => s.ready).length}/${expected} ready`
        } catch (e) {
          last = String(e)
        }
        if (readyMs === undefined) await sleep(options.pollMs ?? 5)
      }
      const running: Running = {
        supervisorPid,
        states: async () => {
          const all = await states()
          known = [...new Set([...known, ...serviceGroups(all)])]
          return all
        },
        statusCli: async () => (await runOk(binary, client("process", "list"))).ms,
        down: async () => {
          // process-compose ends by itself once every process has completed
          const pids = hasExited(child) ? known : await running.states().then(serviceGroups, () => known)
          const t0 = now()
          // what counts is that every process exits, not when the client does: process-compose may close the
          // socket before it answers `down`, and its client then waits seconds before it gives up
          const downClient = hasExited(child) ? undefined : run(binary, client("down"))
          await exitOf(child)
          const gone = await waitAllGone(
            pids.filter((p) => isAlive(p)),
            t0
          )
          await downClient
          return gone
        },
        abort
      }
      return { running, readyMs, allRunningMs: readyMs }
    }
  }
}
