/**
 * Process plumbing of the benchmarks: timed commands, /proc readings (RSS, CPU), waiting for pids to be gone,
 * HTTP over a Unix socket or loopback, and free ports. Plain Node on purpose: the harness must cost as little
 * as possible next to what it measures.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"

/** Milliseconds since an arbitrary origin, sub-millisecond precision. */
export const now = (): number => performance.now()

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** What a finished command printed and how it ended. */
export interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** Wall time from spawn to exit. */
  readonly ms: number
}

/** Runs a command to its end, timing it from spawn to exit. Rejects when it does not end within `timeoutMs`. */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {}
): Promise<CommandResult> =>
  new Promise((resolve, reject) => {
    const started = now()
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (b: Buffer) => out.push(b))
    child.stderr.on("data", (b: Buffer) => err.push(b))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${command} ${args.join(" ")}: no exit within ${options.timeoutMs} ms`))
    }, options.timeoutMs ?? 120_000)
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        ms: now() - started
      })
    })
  })

/** Like `run`, but rejects with the command's output when it exits non-zero. */
export const runOk = async (
  command: string,
  args: ReadonlyArray<string>,
  options: Parameters<typeof run>[2] = {}
): Promise<CommandResult> => {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited ${result.code ?? result.signal}:\n${result.stdout}${result.stderr}`.trim()
    )
  }
  return result
}

/** Starts a long-running process in its own process group, output to `logFile` (or nowhere). */
export const launch = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly logFile?: string; readonly env?: NodeJS.ProcessEnv } = {}
): ChildProcess => {
  const out = options.logFile === undefined ? "ignore" : fs.openSync(options.logFile, "a")
  try {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ["ignore", out, out]
    })
    child.on("error", () => {})
    return child
  } finally {
    if (typeof out === "number") fs.closeSync(out)
  }
}

/** Whether a child has exited. */
export const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

/** Resolves when `child` has exited. */
export const exitOf = (child: ChildProcess): Promise<void> =>
  hasExited(child) ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()))

/** Fields of `/proc/<pid>/stat` after the command name, or undefined when the process is gone. */
const statFields = (pid: number): ReadonlyArray<string> | undefined => {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return text.slice(text.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** Whether `pid` is a live process (a zombie counts as gone). */
export const isAlive = (pid: number): boolean => {
  const fields = statFields(pid)
  return fields !== undefined && fields[0] !== "Z" && fields[0] !== "X"
}

/** Clock ticks per second (`getconf CLK_TCK`). */
export const clockTicks: number = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU time (user + system) of `pid` itself, in milliseconds; undefined when it is gone. */
export const cpuMs = (pid: number): number | undefined => {
  const fields = statFields(pid)
  if (fields === undefined) return undefined
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the state
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
}

/**
 * The supervisor's helper processes that are not services: its spawner (`core-spawner`, the services'
 * parent), counted with the supervisor in its memory and CPU rows. (Its guardian, a `sh`, never was.)
 */
export const helperPids = (pid: number): ReadonlyArray<number> => {
  const found: Array<number> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const name = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"))
      const parent = Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1])
      if (parent === pid && name === "core-spawner") found.push(Number(entry))
    } catch {
      // gone
    }
  }
  return found
}

/** A `kB` field of `/proc/<pid>/status` in MB (VmRSS: resident now, VmHWM: peak resident). */
export const statusMb = (pid: number, field: "VmRSS" | "VmHWM"): number | undefined => {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) / 1024 : undefined
  } catch {
    return undefined
  }
}

/**
 * Waits until none of `pids` is alive, checking every `everyMs`; returns the milliseconds since `since`
 * when the last one was seen gone. Rejects after `timeoutMs`.
 *
 * Each check reads `pids` in order up to the first one alive, not all of them: one is enough to know that not
 * all are gone, and reading 200 `/proc` files every 2 ms took about half a core from what was being measured
 * (two cores here). Every pid is still read once after it is gone, so the time is the same.
 */
export const waitAllGone = async (
  pids: ReadonlyArray<number>,
  since: number,
  options: { readonly everyMs?: number; readonly timeoutMs?: number } = {}
): Promise<number> => {
  let left = pids
  const deadline = now() + (options.timeoutMs ?? 60_000)
  for (;;) {
    const firstAlive = left.findIndex(isAlive)
    if (firstAlive === -1) return now() - since
    left = left.slice(firstAlive)
    if (now() > deadline) {
      throw new Error(`still alive after ${options.timeoutMs ?? 60_000} ms: ${left.filter(isAlive).join(", ")}`)
    }
    await sleep(options.everyMs ?? 2)
  }
}

/** The live members of each of `pgids` that has any, in one scan of `/proc` (thousands of groups after a curve). */
export const membersOf = (pgids: Iterable<number>): ReadonlyMap<number, ReadonlyArray<number>> => {
  const wanted = new Set(pgids)
  const members = new Map<number, Array<number>>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const fields = statFields(Number(entry))
    // pgrp is field 5 of the line, 3 after the state
    if (fields === undefined || fields[0] === "Z") continue
    const pgid = Number(fields[2])
    if (!wanted.has(pgid)) continue
    const list = members.get(pgid) ?? []
    list.push(Number(entry))
    members.set(pgid, list)
  }
  return members
}

/** Sends `signal` to process group `pgid`, ignoring a group already gone. */
export const killGroup = (pgid: number, signal: NodeJS.Signals = "SIGKILL"): void => {
  try {
    process.kill(-pgid, signal)
  } catch {
    // already gone
  }
}

/** Sends `signal` to `pid`, ignoring a process already gone. */
export const killPid = (pid: number, signal: NodeJS.Signals = "SIGKILL"): void => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

/** Keep-alive agents, so that a tight poll does not open a connection per request. */
const loopbackAgent = new http.Agent({ keepAlive: true, maxSockets: 64 })

/** GET over a Unix socket (`socketPath`) or loopback (`port`): status and body; rejects on connection errors. */
export const httpGet = (
  target: { readonly socketPath: string } | { readonly port: number },
  path: string,
  timeoutMs = 2000
): Promise<{ readonly status: number; readonly body: string }> =>
  new Promise((resolve, reject) => {
    const request = http.request(
      "socketPath" in target
        ? { socketPath: target.socketPath, path, method: "GET", timeout: timeoutMs }
        : { host: "127.0.0.1", port: target.port, path, method: "GET", timeout: timeoutMs, agent: loopbackAgent },
      (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (b: Buffer) => chunks.push(b))
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
        response.on("error", reject)
      }
    )
    request.on("timeout", () => request.destroy(new Error(`GET ${path}: timeout`)))
    request.on("error", reject)
    request.end()
  })

/** Whether an HTTP server on loopback `port` answers 200 on `/`. */
export const answers200 = (port: number): Promise<boolean> =>
  httpGet({ port }, "/", 1000).then(
    (r) => r.status === 200,
    () => false
  )

/**
 * Ports are taken below the kernel's ephemeral range (32768-60999 on Linux by default): a port found free in
 * that range can be taken by any program's outgoing connection before the service listens on it (a bench run
 * lost a service that way). A random start keeps two runs at once apart.
 */
const PORTS_FROM = 20_000
const PORTS_BELOW = 32_000

/** Whether nothing listens on loopback `port` now. */
const bindable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** `count` distinct free TCP ports on loopback (free when asked; nothing holds them afterwards). */
export const freePorts = async (count: number): Promise<ReadonlyArray<number>> => {
  const ports: Array<number> = []
  const room = PORTS_BELOW - PORTS_FROM - 2 * count
  let candidate = PORTS_FROM + Math.floor(Math.random() * Math.max(1, room))
  while (ports.length < count) {
    if (candidate >= PORTS_BELOW) throw new Error(`fewer than ${count} free ports in ${PORTS_FROM}-${PORTS_BELOW}`)
    if (await bindable(candidate)) ports.push(candidate)
    candidate++
  }
  return ports
}
