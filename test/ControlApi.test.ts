import { describe, expect, it } from "@effect/vitest"
import {
  Arbitrary,
  Chunk,
  Deferred,
  Effect,
  Exit,
  FastCheck,
  Fiber,
  Option,
  PubSub,
  Schema,
  Scope,
  Stream
} from "effect"
import * as fs from "node:fs"
import { spawn } from "node:child_process"
import * as http from "node:http"
import * as net from "node:net"
import { join } from "node:path"
import { DefaultTail, LogLineJson } from "../src/api/ControlApi.js"
import { connect, NoSupervisor } from "../src/api/ControlClient.js"
import { EVENTS_BEHIND_LIMIT, serveControl, statusBody, statusEvents } from "../src/api/ControlServer.js"
import { readStartTime } from "../src/process/ProcTable.js"
import { ensureNoSupervisor } from "../src/state/SupervisorLock.js"
import type { ServiceSpec } from "../src/manifest/ServiceSpec.js"
import { hasProcess, ServiceStatus } from "../src/stack/ServiceStatus.js"
import {
  LocalSupervisor,
  type LocalSupervisorShape,
  StartFailed,
  Supervisor,
  UnknownService
} from "../src/supervisor/Supervisor.js"
import { serviceVerb } from "../src/app/RunningStack.js"
import { makeFakeSupervisor } from "./support/FakeSupervisor.js"
import { service, stackOf, tempDir } from "./support/Specs.js"

/**
 * An in-memory supervisor of `services` served on a temp stack directory, and a client. Afterwards the
 * socket and the pid file are gone. (The real supervisor through the real CLI: ControlPlane.test.ts.)
 */
const withServed = <A, E>(
  services: ReadonlyArray<ServiceSpec>,
  body: (ctx: {
    readonly dir: string
    readonly client: Effect.Effect.Success<ReturnType<typeof connect>>
    readonly local: LocalSupervisorShape
  }) => Effect.Effect<A, E, Scope.Scope>,
  dir = tempDir("core-api-")
) =>
  Effect.gen(function* () {
    const stack = stackOf(dir, services)
    const scope = yield* Scope.make()
    const sup = yield* makeFakeSupervisor(stack)
    yield* serveControl(stack.stateDir, { onDown: Effect.void }).pipe(
      Effect.provideService(LocalSupervisor, sup),
      Scope.extend(scope)
    )
    const result = yield* Effect.scoped(
      Effect.flatMap(connect(dir), (client) => body({ dir, client, local: sup }))
    ).pipe(Effect.exit)
    yield* Scope.close(scope, Exit.void)
    expect(fs.existsSync(join(stack.stateDir, "control.sock"))).toBe(false)
    expect(fs.existsSync(join(stack.stateDir, "supervisor.pid"))).toBe(false)
    return yield* result
  })

const counter = (name: string, _marks: string, o: Parameters<typeof service>[3] = {}) => service(name, "true", [], o)

describe("ControlApi over a Unix socket", () => {
  it.live("status, statusOf, unknown service, socket and directory modes, second server refused", () => {
    const marks = tempDir("core-marks-")
    return withServed(
      [counter("a", marks), counter("b", marks, { dependsOn: { a: "process_started" } })],
      ({ client, dir }) =>
        Effect.gen(function* () {
          yield* client.up([])
          const rows = yield* client.status
          expect(rows.map((r) => [r.name, r.state])).toEqual([
            ["a", "running"],
            ["b", "running"]
          ])
          // the rows decode with the Schema the API uses: the --json shape
          expect(Schema.decodeUnknownSync(Schema.Array(ServiceStatus))(JSON.parse(JSON.stringify(rows)))).toEqual(rows)
          expect((yield* client.statusOf("b")).pid).toBeTypeOf("number")
          const unknown = yield* Effect.flip(client.statusOf("nope"))
          expect(unknown._tag).toBe("UnknownService")
          // one error class on both sides of the socket
          expect(unknown).toBeInstanceOf(UnknownService)
          expect(unknown.message).toContain('unknown service "nope"')

          const stateDir = join(dir, ".core-stack")
          expect(fs.statSync(join(stateDir, "control.sock")).mode & 0o777).toBe(0o600)
          expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700)
          expect(client.identity.pid).toBe(process.pid)

          const again = yield* Effect.flip(ensureNoSupervisor(stateDir))
          expect(again._tag).toBe("SupervisorRunning")
        })
    )
  })

  it.live("stop stops dependents first; start waits for dependency conditions; restart keeps dependents", () => {
    const marks = tempDir("core-marks-")
    const services = [counter("a", marks), counter("b", marks, { dependsOn: { a: "process_started" } })]
    return withServed(services, ({ client }) =>
      Effect.gen(function* () {
        yield* client.up([])
        const bPid = (yield* client.statusOf("b")).pid
        yield* client.restart("a")
        const restarted = yield* client.statusOf("a")
        expect(restarted.state).toBe("running")
        expect(restarted.restarts).toBe(1)
        expect((yield* client.statusOf("b")).pid).toBe(bPid)

        yield* client.stop("a")
        const rows = yield* client.status
        expect(rows.map((r) => [r.name, r.state])).toEqual([
          ["a", "stopped"],
          ["b", "stopped"]
        ])
        const refused = yield* Effect.flip(client.start("b"))
        expect(refused._tag).toBe("StartFailed")
        expect(refused).toBeInstanceOf(StartFailed)
        expect(refused.message).toContain("dependency a")
        yield* client.start("a")
        expect((yield* client.statusOf("a")).state).toBe("running")
        yield* client.start("b")
        expect((yield* client.statusOf("b")).state).toBe("running")
      })
    )
  })

  it.live("a verb written once runs on the local supervisor and over the socket alike", () => {
    const marks = tempDir("core-marks-")
    return withServed([counter("a", marks)], ({ client, local }) =>
      Effect.gen(function* () {
        yield* client.up([])
        const restart = serviceVerb("a", (supervisor) => supervisor.restart("a"))
        const remote = yield* Effect.provideService(restart, Supervisor, client)
        expect([remote.state, remote.restarts]).toEqual(["running", 1])
        const here = yield* Effect.provideService(restart, Supervisor, local)
        expect([here.state, here.restarts]).toEqual(["running", 2])
        const unknown = yield* Effect.flip(
          Effect.provideService(
            serviceVerb("nope", (s) => s.stop("nope")),
            Supervisor,
            client
          )
        )
        expect(unknown).toBeInstanceOf(UnknownService)
      })
    )
  })

  it.live("a name that no service can have reaches no other service or endpoint: it is unknown", () => {
    const marks = tempDir("core-marks-")
    return withServed(
      [counter("a", marks), counter("b", marks, { dependsOn: { a: "process_started" } })],
      ({ client }) =>
        Effect.gen(function* () {
          yield* client.up([])
          // as URL paths, these were a's stop and restart, b's logs, /services/logs, /logs
          const verbs = [
            client.stop("a/stop#"),
            client.restart("a/stop?"),
            client.start("a/restart"),
            Effect.asVoid(client.logs("b?", 5)),
            Effect.asVoid(client.logs("", 5)),
            Effect.asVoid(client.statusOf("..")),
            Stream.runDrain(client.follow("../a", 5))
          ]
          const names = ["a/stop#", "a/stop?", "a/restart", "b?", "", "..", "../a"]
          for (const [i, verb] of verbs.entries()) {
            const error = yield* Effect.flip(verb)
            expect(error).toBeInstanceOf(UnknownService)
            expect(error.message).toBe(`unknown service "${names[i]}" (known: a, b)`)
          }
          const rows = yield* client.status
          expect(rows.map((r) => [r.name, r.state, r.restarts])).toEqual([
            ["a", "running", 0],
            ["b", "running", 0]
          ])
        })
    )
  })

  it.live(
    "a request body past 1 MB is refused (the connection is reset), not read whole; the supervisor goes on",
    () => {
      const marks = tempDir("core-marks-")
      return withServed([counter("a", marks)], ({ client, dir }) =>
        Effect.gen(function* () {
          // what `up` takes, a list of names, padded with 2 MB of spaces
          const body = `{"services":[${" ".repeat(2 * 1024 * 1024)}]}`
          const status = yield* Effect.async<number>((resume) => {
            const request = http.request(
              {
                socketPath: join(dir, ".core-stack", "control.sock"),
                method: "POST",
                path: "/up",
                headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
              },
              (response) => {
                response.resume()
                resume(Effect.succeed(response.statusCode ?? 0))
              }
            )
            // the server ends the connection before the whole body is in
            request.on("error", () => resume(Effect.succeed(0)))
            request.end(body)
          })
          expect(status).not.toBe(200)
          expect((yield* client.status).map((r) => r.state)).toEqual(["pending"])
        })
      )
    }
  )

  it.live("a stack directory too deep for a socket address is served and reached all the same", () => {
    const marks = tempDir("core-marks-")
    const deep = join(tempDir("core-deep-"), "a-directory-name-long-enough".repeat(3), "and-more-of-it".repeat(2))
    fs.mkdirSync(deep, { recursive: true })
    expect(Buffer.byteLength(join(deep, ".core-stack", "control.sock"))).toBeGreaterThan(107)
    return withServed(
      [counter("a", marks)],
      ({ client, dir }) =>
        Effect.gen(function* () {
          expect(dir).toBe(deep)
          yield* client.up([])
          expect((yield* client.status).map((r) => r.state)).toEqual(["running"])
          expect(fs.statSync(join(deep, ".core-stack", "control.sock")).isSocket()).toBe(true)
        }),
      deep
    )
  })

  it.live("twenty concurrent restart requests each reach the supervisor and get an answer", () => {
    const marks = tempDir("core-marks-")
    return withServed([counter("a", marks)], ({ client }) =>
      Effect.gen(function* () {
        yield* client.up([])
        const answers = yield* Effect.forEach(
          Array.from({ length: 20 }, () => client.restart("a")),
          (e) => e,
          {
            concurrency: "unbounded"
          }
        )
        expect(answers.length).toBe(20)
        const row = yield* client.statusOf("a")
        expect(row.state).toBe("running")
        expect(row.restarts).toBe(20)
      })
    )
  })

  it.live("logs -n and follow across a restart", () => {
    const marks = tempDir("core-marks-")
    return withServed([counter("a", marks)], ({ client }) =>
      Effect.gen(function* () {
        yield* client.up([])
        const tail = yield* client.logs("a", 1)
        expect(tail.length).toBe(1)
        const all = yield* client.logs("a", 1000)
        expect(all.map((l) => l.text)).toEqual(["a started"])
        // followed from the last line, whose arrival shows the stream is connected (a fixed wait raced a busy machine)
        const connected = yield* Deferred.make<void>()
        const followed = yield* client.follow("a", 1).pipe(
          Stream.tap(() => Deferred.succeed(connected, undefined)),
          Stream.drop(1),
          Stream.filter((l) => l.text === "a started"),
          Stream.take(2),
          Stream.runCollect,
          Effect.fork
        )
        yield* Deferred.await(connected)
        yield* client.restart("a")
        yield* client.restart("a")
        const lines = Chunk.toArray(yield* Fiber.join(followed))
        expect(lines.map((l) => l.text)).toEqual(["a started", "a started"])
        expect(lines.every((l) => Schema.is(LogLineJson)(l))).toBe(true)
        const unknown = yield* Effect.flip(Stream.runDrain(client.follow("nope", DefaultTail)))
        expect(unknown._tag).toBe("UnknownService")
      })
    )
  })

  it.live("graph, metrics, and events: every row first, then each transition", () => {
    const marks = tempDir("core-marks-")
    return withServed(
      [counter("a", marks), counter("b", marks, { dependsOn: { a: "process_started" } })],
      ({ client }) =>
        Effect.gen(function* () {
          expect(yield* client.graph).toEqual({
            layers: [["a"], ["b"]],
            edges: [{ service: "b", dependsOn: "a", condition: "process_started" }],
            disabled: []
          })
          const rowsSeen = yield* Deferred.make<void>()
          const events = yield* client.events.pipe(
            Stream.filter((e) => e._tag === "Status"),
            Stream.map((e) => (e._tag === "Status" ? `${e.status.name}:${e.status.state}` : "")),
            Stream.zipWithIndex,
            Stream.tap(([, i]) => (i === 1 ? Deferred.succeed(rowsSeen, undefined) : Effect.void)),
            Stream.map(([e]) => e),
            Stream.takeUntil((e) => e === "b:running"),
            Stream.runCollect,
            Effect.fork
          )
          // the rows come first; the services start once they are in
          yield* Deferred.await(rowsSeen)
          yield* client.up([])
          const seen = Chunk.toArray(yield* Fiber.join(events))
          expect(seen.slice(0, 2)).toEqual(["a:pending", "b:pending"])
          expect(seen).toContain("a:running")
          expect(seen.at(-1)).toBe("b:running")
          // these fake services have no process: their usage is known to be nothing
          const rows = yield* client.status
          expect(rows.map((r) => [r.cpu, r.rss])).toEqual([
            [null, null],
            [null, null]
          ])
          const metrics = yield* client.metrics()
          expect(metrics.intervalMs).toBe(2000)
          expect(metrics.times.length).toBeGreaterThanOrEqual(1)
          expect(metrics.services.map((m) => [m.name, m.cpu.length, m.rss.length])).toEqual([
            ["a", metrics.times.length, metrics.times.length],
            ["b", metrics.times.length, metrics.times.length]
          ])
          expect((yield* client.metrics(metrics.times.at(-1)!)).times).toEqual([])
        })
    )
  })

  it.live("a follower still attached does not hold up the server's shutdown", () =>
    Effect.gen(function* () {
      const marks = tempDir("core-marks-")
      const dir = tempDir("core-api-")
      const stack = stackOf(dir, [counter("a", marks)])
      const scope = yield* Scope.make()
      const sup = yield* makeFakeSupervisor(stack)
      yield* serveControl(stack.stateDir, { onDown: Effect.void }).pipe(
        Effect.provideService(LocalSupervisor, sup),
        Scope.extend(scope)
      )
      yield* sup.up([])
      const clientScope = yield* Scope.make()
      const client = yield* connect(dir).pipe(Scope.extend(clientScope))
      const connected = yield* Deferred.make<void>()
      const follower = yield* client.follow("a", 5).pipe(
        Stream.tap(() => Deferred.succeed(connected, undefined)),
        Stream.runDrain,
        Effect.fork
      )
      yield* Deferred.await(connected)
      yield* Scope.close(scope, Exit.void)
      // the follower sees end-of-stream when the server goes away
      const exit = yield* Fiber.await(follower)
      yield* Scope.close(clientScope, Exit.void)
      expect(exit).toEqual(Exit.void)
    })
  )
})

describe("GET /status's body", () => {
  // fast-check makes records with an own "__proto__" key; the Schema's encoder assigns keys one by one and so
  // drops that one, where JSON.stringify keeps it. No row has one: the loader refuses a manifest with such a
  // key (the malformed case "names that JavaScript objects reserve or inherit")
  const withoutProtoPorts = (rows: ReadonlyArray<ServiceStatus>) =>
    rows.map((row) =>
      Object.hasOwn(row.ports, "__proto__")
        ? { ...row, ports: Object.fromEntries(Object.entries(row.ports).filter(([name]) => name !== "__proto__")) }
        : row
    )
  it("is what the Schema encodes: the same fields, values and order, with each row's usage", () => {
    const Rows = Schema.Array(ServiceStatus)
    const usage = FastCheck.option(
      FastCheck.record({ cpu: FastCheck.option(FastCheck.double()), rss: FastCheck.option(FastCheck.nat()) }),
      { nil: undefined }
    )
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(Rows).map(withoutProtoPorts), FastCheck.array(usage), (rows, usages) => {
        const latest = new Map(
          rows.flatMap((row, i) => {
            const u = usages[i]
            return u === undefined ? [] : [[row.name, { name: row.name, ...u }] as const]
          })
        )
        const withUsage = rows.map((row) => {
          const u = hasProcess(row.state) ? latest.get(row.name) : undefined
          return { ...row, cpu: u?.cpu ?? null, rss: u?.rss ?? null }
        })
        expect(statusBody(rows, latest)).toBe(JSON.stringify(Schema.encodeSync(Rows)(withUsage)))
      }),
      { numRuns: 300 }
    )
  })
})

describe("/events of a client that reads nothing", () => {
  it.live("is not queued for without limit: its stream ends once it is too far behind, after the rows", () =>
    Effect.gen(function* () {
      const row = (restarts: number): ServiceStatus => ({
        name: "a",
        state: "running",
        health: "none",
        pid: 1,
        restarts,
        startedAt: 0,
        exitCode: null,
        reason: null,
        ports: {}
      })
      const pubsub = yield* PubSub.unbounded<ServiceStatus>()
      const supervisor = { transitions: Stream.fromPubSub(pubsub), status: Effect.succeed([row(0)]) }
      const rowsSeen = yield* Deferred.make<void>()
      const reading = yield* Deferred.make<void>()
      const seen: Array<number> = []
      const client = yield* statusEvents(supervisor).pipe(
        Stream.runForEach((status) =>
          Effect.zipRight(
            Effect.sync(() => seen.push(status.restarts)),
            // the rows arrive; then the client stops reading until every transition is out
            Effect.zipRight(Deferred.succeed(rowsSeen, undefined), Deferred.await(reading))
          )
        ),
        Effect.fork
      )
      yield* Deferred.await(rowsSeen)
      for (let i = 1; i <= EVENTS_BEHIND_LIMIT + 1; i++) yield* PubSub.publish(pubsub, row(i))
      // every transition handed on to the client's queue (as while its socket is not read) before it reads again
      while ((yield* PubSub.size(pubsub)) > 0) yield* Effect.sleep("5 millis")
      yield* Deferred.succeed(reading, undefined)
      const ended = yield* Fiber.join(client).pipe(Effect.timeout("10 seconds"), Effect.option)
      expect(Option.isSome(ended)).toBe(true)
      expect(seen[0]).toBe(0)
      expect(seen.length).toBeLessThan(EVENTS_BEHIND_LIMIT)
    })
  )
})

describe("ControlClient without a supervisor", () => {
  it.live("a socket that accepts but never answers: ControlError after the hello timeout, not a hang", () =>
    Effect.gen(function* () {
      const dir = tempDir("core-mute-")
      const stateDir = join(dir, ".core-stack")
      fs.mkdirSync(stateDir, { mode: 0o700 })
      const sockets: Array<net.Socket> = []
      const mute = net.createServer((s) => sockets.push(s))
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          mute.listen(join(stateDir, "control.sock"), () => resume(Effect.void))
        }),
        () =>
          Effect.async<void>((resume) => {
            for (const s of sockets) s.destroy()
            mute.close(() => resume(Effect.void))
          })
      )
      const error = yield* Effect.flip(Effect.scoped(connect(dir)))
      expect(error._tag).toBe("ControlError")
      expect(error.message).toContain("no answer on")
    }).pipe(Effect.scoped)
  )

  it.live("fails with NoSupervisor: no state directory at all", () =>
    Effect.gen(function* () {
      const dir = tempDir("core-none-")
      const error = yield* Effect.flip(Effect.scoped(connect(dir)))
      expect(error).toBeInstanceOf(NoSupervisor)
      expect(error.message).toBe(`no stack running in ${dir} (start one with: core stack up -d)`)
    })
  )

  it.live("a pid file whose pid now belongs to another process (other start time) is stale", () =>
    Effect.gen(function* () {
      const dir = tempDir("core-reused-")
      const stateDir = join(dir, ".core-stack")
      fs.mkdirSync(stateDir, { mode: 0o700 })
      const pidFile = join(stateDir, "supervisor.pid")
      fs.writeFileSync(pidFile, JSON.stringify({ pid: process.pid, startTime: 1, dir }))
      const error = yield* Effect.flip(Effect.scoped(connect(dir)))
      expect(error._tag).toBe("NoSupervisor")
      expect(fs.existsSync(pidFile)).toBe(false)
      // the same pid with its real start time is a live supervisor: never touched
      fs.writeFileSync(pidFile, JSON.stringify({ pid: process.pid, startTime: readStartTime(process.pid), dir }))
      const starting = yield* Effect.flip(Effect.scoped(connect(dir)))
      expect(starting._tag).toBe("ControlError")
      expect(starting.message).toContain("is starting")
      expect(fs.existsSync(pidFile)).toBe(true)
      const running = yield* Effect.flip(ensureNoSupervisor(stateDir))
      expect(running.message).toBe(
        `a stack is already running in ${dir} (supervisor pid ${process.pid}; stop it with: core stack down)`
      )
    })
  )

  it.live("a stale socket and pid file of a dead supervisor are removed, and never make a verb hang", () =>
    Effect.gen(function* () {
      const dir = tempDir("core-stale-")
      const stateDir = join(dir, ".core-stack")
      fs.mkdirSync(stateDir, { mode: 0o700 })
      const socket = join(stateDir, "control.sock")
      // a socket file whose server was killed with SIGKILL: it stays, and refuses connections
      const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socket)})`])
      while (!fs.existsSync(socket)) yield* Effect.sleep("10 millis")
      child.kill("SIGKILL")
      yield* Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
        else child.once("exit", () => resume(Effect.void))
      })
      expect(fs.statSync(socket).isSocket()).toBe(true)
      fs.writeFileSync(join(stateDir, "supervisor.pid"), JSON.stringify({ pid: 999_999_999, startTime: 1, dir }))

      const error = yield* Effect.flip(Effect.scoped(connect(dir)))
      expect(error._tag).toBe("NoSupervisor")
      expect(fs.existsSync(socket)).toBe(false)
      expect(fs.existsSync(join(stateDir, "supervisor.pid"))).toBe(false)
    })
  )
})
