/**
 * The supervisor's side of the control API: `ControlApi` served on `.core-stack/control.sock` (directory
 * 0700, socket 0600, no TCP port), for as long as the enclosing scope is open.
 */
import { HttpApiBuilder, HttpServer, HttpServerResponse } from "@effect/platform"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Deferred, Effect, Fiber, Layer, Schema, type Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import type { LogLine } from "../logs/ServiceLog.js"
import { readStartTime } from "../process/ProcTable.js"
import {
  cleanLeftovers,
  holdSupervisorLock,
  liveSupervisor,
  type StateDirError,
  SupervisorRunning,
  statePaths
} from "../supervisor/PidRegistry.js"
import type { StartFailed, SupervisorShape, UnknownService } from "../supervisor/Supervisor.js"
import {
  ApiStartFailed,
  ApiUnknownService,
  ControlApi,
  DefaultTail,
  LogLineJson,
  SupervisorIdentity
} from "./ControlApi.js"

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107

/**
 * A name under which `socket` can be bound or connected to: the path itself when it fits a socket address,
 * else (Linux) the same file reached through an open descriptor of its directory,
 * `/proc/self/fd/<fd>/control.sock`, valid until the scope closes. The socket file stays in `.core-stack/`.
 */
export const socketAddress = (socket: string): Effect.Effect<string, never, Scope.Scope> =>
  Buffer.byteLength(socket) <= MAX_SOCKET_PATH || !fs.existsSync("/proc/self/fd")
    ? Effect.succeed(socket)
    : Effect.acquireRelease(
        Effect.sync(() => {
          try {
            return fs.openSync(path.dirname(socket), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
          } catch {
            return undefined
          }
        }),
        (fd) => Effect.sync(() => fd !== undefined && fs.closeSync(fd))
      ).pipe(Effect.map((fd) => (fd === undefined ? socket : `/proc/self/fd/${fd}/${path.basename(socket)}`)))

/** Options of `serveControl`. */
export interface ServeOptions {
  /**
   * Runs after `down` has stopped every service and answered: how the supervisor ends. Default: SIGTERM to
   * this process, the path of Ctrl-C (runMain interrupts the program, every finalizer runs, exit 0). A
   * library or a test passes its own (e.g. `Effect.void`, and awaits `downRequested`).
   */
  readonly onDown?: Effect.Effect<void>
}

const signalSelf = Effect.sync(() => process.kill(process.pid, "SIGTERM"))

/** A control API being served. */
export interface ControlServer {
  readonly socket: string
  /** Completes when a client asked the supervisor to end (`stack down`), after every service has stopped. */
  readonly downRequested: Effect.Effect<void>
}

/** What a connection attempt to a socket file found. */
export type SocketProbe = "answers" | "refused" | "missing"

/** Tries to connect to a Unix socket: a live server answers; a stale file refuses. */
export const probeSocket = (socket: string, timeoutMs = 1_000): Effect.Effect<SocketProbe> =>
  Effect.scoped(Effect.flatMap(socketAddress(socket), (address) => probeAddress(socket, address, timeoutMs)))

const probeAddress = (socket: string, address: string, timeoutMs: number) =>
  Effect.async<SocketProbe>((resume) => {
    if (!fs.existsSync(socket)) return resume(Effect.succeed("missing"))
    const conn = net.connect({ path: address })
    let settled = false
    const done = (result: SocketProbe) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      conn.destroy()
      resume(Effect.succeed(result))
    }
    // a server that accepts but is too busy to answer still holds the socket
    const timer = setTimeout(() => done("answers"), timeoutMs)
    conn.once("connect", () => done("answers"))
    conn.on("error", (e: NodeJS.ErrnoException) => done(e.code === "ENOENT" ? "missing" : "refused"))
    return Effect.sync(() => {
      clearTimeout(timer)
      conn.destroy()
    })
  })

/**
 * For a new `up`: fails with `SupervisorRunning` when a live supervisor holds this stack directory (its
 * pid file names a live process, or something answers on its socket); otherwise removes what a dead one
 * left (its groups, after an identity check, its records, pid file and socket).
 */
export const ensureNoSupervisor: (stateDir: string) => Effect.Effect<void, SupervisorRunning> = Effect.fn(
  "ControlServer.ensureNoSupervisor"
)(function* (stateDir: string) {
  const paths = statePaths(stateDir)
  const dir = paths.stateDir.replace(/\/\.core-stack$/, "")
  const live = liveSupervisor(stateDir)
  if (live) return yield* new SupervisorRunning({ dir, pid: live.pid })
  yield* cleanLeftovers(stateDir)
  const probe = yield* probeSocket(paths.socket)
  if (probe === "answers") return yield* new SupervisorRunning({ dir, pid: liveSupervisor(stateDir)?.pid ?? 0 })
  // a supervisor that took the lock meanwhile may be binding this very socket: leave it to it
  if (probe === "refused" && !liveSupervisor(stateDir)) {
    yield* Effect.sync(() => fs.rmSync(paths.socket, { force: true }))
  }
})

const toApiUnknown = (e: UnknownService) => new ApiUnknownService({ name: e.name, known: e.known })

const toApiError = (e: UnknownService | StartFailed): ApiUnknownService | ApiStartFailed =>
  e._tag === "UnknownService"
    ? toApiUnknown(e)
    : new ApiStartFailed({ service: e.service, reason: e.reason, lastLines: e.lastLines })

const toJsonLine = (line: LogLine): LogLineJson => {
  const json = { seq: line.seq, time: line.time, stream: line.stream, text: line.text }
  return line.supervisor ? { ...json, supervisor: true } : json
}

const encodeLine = Schema.encodeSync(Schema.parseJson(LogLineJson))

/** The handlers: the supervisor's methods, run in the server's scope so that a client going away mid-call does not cut a stop or restart in half. */
const handlers = (
  supervisor: SupervisorShape,
  identity: SupervisorIdentity,
  down: Deferred.Deferred<void>,
  scope: Scope.Scope
) => {
  const detached = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.flatMap(Effect.forkIn(effect, scope), (fiber) => Fiber.join(fiber))
  const status = (name: string) => Effect.mapError(supervisor.statusOf(name), toApiUnknown)
  const stack = HttpApiBuilder.group(ControlApi, "stack", (h) =>
    h
      .handle("hello", () => Effect.succeed(identity))
      .handle("status", () => supervisor.status)
      .handle("up", ({ payload }) =>
        detached(supervisor.up(payload.services)).pipe(Effect.mapError(toApiError), Effect.zipRight(supervisor.status))
      )
      .handle("down", () =>
        detached(supervisor.shutdown).pipe(
          // answer first, then let the supervisor end (which closes this server)
          Effect.zipRight(Effect.forkIn(Effect.delay(Deferred.succeed(down, undefined), "50 millis"), scope)),
          Effect.as(identity)
        )
      )
  )
  const services = HttpApiBuilder.group(ControlApi, "services", (h) =>
    h
      .handle("statusOf", ({ path }) => status(path.name))
      .handle("start", ({ path }) =>
        detached(supervisor.start(path.name)).pipe(Effect.mapError(toApiError), Effect.zipRight(status(path.name)))
      )
      .handle("stop", ({ path }) =>
        detached(supervisor.stop(path.name)).pipe(Effect.mapError(toApiUnknown), Effect.zipRight(status(path.name)))
      )
      .handle("restart", ({ path }) =>
        detached(supervisor.restart(path.name)).pipe(Effect.mapError(toApiError), Effect.zipRight(status(path.name)))
      )
      .handle("logs", ({ path, urlParams }) =>
        supervisor.logs(path.name, urlParams.n ?? DefaultTail).pipe(
          Effect.map((lines) => lines.map(toJsonLine)),
          Effect.mapError(toApiUnknown)
        )
      )
      .handleRaw("follow", ({ path, urlParams }) =>
        Effect.gen(function* () {
          yield* status(path.name)
          const body = supervisor.follow(path.name, urlParams.n ?? DefaultTail).pipe(
            Stream.map((line) => `${encodeLine(toJsonLine(line))}\n`),
            Stream.catchAll(() => Stream.empty),
            Stream.encodeText
          )
          return HttpServerResponse.stream(body, { contentType: "application/x-ndjson" })
        })
      )
  )
  return Layer.mergeAll(stack, services)
}

/** A Node HTTP server on a Unix socket whose shutdown does not wait for open (follow) connections. */
const unixServer = (socket: string) =>
  Layer.scoped(
    HttpServer.HttpServer,
    Effect.gen(function* () {
      const address = yield* socketAddress(socket)
      const server = http.createServer()
      // requests like `restart` wait for readiness; a follow stream never ends by itself
      server.requestTimeout = 0
      const served = yield* NodeHttpServer.make(() => server, { path: address })
      yield* Effect.sync(() => fs.chmodSync(socket, 0o600))
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          server.close()
          server.closeAllConnections()
          fs.rmSync(socket, { force: true })
        })
      )
      return served
    })
  )

/**
 * Serves the control API for `supervisor` on `<stateDir>/control.sock` until the scope closes. Takes the
 * supervisor lock (`supervisor.pid`) unless this process holds it already, so a second supervisor for the
 * same directory fails with `SupervisorRunning`. A socket file left by a dead supervisor is removed; one
 * that still answers is never touched.
 */
export const serveControl: (
  supervisor: SupervisorShape,
  stateDir: string,
  options?: ServeOptions
) => Effect.Effect<ControlServer, SupervisorRunning | StateDirError | ServeError, Scope.Scope> = Effect.fn(
  "ControlServer.serveControl"
)(function* (supervisor: SupervisorShape, stateDir: string, options: ServeOptions = {}) {
  yield* holdSupervisorLock(stateDir)
  const paths = statePaths(stateDir)
  const probe = yield* probeSocket(paths.socket)
  if (probe === "answers") {
    return yield* new SupervisorRunning({ dir: supervisor.stack.dir, pid: 0 })
  }
  if (probe === "refused") yield* Effect.sync(() => fs.rmSync(paths.socket, { force: true }))
  const scope = yield* Effect.scope
  const down = yield* Deferred.make<void>()
  const identity = new SupervisorIdentity({
    pid: process.pid,
    startTime: readStartTime(process.pid) ?? null,
    dir: supervisor.stack.dir,
    services: supervisor.stack.services.map((s) => s.name)
  })
  yield* Deferred.await(down).pipe(Effect.zipRight(options.onDown ?? signalSelf), Effect.forkIn(scope))
  const api = HttpApiBuilder.api(ControlApi).pipe(Layer.provide(handlers(supervisor, identity, down, scope)))
  const served = HttpApiBuilder.serve().pipe(
    Layer.provide(api),
    Layer.provide(unixServer(paths.socket)),
    Layer.provide(NodeHttpServer.layerContext)
  )
  yield* Layer.buildWithScope(served, scope)
  yield* Effect.logDebug(`control API on ${paths.socket}`)
  return { socket: paths.socket, downRequested: Deferred.await(down) }
})
