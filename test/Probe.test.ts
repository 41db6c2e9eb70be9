import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Ref, TestClock } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import {
  LivenessFailed,
  plainRequest,
  ProbeError,
  runCheck,
  waitReady,
  waitReadyWith,
  watchLiveness,
  watchLivenessWith
} from "../src/health/Probe.js"
import type { ProbeCheck, ProbeSpec } from "../src/manifest/ServiceSpec.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "core-probe-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** A loopback HTTP server: /ok 200, /redirect 302, /error 500, /slow never answers. */
const httpServer = Effect.acquireRelease(
  Effect.async<http.Server>((resume) => {
    const server = http.createServer((req, res) => {
      if (req.url === "/ok") res.writeHead(200).end("ok")
      else if (req.url === "/redirect") res.writeHead(302, { location: "/ok" }).end()
      else if (req.url === "/error") res.writeHead(500).end("boom")
      else if (req.url === "/header") res.writeHead(req.headers["x-probe"] === "yes" ? 204 : 400).end()
      // /slow: no answer
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => (server.address() as net.AddressInfo).port))

/** A port nothing listens on: bound, then released. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const get = (port: number, p: string, headers: Record<string, string> = {}): ProbeCheck => ({
  _tag: "http_get",
  scheme: "http",
  host: "127.0.0.1",
  port,
  path: p,
  headers
})

const failureReason = <A>(effect: Effect.Effect<A, ProbeError>) =>
  effect.pipe(
    Effect.flip,
    Effect.map((e) => e.reason)
  )

/** Members of process group `pgid` still alive (zombies excluded). */
const groupMembers = (pgid: number): Array<string> =>
  execFileSync("ps", ["-eo", "pgid=,stat=,args="])
    .toString()
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => {
      const [group, stat] = l.split(/\s+/)
      return Number(group) === pgid && stat !== undefined && !stat.startsWith("Z")
    })

describe("runCheck http_get", () => {
  it.scopedLive("200 and 3xx are ok, 500 fails with the status, custom headers are sent", () =>
    Effect.gen(function* () {
      const port = yield* httpServer
      yield* runCheck(get(port, "/ok"), 2000)
      yield* runCheck(get(port, "/redirect"), 2000)
      yield* runCheck(get(port, "/header", { "x-probe": "yes" }), 2000)
      expect(yield* failureReason(runCheck(get(port, "/header"), 2000))).toContain("answered 400")
      const reason = yield* failureReason(runCheck(get(port, "/error"), 2000))
      expect(reason).toBe(`GET http://127.0.0.1:${port}/error answered 500`)
    })
  )

  it.live("a closed port fails with the connection error", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      expect(yield* failureReason(runCheck(get(port, "/"), 2000))).toContain("ECONNREFUSED")
    })
  )

  it.scopedLive("a response slower than the timeout fails with a timeout", () =>
    Effect.gen(function* () {
      const port = yield* httpServer
      const reason = yield* failureReason(runCheck(get(port, "/slow"), 200))
      expect(reason).toBe(`GET http://127.0.0.1:${port}/slow gave no answer within 200 ms`)
    })
  )
})

/** A loopback server that answers every connection with `answer` (written in pieces), then closes; it records what it was sent. */
const rawServer = (answer: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly received: Array<string> }>((resume) => {
      const received: Array<string> = []
      const server = net.createServer((socket) => {
        let request = ""
        socket.on("data", (chunk) => {
          request += chunk.toString("latin1")
          if (!request.includes("\r\n\r\n")) return
          received.push(request)
          const pieces = [...answer]
          const next = () => {
            const piece = pieces.shift()
            if (piece === undefined) return socket.end()
            socket.write(piece, () => setImmediate(next))
          }
          next()
        })
        socket.on("error", () => {})
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, received })))
    }),
    ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(Effect.map(({ server, received }) => ({ port: (server.address() as net.AddressInfo).port, received })))

describe("runCheck http_get over a bare connection (plain http, no headers of its own)", () => {
  it.scopedLive("sends what Node's client sends and reads the status line, even in pieces", () =>
    Effect.gen(function* () {
      const { port, received } = yield* rawServer(["HT", "TP/1.1 2", "04 No Content\r", "\nX: y\r\n\r\n"])
      yield* runCheck(get(port, "/ready?x=1"), 2000)
      expect(received).toEqual([`GET /ready?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`])
    })
  )

  it("writes the Host header as Node's client does: no port when it is 80", () => {
    expect(plainRequest({ host: "localhost", port: 80, path: "/" })).toBe(
      "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    expect(plainRequest({ host: "10.0.0.1", port: 8080, path: "/h" })).toBe(
      "GET /h HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n\r\n"
    )
  })

  it.scopedLive("skips interim 1xx answers, as Node's client does", () =>
    Effect.gen(function* () {
      const early = yield* rawServer(["HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "HTTP/1.1 503 Busy\r\n\r\n"])
      expect(yield* failureReason(runCheck(get(early.port, "/"), 2000))).toBe(
        `GET http://127.0.0.1:${early.port}/ answered 503`
      )
      const ok = yield* rawServer(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\n\r\n"])
      yield* runCheck(get(ok.port, "/"), 2000)
    })
  )

  it.scopedLive("an answer that is not HTTP, or none before the connection closes, fails with why", () =>
    Effect.gen(function* () {
      const garbage = yield* rawServer(["SSH-2.0-OpenSSH\r\n"])
      expect(yield* failureReason(runCheck(get(garbage.port, "/"), 2000))).toBe(
        `GET http://127.0.0.1:${garbage.port}/: the answer is not HTTP`
      )
      const silent = yield* rawServer([])
      expect(yield* failureReason(runCheck(get(silent.port, "/"), 2000))).toBe(
        `GET http://127.0.0.1:${silent.port}/: ECONNRESET: socket hang up`
      )
    })
  )
})

describe("runCheck tcp", () => {
  it.scopedLive("a listening port is ok, a closed one fails", () =>
    Effect.gen(function* () {
      const port = yield* httpServer
      yield* runCheck({ _tag: "tcp", host: "127.0.0.1", port }, 2000)
      const closed = yield* closedPort
      const reason = yield* failureReason(runCheck({ _tag: "tcp", host: "127.0.0.1", port: closed }, 2000))
      expect(reason).toContain(`connect to 127.0.0.1:${closed}`)
      expect(reason).toContain("ECONNREFUSED")
    })
  )
})

describe("runCheck exec", () => {
  it.scopedLive("exit 0 is ok; non-zero fails with the code and the last output line; runs in workingDir", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      fs.writeFileSync(path.join(dir, "marker"), "")
      yield* runCheck({ _tag: "exec", command: "test -f marker", workingDir: dir }, 5000)
      const reason = yield* failureReason(
        runCheck({ _tag: "exec", command: "echo not ready yet >&2; exit 3", workingDir: dir }, 5000)
      )
      expect(reason).toBe("exec `echo not ready yet >&2; exit 3` exited with 3: not ready yet")
      const missing = yield* failureReason(
        runCheck({ _tag: "exec", command: "true", workingDir: path.join(dir, "missing") }, 5000)
      )
      expect(missing).toContain("ENOENT")
    })
  )

  it.scopedLive("runs with the environment it is given (the service's), not the supervisor's", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const check = { _tag: "exec", command: 'test "$CORE_PROBE_FOO" = bar', workingDir: dir } as const
      yield* runCheck(check, 5000, { env: { PATH: process.env["PATH"], CORE_PROBE_FOO: "bar" } })
      expect(yield* failureReason(runCheck(check, 5000))).toContain("exited with 1")
    })
  )

  it.scopedLive("a command over its timeout is killed with its whole group", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const pidFile = path.join(dir, "pid")
      const command = `echo $$ > ${pidFile}; sleep 300 & sleep 301; wait`
      const reason = yield* failureReason(runCheck({ _tag: "exec", command, workingDir: dir }, 500))
      expect(reason).toContain("gave no answer within 500 ms")
      const pgid = Number(fs.readFileSync(pidFile, "utf8").trim())
      expect(pgid).toBeGreaterThan(1)
      expect(groupMembers(pgid)).toEqual([])
    })
  )

  it.scopedLive("background processes left by a successful command are swept", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const pidFile = path.join(dir, "pid")
      yield* runCheck(
        { _tag: "exec", command: `echo $$ > ${pidFile}; sleep 302 >/dev/null 2>&1 &`, workingDir: dir },
        5000
      )
      const pgid = Number(fs.readFileSync(pidFile, "utf8").trim())
      expect(groupMembers(pgid)).toEqual([])
    })
  )
})

describe("runCheck: errors thrown while starting a check", () => {
  it.scopedLive("fail the check with their reason (they were lost: readiness waited forever)", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      fs.writeFileSync(path.join(dir, "a-file"), "")
      const huge = yield* failureReason(
        runCheck({ _tag: "exec", command: "x".repeat(200 * 1024), workingDir: dir }, 5000)
      )
      expect(huge).toContain("E2BIG")
      expect(huge.length).toBeLessThan(400)
      const notDir = yield* failureReason(
        runCheck({ _tag: "exec", command: "true", workingDir: path.join(dir, "a-file") }, 5000)
      )
      expect(notDir).toContain("ENOTDIR")
      const port = yield* closedPort
      const badPath = yield* failureReason(runCheck(get(port, "/a b"), 5000))
      expect(badPath).toContain(`GET http://127.0.0.1:${port}/a b: cannot send the request`)
    })
  )
})

const timing = { initialDelayMs: 0, periodMs: 1000, timeoutMs: 100, successThreshold: 1, failureThreshold: 3 }

/** A check that fails `failures` times, then succeeds; counts its calls. */
const scripted = (failures: number) =>
  Effect.map(Ref.make(0), (calls) => ({
    calls,
    check: Ref.updateAndGet(calls, (n) => n + 1).pipe(
      Effect.flatMap((n) => (n > failures ? Effect.void : Effect.fail(new ProbeError({ reason: `not yet ${n}` }))))
    )
  }))

describe("waitReady (TestClock)", () => {
  it.effect("checks at once: an up service is ready without any time passing", () =>
    Effect.gen(function* () {
      const { calls, check } = yield* scripted(0)
      yield* waitReadyWith(check, timing)
      expect(yield* Ref.get(calls)).toBe(1)
    })
  )

  it.effect("retries fast, then backs off; reports every result with its reason", () =>
    Effect.gen(function* () {
      const { calls, check } = yield* scripted(3)
      const results: Array<[boolean, string | undefined]> = []
      const fiber = yield* Effect.fork(waitReadyWith(check, timing, (ok, reason) => results.push([ok, reason])))
      yield* TestClock.adjust("9 millis")
      expect(yield* Ref.get(calls)).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(calls)).toBe(2)
      yield* TestClock.adjust("10 millis")
      expect(yield* Ref.get(calls)).toBe(3)
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(calls)).toBe(4)
      expect(results).toEqual([
        [false, "not yet 1"],
        [false, "not yet 2"],
        [false, "not yet 3"],
        [true, undefined]
      ])
    })
  )

  it.effect("never fails by itself, however many failures; waits for successThreshold in a row", () =>
    Effect.gen(function* () {
      const { calls, check } = yield* scripted(150)
      const fiber = yield* Effect.fork(waitReadyWith(check, { ...timing, successThreshold: 2 }))
      yield* TestClock.adjust("30 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      expect(yield* Ref.get(calls)).toBeLessThan(150)
      yield* TestClock.adjust("600 seconds")
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      expect(yield* Ref.get(calls)).toBe(152)
    })
  )

  it.effect("a hanging check counts as a failure after timeoutMs (real checks time out on the Effect clock)", () =>
    Effect.gen(function* () {
      const hang = yield* Ref.make(true)
      const check = Effect.flatMap(Ref.get(hang), (h) =>
        h
          ? Effect.never.pipe(
              Effect.timeoutFail({ duration: "100 millis", onTimeout: () => new ProbeError({ reason: "slow" }) })
            )
          : Effect.void
      )
      const reasons: Array<string | undefined> = []
      const fiber = yield* Effect.fork(waitReadyWith(check, timing, (_, r) => reasons.push(r)))
      yield* TestClock.adjust("100 millis")
      expect(reasons).toEqual(["slow"])
      yield* Ref.set(hang, false)
      // the next check comes 15 % of the 100 ms elapsed later
      yield* TestClock.adjust("15 millis")
      yield* Fiber.join(fiber)
      expect(reasons).toEqual(["slow", undefined])
    })
  )
})

describe("watchLiveness (TestClock)", () => {
  it.effect("fails with LivenessFailed after failureThreshold failures, one period apart", () =>
    Effect.gen(function* () {
      const failing = yield* Ref.make(false)
      const check = Effect.flatMap(Ref.get(failing), (f) =>
        f ? Effect.fail(new ProbeError({ reason: "down" })) : Effect.void
      )
      const fiber = yield* Effect.fork(watchLivenessWith(check, timing))
      yield* TestClock.adjust("5 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* Ref.set(failing, true)
      yield* TestClock.adjust("2 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 seconds")
      const error = yield* Fiber.join(fiber).pipe(Effect.flip)
      expect(error).toBeInstanceOf(LivenessFailed)
      expect(error.reason).toBe("down")
      expect(error.consecutiveFailures).toBe(3)
    })
  )

  it.effect("afterReady: the first check comes one period after the start, not at once", () =>
    Effect.gen(function* () {
      const checks = yield* Ref.make(0)
      const check = Ref.update(checks, (n) => n + 1)
      yield* Effect.fork(watchLivenessWith(check, timing, undefined, { afterReady: true }))
      yield* TestClock.adjust(timing.periodMs - 1)
      expect(yield* Ref.get(checks)).toBe(0)
      yield* TestClock.adjust(1)
      expect(yield* Ref.get(checks)).toBe(1)
      yield* TestClock.adjust(timing.periodMs)
      expect(yield* Ref.get(checks)).toBe(2)
    })
  )

  it.effect("failures in the grace period do not count", () =>
    Effect.gen(function* () {
      const check = Effect.fail(new ProbeError({ reason: "down" }))
      const fiber = yield* Effect.fork(
        watchLivenessWith(check, { ...timing, initialDelayMs: 5000, failureThreshold: 1 })
      )
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(fiber.unsafePoll()).not.toBeNull()
    })
  )
})

describe("waitReady / watchLiveness with real checks", () => {
  it.scopedLive("waitReady sees a server that starts listening later", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const spec: ProbeSpec = { ...timing, check: { _tag: "tcp", host: "127.0.0.1", port } }
      const reasons: Array<string | undefined> = []
      const fiber = yield* Effect.fork(waitReady(spec, (ok, r) => reasons.push(ok ? "ok" : r)))
      yield* Effect.sleep("50 millis")
      const server = net.createServer((s) => s.destroy())
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.listen(port, "127.0.0.1", () => resume(Effect.void))
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
          })
      )
      yield* Fiber.join(fiber)
      expect(reasons.at(-1)).toBe("ok")
      expect(reasons[0]).toContain("ECONNREFUSED")
    })
  )

  it.live("watchLiveness fails against a closed port", () =>
    Effect.gen(function* () {
      const port = yield* closedPort
      const error = yield* watchLiveness({
        ...timing,
        periodMs: 20,
        failureThreshold: 2,
        check: { _tag: "tcp", host: "127.0.0.1", port }
      }).pipe(Effect.flip)
      expect(error._tag).toBe("LivenessFailed")
      expect(error.reason).toContain("ECONNREFUSED")
    })
  )
})
