/**
 * The supervisor's side of the control API: `ControlApi` served on `.core-stack/control.sock` (directory
 * 0700, socket 0600, no TCP port), for as long as the enclosing scope is open.
 */
import { HttpApiBuilder, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Deferred, Effect, Fiber, Layer, Option, Queue, Schema, type Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import { droppedOutputBytes } from "../logs/ResilientOutput.js"
import type { LogLine } from "../logs/ServiceLog.js"
import { probeSocket, socketAddress } from "../state/ControlSocket.js"
import { readStartTime } from "../process/ProcTable.js"
import { removeState, type StateDirError, SupervisorRunning, statePaths } from "../state/StateDir.js"
import { holdSupervisorLock } from "../state/SupervisorLock.js"
import { hasProcess, type ServiceStatus } from "../stack/ServiceStatus.js"
import { startLevels } from "../stack/StackGraph.js"
import { makeResourceSampler, type ResourceSampler, type ServiceUsage } from "../supervisor/ResourceSampler.js"
import { LocalSupervisor, type LocalSupervisorShape } from "../supervisor/Supervisor.js"
import {
  ControlApi,
  DefaultTail,
  LogLineJson,
  StackEvent,
  type StackGraphJson,
  SupervisorIdentity
} from "./ControlApi.js"
import * as Trace from "../trace/Trace.js"

/** Options of `serveControl`. */
export interface ServeOptions {
  /**
   * Runs after `down` has stopped every service and answered: how the supervisor ends. Default: what SIGTERM to
   * this process does (its listeners, called at once), the path of Ctrl-C (runMain interrupts the program,
   * every finalizer runs, exit 0). A library or a test passes its own (e.g. `Effect.void`, and awaits
   * `downRequested`).
   */
  readonly onDown?: Effect.Effect<void>
}

/**
 * SIGTERM's listeners called at once (runMain's interrupts the program), rather than the signal sent: a signal
 * waits for the event loop to work through what is queued before it (a stop of 200 services leaves as many log
 * writes and record removals to complete), and the program's end waited with it (24-69 ms after the answer to a
 * `down` of 200 services, 26-39 ms with the listeners called at once; 4 alternated traced runs). Sent for real
 * when nothing listens.
 */
const signalSelf = Effect.sync(() => {
  if (process.listenerCount("SIGTERM") > 0) process.emit("SIGTERM")
  else process.kill(process.pid, "SIGTERM")
})

/** The largest request body the control API reads: `up`'s list of names, with room to spare. */
const MAX_BODY_BYTES = 1024 * 1024

/** A control API being served. */
export interface ControlServer {
  readonly socket: string
  /** Completes when a client asked the supervisor to end (`stack down`), after every service has stopped. */
  readonly downRequested: Effect.Effect<void>
}

const toJsonLine = (line: LogLine): LogLineJson => {
  const json = { seq: line.seq, time: line.time, stream: line.stream, text: line.text }
  return line.supervisor ? { ...json, supervisor: true } : json
}

const encodeLine = Schema.encodeSync(Schema.parseJson(LogLineJson))
const encodeEvent = Schema.encodeSync(Schema.parseJson(StackEvent))

/** The stack's dependency graph as the API shows it. */
export const graphOf = (stack: LocalSupervisorShape["stack"]): StackGraphJson => ({
  layers: startLevels(stack.services.map((s) => ({ name: s.name, dependsOn: s.dependsOn }))),
  edges: stack.services.flatMap((s) =>
    s.dependsOn.map((d) => ({ service: s.name as string, dependsOn: d.name as string, condition: d.condition }))
  ),
  disabled: stack.services.filter((s) => s.disabled).map((s) => s.name as string)
})

/** Samples the groups of the services whose process is alive. */
const sampleServices = (supervisor: LocalSupervisorShape) =>
  makeResourceSampler(
    Effect.map(supervisor.status, (rows) =>
      rows.map((row) => ({ name: row.name, pid: hasProcess(row.state) ? row.pid : null }))
    )
  )

/** How many transitions a client of `/events` may fall behind before its stream is ended (it reconnects). */
export const EVENTS_BEHIND_LIMIT = 10_000

/**
 * The current row of every service, then every transition. The transitions are subscribed to before the rows
 * are read, so none is lost in between (one may come twice; the last word is the newest). A client that
 * reads none of them (a dashboard stopped with Ctrl-Z) is not queued for without limit: once it is
 * `EVENTS_BEHIND_LIMIT` behind its stream ends, and a new one starts from the rows again.
 */
export const statusEvents = (
  supervisor: Pick<LocalSupervisorShape, "transitions" | "status">
): Stream.Stream<ServiceStatus> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const queue = yield* Queue.dropping<ServiceStatus>(EVENTS_BEHIND_LIMIT)
      yield* supervisor.transitions.pipe(
        Stream.runForEach((status) =>
          Effect.flatMap(Queue.offer(queue, status), (taken) => (taken ? Effect.void : Queue.shutdown(queue)))
        ),
        Effect.forkScoped
      )
      // let the forked subscription run before the snapshot is read
      yield* Effect.yieldNow()
      const rows = yield* supervisor.status
      return Stream.concat(Stream.fromIterable(rows), Stream.fromQueue(queue))
    })
  )

/** A row's latest usage, when it has a process. */
const usageOf = (row: ServiceStatus, latest: ReadonlyMap<string, ServiceUsage>): ServiceUsage | undefined =>
  hasProcess(row.state) ? latest.get(row.name) : undefined

/**
 * The body of `GET /status`: every row with its usage, as `Schema.Array(ServiceStatus)` encodes it (the same
 * fields in the same order; the Schema transforms none of them), built directly. Through the Schema a poll of
 * 200 rows cost the supervisor ~6.6 ms of CPU (its walk over each row, and an effect per row for the usage),
 * and `up -d` and the dashboard poll it while a stack starts.
 */
export const statusBody = (rows: ReadonlyArray<ServiceStatus>, latest: ReadonlyMap<string, ServiceUsage>): string =>
  JSON.stringify(
    rows.map((row): ServiceStatus => {
      const usage = usageOf(row, latest)
      return {
        name: row.name,
        state: row.state,
        health: row.health,
        pid: row.pid,
        restarts: row.restarts,
        startedAt: row.startedAt,
        exitCode: row.exitCode,
        reason: row.reason,
        ports: row.ports,
        cpu: usage?.cpu ?? null,
        rss: usage?.rss ?? null,
        ...(row.droppedLogBytes !== undefined && { droppedLogBytes: row.droppedLogBytes })
      }
    })
  )

/** `identity` as `hello` answers it: with the count of the supervisor's own output it could not write, if any. */
export const withDroppedOutput = (identity: SupervisorIdentity, dropped: number): SupervisorIdentity =>
  dropped > 0 ? new SupervisorIdentity({ ...identity, droppedOutputBytes: dropped }) : identity

/** The handlers: the supervisor's methods, run in the server's scope so that a client going away mid-call does not cut a stop or restart in half. */
const handlers = (
  supervisor: LocalSupervisorShape,
  sampler: ResourceSampler,
  identity: SupervisorIdentity,
  down: Deferred.Deferred<void>,
  downAnswered: Deferred.Deferred<void>,
  scope: Scope.Scope
) => {
  const detached = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.flatMap(Effect.forkIn(effect, scope), (fiber) => Fiber.join(fiber))
  const withUsage = (row: ServiceStatus) =>
    Effect.map(sampler.latest, (latest): ServiceStatus => {
      const usage = usageOf(row, latest)
      return { ...row, cpu: usage?.cpu ?? null, rss: usage?.rss ?? null }
    })
  const status = (name: string) => Effect.flatMap(supervisor.statusOf(name), withUsage)
  const stack = HttpApiBuilder.group(ControlApi, "stack", (h) =>
    h
      .handle("hello", () => Effect.sync(() => withDroppedOutput(identity, droppedOutputBytes())))
      .handleRaw("status", () =>
        Effect.map(Effect.zip(supervisor.status, sampler.latest), ([rows, latest]) =>
          HttpServerResponse.text(statusBody(rows, latest), { contentType: "application/json" })
        )
      )
      .handle("up", ({ payload }) => detached(supervisor.up(payload.services)).pipe(Effect.zipRight(supervisor.status)))
      .handle("down", () =>
        detached(
          Effect.sync(() => Trace.mark("down requested")).pipe(
            Effect.zipRight(supervisor.shutdown),
            // answer first, then let the supervisor end (which closes this server). Forked in the detached
            // fiber, not after it: a client gone before the answer interrupts this handler, and the supervisor
            // was then left running with nothing under it
            Effect.zipRight(
              Effect.forkIn(Effect.zipRight(Deferred.await(downAnswered), Deferred.succeed(down, undefined)), scope)
            )
          )
        ).pipe(Effect.as(identity))
      )
  )
  const services = HttpApiBuilder.group(ControlApi, "services", (h) =>
    h
      .handle("statusOf", ({ path }) => status(path.name))
      .handle("start", ({ path }) => detached(supervisor.start(path.name)).pipe(Effect.zipRight(status(path.name))))
      .handle("stop", ({ path }) => detached(supervisor.stop(path.name)).pipe(Effect.zipRight(status(path.name))))
      .handle("restart", ({ path }) => detached(supervisor.restart(path.name)).pipe(Effect.zipRight(status(path.name))))
      .handle("logs", ({ path, urlParams }) =>
        Effect.map(supervisor.logs(path.name, urlParams.n ?? DefaultTail), (lines) => lines.map(toJsonLine))
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
  const observe = HttpApiBuilder.group(ControlApi, "observe", (h) =>
    h
      .handle("metrics", ({ urlParams }) => sampler.history(urlParams.since))
      .handle("graph", () => Effect.succeed(graphOf(supervisor.stack)))
      .handleRaw("events", () => {
        const events = Stream.merge(
          Stream.map(statusEvents(supervisor), (status): StackEvent => ({ _tag: "Status", status })),
          Stream.map(sampler.samples, (sample): StackEvent => ({ _tag: "Usage", ...sample }))
        )
        const body = events.pipe(
          Stream.map((event) => `${encodeEvent(event)}\n`),
          Stream.encodeText
        )
        return Effect.succeed(HttpServerResponse.stream(body, { contentType: "application/x-ndjson" }))
      })
  )
  return Layer.mergeAll(stack, services, observe)
}

/**
 * A Node HTTP server on a Unix socket whose shutdown does not wait for open (follow) connections.
 * `downAnswered` completes when the answer to a `POST /down` has been written (or its connection closed).
 */
const unixServer = (socket: string, downAnswered: Deferred.Deferred<void>) =>
  Layer.scoped(
    HttpServer.HttpServer,
    Effect.gen(function* () {
      const address = yield* socketAddress(socket)
      const server = http.createServer()
      // requests like `restart` wait for readiness; a follow stream never ends by itself
      server.requestTimeout = 0
      server.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => {
        if (request.method === "POST" && request.url === "/down") {
          response.once("close", () => Deferred.unsafeDone(downAnswered, Effect.void))
        }
      })
      const served = yield* NodeHttpServer.make(() => server, { path: address })
      yield* Effect.sync(() => fs.chmodSync(socket, 0o600))
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          server.close()
          server.closeAllConnections()
          removeState(socket)
        })
      )
      return served
    })
  )

/**
 * Serves the control API for the `LocalSupervisor` of the context on `<stateDir>/control.sock` until the scope closes. Takes the
 * supervisor lock (`supervisor.pid`) unless this process holds it already, so a second supervisor for the
 * same directory fails with `SupervisorRunning`. A socket file left by a dead supervisor is removed; one
 * that still answers is never touched.
 */
export const serveControl: (
  stateDir: string,
  options?: ServeOptions
) => Effect.Effect<ControlServer, SupervisorRunning | StateDirError | ServeError, LocalSupervisor | Scope.Scope> =
  Effect.fn("ControlServer.serveControl")(function* (stateDir: string, options: ServeOptions = {}) {
    const supervisor = yield* LocalSupervisor
    yield* holdSupervisorLock(stateDir)
    const paths = statePaths(stateDir)
    const probe = yield* probeSocket(paths.socket)
    if (probe === "answers") {
      return yield* new SupervisorRunning({ dir: supervisor.stack.dir, pid: 0 })
    }
    if (probe === "refused") yield* Effect.sync(() => removeState(paths.socket))
    const scope = yield* Effect.scope
    const down = yield* Deferred.make<void>()
    const downAnswered = yield* Deferred.make<void>()
    const identity = new SupervisorIdentity({
      pid: process.pid,
      startTime: readStartTime(process.pid) ?? null,
      dir: supervisor.stack.dir,
      services: supervisor.stack.services.map((s) => s.name)
    })
    yield* Deferred.await(down).pipe(
      Effect.tap(() => Trace.mark("down answered, the supervisor ends")),
      Effect.zipRight(options.onDown ?? signalSelf),
      Effect.forkIn(scope)
    )
    const sampler = yield* sampleServices(supervisor)
    const api = HttpApiBuilder.api(ControlApi).pipe(
      Layer.provide(handlers(supervisor, sampler, identity, down, downAnswered, scope))
    )
    // a body is a list of names at most: one of 100 MB was read whole (+200 MB of heap), since the server's own
    // limit is not in the handlers' context
    const served = HttpApiBuilder.serve((app) =>
      HttpServerRequest.withMaxBodySize(app, Option.some(MAX_BODY_BYTES))
    ).pipe(
      Layer.provide(api),
      Layer.provide(unixServer(paths.socket, downAnswered)),
      Layer.provide(NodeHttpServer.layerContext)
    )
    yield* Layer.buildWithScope(served, scope)
    yield* Effect.logDebug(`control API on ${paths.socket}`)
    return { socket: paths.socket, downRequested: Deferred.await(down) }
  })
