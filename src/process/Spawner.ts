/**
 * A helper process that forks the supervisor's process groups for it (`src/spawner/main.go`, built by
 * `npm run build` into `dist/core-spawner`). Node's `spawn()` forks the whole supervisor (its page tables:
 * ~0.7 ms for a 36 MB process) and then blocks its only thread until the child has exec'd (1.5-3.3 ms a
 * service, traced): 200 services spent 575-635 ms inside `spawn()`. The helper is a small Go process that
 * forks with `CLONE_VFORK` and waits for the execs on its own thread, while the supervisor goes on.
 *
 * Each process still is the leader of its own session, its stdin /dev/null; its stdout and stderr are pipes
 * whose read ends the supervisor opens through the helper's `/proc/PID/fd` and reads directly (no copy
 * through the helper; no file made per process, see main.go). The helper reaps the processes
 * and reports their exits; the supervisor still signals their groups itself. When the supervisor is gone
 * (stdin ends) the helper kills every group it started, so a supervisor killed between a fork and its answer
 * leaves nothing behind. When the helper is missing (no Go at build time), fails to start or dies, `spawnGroup`
 * spawns with Node as before; a helper that dies takes its groups down with SIGKILL, and their runs end so.
 * `CORE_SPAWNER=node` turns it off; `CORE_SPAWNER=/path` names another binary.
 */
import { Context, Effect, Layer } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { constants } from "node:os"
import * as path from "node:path"
import * as Trace from "../trace/Trace.js"
import type { SpawnedBy } from "./ProcessRegistry.js"

export interface SpawnRequest {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  readonly env: Readonly<Record<string, string | undefined>>
}

export interface SpawnHandlers {
  /**
   * The process runs (exec'd) with this pid; what the helper tells of it (its start time); its output streams,
   * opened.
   */
  readonly started: (pid: number, spawned: SpawnedBy, stdout: net.Socket, stderr: net.Socket) => void
  /** It could not start: the error as Node's `spawn()` would report it (`code` the errno's name). */
  readonly failed: (error: NodeJS.ErrnoException) => void
  /** Its leader exited (`code`), or a signal ended it (`signal`), as Node's "exit" event says. */
  readonly exited: (code: number | null, signal: NodeJS.Signals | null) => void
}

export interface SpawnerShape {
  /**
   * Starts `request` as a new session through the helper and returns true, or returns false (the helper is
   * off, gone, or the request is one Node must refuse itself, with a NUL byte): the caller spawns it then.
   */
  readonly spawn: (request: SpawnRequest, handlers: SpawnHandlers) => boolean
  /** Whether a helper runs: a spawn then costs the supervisor's thread no fork and no wait for an exec. */
  readonly helper: () => boolean
}

/** Spawns nothing: `spawnGroup` uses Node's `spawn()`. */
const nothing: SpawnerShape = { spawn: () => false, helper: () => false }

export class Spawner extends Context.Tag("core/Spawner")<Spawner, SpawnerShape>() {
  /** Spawns nothing: `spawnGroup` uses Node's `spawn()`. */
  static readonly none = Layer.succeed(Spawner, nothing)
}

/**
 * The folder of the code running: `__dirname` (undefined in an ES module bundle, the library's). A supervisor
 * started from the startup snapshot has the `__dirname` of the build, wherever `dist/` is now: it sets its own
 * (`useBundleDir`), or a copied or moved `dist/` would run its services without the helper, with not a word.
 */
let bundleDir: string | undefined = typeof __dirname === "string" ? __dirname : undefined

/** Where the bundle now runs from (the snapshot's supervisor: the folder of the launcher that started it). */
export const useBundleDir = (dir: string): void => {
  bundleDir = dir
}

/**
 * The helper's binary: `CORE_SPAWNER`, else `core-spawner` beside the bundle (`dist/`), or, running from the
 * sources, in the `dist/` of their checkout; undefined when turned off (`CORE_SPAWNER=node`).
 */
export const spawnerBinary = (): string | undefined => {
  const configured = process.env.CORE_SPAWNER
  if (configured === "node") return undefined
  if (configured !== undefined && configured !== "") return configured
  if (bundleDir === undefined) return undefined // an ES module bundle (the library's): Node's spawn()
  // beside the bundle; from the sources (`src/process`, under vitest), in their checkout's `dist/`; never a
  // folder found from the working directory
  const beside = path.join(bundleDir, "core-spawner")
  const fromSources = path.join(bundleDir, "..", "..", "dist", "core-spawner")
  return bundleDir.endsWith(path.join("src", "process")) && !fs.existsSync(beside) ? fromSources : beside
}

const errnoNames = new Map(Object.entries(constants.errno as Record<string, number>).map(([name, n]) => [n, name]))

const signalNames = new Map(
  Object.entries(constants.signals as Record<string, number>).map(([name, n]) => [n, name as NodeJS.Signals])
)

/** An error like the one Node's `spawn()` gives for this errno. */
const spawnError = (command: string, errno: number): NodeJS.ErrnoException => {
  const code = errnoNames.get(errno) ?? `errno ${errno}`
  return Object.assign(new Error(`spawn ${command} ${code}`), { code, errno: -errno, syscall: "spawn" })
}

/**
 * The read end of a pipe that the helper `helperPid` holds as its descriptor `helperFd`, opened for this process
 * (a description of its own, as a FIFO is opened), as a socket that owns its fd (closed if none can be made).
 * The helper is this process's child, not reaped (checked by the caller): its pid is its own.
 */
const openPipe = (helperPid: number, helperFd: unknown): { readonly fd: number; readonly socket: net.Socket } => {
  if (!Number.isSafeInteger(helperFd) || (helperFd as number) < 0) {
    throw Object.assign(new Error(`the spawner helper named no pipe (${String(helperFd)})`), { code: "EBADF" })
  }
  const fd = fs.openSync(`/proc/${helperPid}/fd/${helperFd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  try {
    return { fd, socket: new net.Socket({ fd, readable: true, writable: false }) }
  } catch (error) {
    fs.closeSync(fd)
    throw error
  }
}

/**
 * Whether this process may open the pipes of the helper `pid`: whether it may list its descriptors, which the
 * kernel allows on the same terms (its stdin is no pipe to try: Node gives a child a socket pair).
 */
const canOpenPipes = (pid: number): boolean => {
  try {
    fs.readdirSync(`/proc/${pid}/fd`)
    return true
  } catch {
    return false
  }
}

const killGroup = (pid: number): void => {
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    // gone
  }
}

/** A NUL byte in the command, its folder or an argument (the environment's are checked as it is sent). */
const hasNul = (request: SpawnRequest): boolean =>
  request.command.includes("\0") || request.cwd.includes("\0") || request.args.some((a) => a.includes("\0"))

interface Pending {
  readonly command: string
  readonly handlers: SpawnHandlers
}

export interface Running {
  readonly handlers: SpawnHandlers
  readonly streams: ReadonlyArray<{ readonly fd: number; readonly socket: net.Socket }>
}

/**
 * What `drain` reads into, copied out at once: one for all (a buffer of 64 KB each was 12.8 MB allocated by
 * the exits of 200 services, outside the heap the young collections see).
 */
const drainBuffer = Buffer.allocUnsafe(64 * 1024)

/** Most of a pipe read at a process's exit: a background process that floods it cannot hold the exit up. */
const DRAIN_LIMIT = 1024 * 1024

/**
 * What the process wrote before it exited, read now (it is all in the pipes once the helper has reaped it),
 * through the sockets' own listeners: its exit is seen after its last lines, as with Node's pipes, where a
 * `ready_log_line` printed just before an exit counted. A pipe whose writers are all gone is ended here; one
 * that a background process still holds goes on as the socket reads it.
 */
export const drain = (streams: Running["streams"]): void => {
  for (const { fd, socket } of streams) {
    // a socket that has ended has closed its fd, whose number may be another file's or connection's by now
    // (it was: the control connection's request, read as the service's output, and never answered); checked
    // before each read, since a listener may end it
    for (let total = 0; total < DRAIN_LIMIT && !socket.destroyed; ) {
      let n: number
      try {
        n = fs.readSync(fd, drainBuffer, 0, drainBuffer.length, null)
      } catch {
        break // EAGAIN: nothing more now; or closed
      }
      if (n === 0) {
        // no writer is left: the end. The socket may never see it: a pipe opened (as a FIFO is) after its last
        // writer closed reports no hang-up to epoll (Linux), and with nothing in it, no input either
        socket.destroy()
        break
      }
      socket.emit("data", Buffer.from(drainBuffer.subarray(0, n)))
      total += n
    }
  }
}

/**
 * The helper for the life of the layer: started at once (its own session, so that a Ctrl-C meant for the
 * supervisor's group does not reach it), ended with the scope (stdin closed; it kills what is left and exits).
 */
export const layer: Layer.Layer<Spawner> = Layer.scoped(
  Spawner,
  Effect.acquireRelease(
    Effect.sync(() => start()),
    (helper) => (helper === undefined ? Effect.void : helper.close)
  ).pipe(Effect.map((helper) => (helper === undefined ? nothing : helper.shape)))
)

interface Helper {
  readonly shape: SpawnerShape
  readonly close: Effect.Effect<void>
}

const start = (): Helper | undefined => {
  const binary = spawnerBinary()
  if (binary === undefined) return
  try {
    fs.accessSync(binary, fs.constants.X_OK)
  } catch {
    return
  }
  let child: ChildProcess
  try {
    child = spawn(binary, [], {
      detached: true,
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, CORE_SPAWNER_HELPER: "1" }
    })
  } catch {
    return
  }
  // the pipes are opened through its /proc/PID/fd, which a process the kernel will not let this user inspect
  // (a helper binary that cannot be read is started undumpable) or a /proc mounted with hidepid refuses: such a
  // helper is ended at once, and Node's spawn() starts the services instead of every one of them failing
  if (child.pid === undefined || !canOpenPipes(child.pid)) {
    child.once("error", () => {})
    child.kill("SIGKILL")
    child.stdin?.destroy()
    child.stdout?.destroy()
    return
  }
  Trace.mark("spawner started")
  // the base environment, sent once: a request carries what differs from it
  const base = new Map<string, string>()
  for (const key in process.env) {
    const value = process.env[key]
    if (value !== undefined && !key.includes("\0") && !value.includes("\0") && !key.includes("=")) base.set(key, value)
  }
  let alive = child.pid !== undefined
  let nextId = 1
  const pending = new Map<number, Pending>()
  const running = new Map<number, Running>()
  // each request written at once (a write to a pipe, a few microseconds): a spawn waiting for the next turn of
  // the event loop waited for whatever else the supervisor's thread had to do first (serving the control
  // socket: the first service of the 3-level chain ran ~45 ms later than with Node's spawn)
  const send = (text: string) => {
    if (alive) child.stdin!.write(text)
  }
  send(`B\0${base.size}\0${[...base].map(([k, v]) => `${k}=${v}\0`).join("")}`)
  const onLine = (line: string) => {
    const message = JSON.parse(line) as {
      id?: number
      pid?: number
      out?: number
      err?: number
      start?: number
      errno?: number
      exit?: number
      code?: number
      signal?: number
    }
    if (message.exit !== undefined) {
      const run = running.get(message.exit)
      running.delete(message.exit)
      if (run === undefined) return
      drain(run.streams)
      run.handlers.exited(
        message.code ?? null,
        message.signal === undefined ? null : (signalNames.get(message.signal) ?? "SIGKILL")
      )
      return
    }
    if (message.id === undefined) return
    const request = pending.get(message.id)
    pending.delete(message.id)
    if (message.pid === undefined) {
      request?.handlers.failed(spawnError(request.command, message.errno ?? 0))
      return
    }
    if (request === undefined) {
      // nobody waits for it (its request was failed when the helper was thought gone): it must not run on
      killGroup(message.pid)
      return
    }
    const streams: Array<{ readonly fd: number; readonly socket: net.Socket }> = []
    try {
      // reaped (its last answers can still be read after its exit is): its pid may be another process's now
      if (child.exitCode !== null || child.signalCode !== null) {
        throw Object.assign(new Error("the spawner helper exited"), { code: "ESRCH" })
      }
      for (const fd of [message.out, message.err]) streams.push(openPipe(child.pid!, fd))
    } catch (error) {
      // the helper is this user's own child, not reaped, whose descriptors could be listed: this is not expected
      for (const { socket } of streams) socket.destroy()
      opened += `O\0${message.id}\0`
      killGroup(message.pid)
      request.handlers.failed(error as NodeJS.ErrnoException)
      return
    }
    opened += `O\0${message.id}\0`
    running.set(message.pid, { handlers: request.handlers, streams })
    const spawned: SpawnedBy = { startTime: Number.isSafeInteger(message.start) ? message.start : undefined }
    request.handlers.started(message.pid, spawned, streams[0]!.socket, streams[1]!.socket)
  }
  // the "opened" notes of one read's answers, sent in one write after them: each write to the helper wakes it,
  // ~50 us of the supervisor's thread here, and nothing waits for these (the helper only closes its readers)
  let opened = ""
  let partial = ""
  child.stdout!.setEncoding("utf8")
  child.stdout!.on("data", (chunk: string) => {
    let text = partial + chunk
    let end = text.indexOf("\n")
    while (end >= 0) {
      onLine(text.slice(0, end))
      text = text.slice(end + 1)
      end = text.indexOf("\n")
    }
    partial = text
    if (opened !== "") {
      send(opened)
      opened = ""
    }
  })
  const exited = new Promise<void>((resolve) => {
    const gone = () => {
      alive = false
      // nothing can report these any more (none after a close): their groups go, and their runs end as killed
      for (const [pid, run] of running) {
        killGroup(pid)
        drain(run.streams)
        run.handlers.exited(null, "SIGKILL")
      }
      running.clear()
      for (const request of pending.values()) {
        request.handlers.failed(Object.assign(new Error("the spawner helper exited"), { code: "ESRCH" }))
      }
      pending.clear()
      resolve()
    }
    // "close", not "exit": after the last answers on its stdout are read
    child.once("error", gone)
    child.once("close", gone)
  })
  child.stdin!.on("error", () => {})
  const shape: SpawnerShape = {
    // read at each call: a helper that has died spawns nothing any more
    helper: () => alive,
    spawn: (request, handlers) => {
      // what Node's spawn() refuses itself, with its own error: a NUL byte, an empty command
      if (!alive || request.command === "" || hasNul(request)) return false
      // NUL-ended fields (none of them holds a NUL: `hasNul`, and the variables below); see
      // src/spawner/main.go. The environment as what differs from the base one (which holds no NUL)
      let set = ""
      let sets = 0
      for (const key in request.env) {
        const value = request.env[key]
        if (value === undefined || base.get(key) === value) continue
        if (key.includes("\0") || value.includes("\0")) return false
        set += `${key}=${value}\0`
        sets++
      }
      let unset = ""
      let unsets = 0
      for (const key of base.keys()) {
        if (Object.hasOwn(request.env, key) && request.env[key] !== undefined) continue
        unset += `${key}\0`
        unsets++
      }
      const id = nextId++
      const args = [request.command, ...request.args]
      const text = `S\0${id}\0${request.command}\0${request.cwd}\0${args.length}\0${args.join("\0")}\0${sets}\0${set}${unsets}\0${unset}`
      pending.set(id, { command: request.command, handlers })
      send(text)
      return true
    }
  }
  const close = Effect.promise(() => {
    alive = false
    child.stdin!.end()
    const timer = setTimeout(() => child.kill("SIGKILL"), 2_000)
    return exited.finally(() => clearTimeout(timer))
  })
  return { shape, close }
}
