/**
 * The generated process-compose.yaml run by the real process-compose (built by
 * test/fixtures/compose/build-process-compose.sh into .dep/tools, or PROCESS_COMPOSE_BIN): headless, its
 * API on a Unix socket; every process must reach ready as process-compose reports it, `process-compose down`
 * must end the project, and no process of it may be left.
 *
 * In CI (CI=true) a missing process-compose fails the test; elsewhere the test is skipped until it is built.
 * The default stack (services/) runs when .dep holds nats-server, pocketbase and caddy (CI provisions them
 * before the tests); it is required in CI too.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Schedule } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { writeComposeFile } from "../src/deploy/ComposeFile.js"
import { loadStack } from "../src/manifest/StackLoader.js"
import { compatServices, trickyArgs, trickyEnv } from "./fixtures/compose/compat/stack.js"

const repo = join(import.meta.dirname, "..")
const fixture = join(import.meta.dirname, "fixtures", "compose", "compat")
const processCompose = process.env.PROCESS_COMPOSE_BIN ?? join(repo, ".dep", "tools", "process-compose")
const inCi = process.env.CI === "true"
const havePc = existsSync(processCompose)
const defaultBinaries = ["nats-server", "pocketbase", "caddy"]
const haveDefaultBinaries = defaultBinaries.every((name) => existsSync(join(repo, ".dep", name)))

/** One row of `process-compose process list -o json`. */
interface PcProcess {
  readonly name: string
  readonly status: string
  readonly is_ready: string
  readonly has_ready_probe: boolean
  readonly pid: number
  readonly exit_code: number
}

const freePort = () =>
  Effect.async<number>((resume) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resume(Effect.succeed(port)))
    })
  })

/** Processes (not zombies) in any of `groups`, or whose command line mentions `marker`. */
const survivors = (groups: ReadonlySet<number>, marker: string): ReadonlyArray<string> =>
  execFileSync("ps", ["-eo", "pid=,pgid=,stat=,args="])
    .toString()
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => {
      const [, pgid, stat] = line.split(/\s+/)
      if (line === "" || stat === undefined || stat.startsWith("Z")) return false
      return groups.has(Number(pgid)) || line.includes(marker)
    })
    .filter((line) => !line.includes(" ps -eo "))

/** A process-compose client command over the project's socket. */
const pcClient = (socket: string, args: ReadonlyArray<string>) =>
  Effect.try({
    try: () =>
      execFileSync(processCompose, [...args, "-U", "-u", socket], {
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 10_000
      }).toString(),
    catch: (error) =>
      new Error(
        `process-compose ${args.join(" ")}: ${String((error as { stderr?: unknown }).stderr ?? error)
          .split("\n")
          .filter((line) => !line.includes("config home"))
          .join("\n")}`
      )
  })

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Effect.void
    : Effect.async<void>((resume) => {
        child.once("exit", () => resume(Effect.void))
      })

/** SIGKILL to every group; a group already gone is fine. */
const killGroups = (groups: ReadonlySet<number>) =>
  Effect.sync(() => {
    for (const group of groups) {
      try {
        process.kill(-group, "SIGKILL")
      } catch {
        // already gone
      }
    }
  })

/**
 * Runs `process-compose up` for `file` in `dir`, in its own process group, for the scope. The release is for
 * a test that failed before its own `down`: it asks process-compose to shut down (its processes' groups are
 * not all known yet), then kills its group and every group seen, and any process left in `dir`'s name.
 */
const runProcessCompose = (dir: string, file: string, groups: Set<number>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const socket = join(dir, "pc.sock")
      const out = openSync(join(dir, "process-compose.out"), "a")
      const child = spawn(
        processCompose,
        ["up", "-f", file, "--tui=false", "-U", "-u", socket, "-L", join(dir, "process-compose.log")],
        { cwd: dir, detached: true, stdio: ["ignore", out, out] }
      )
      groups.add(child.pid!)
      return { child, socket }
    }),
    ({ child, socket }) =>
      Effect.gen(function* () {
        if (child.exitCode === null && child.signalCode === null) {
          yield* pcClient(socket, ["down"]).pipe(Effect.ignore)
          yield* exited(child).pipe(Effect.timeout("30 seconds"), Effect.ignore)
        }
        yield* killGroups(groups)
        yield* Effect.suspend(() => killGroups(new Set(survivors(groups, dir).map((l) => Number(l.split(/\s+/)[1])))))
        yield* exited(child).pipe(Effect.timeout("5 seconds"), Effect.ignore)
      })
  )

/**
 * Polls `process list` until every expected process is running and ready; fails with the last states at
 * once when one has ended (process-compose gave up on it), or when `within` has passed.
 */
const waitAllReady = (
  socket: string,
  expected: ReadonlyArray<string>,
  within: Duration.DurationInput,
  groups: Set<number>
) => {
  let last = "no answer yet"
  const ended = (r: PcProcess) => ["Completed", "Skipped", "Error", "Terminating"].includes(r.status)
  return pcClient(socket, ["process", "list", "-o", "json"]).pipe(
    Effect.mapError(() => ({ retry: true })),
    Effect.map((text) => JSON.parse(text) as ReadonlyArray<PcProcess>),
    Effect.tap((rows) => {
      last = rows.map((r) => `${r.name}: ${r.status}/${r.is_ready}`).join(", ")
      // each process runs in a process group of its own, which process-compose signals as a whole
      for (const row of rows) if (row.pid > 0) groups.add(row.pid)
    }),
    Effect.filterOrFail(
      (rows) => !rows.some(ended),
      () => ({ retry: false })
    ),
    Effect.filterOrFail(
      (rows) =>
        expected.every((name) =>
          rows.some((r) => r.name === name && r.status === "Running" && r.is_ready === "Ready" && r.pid > 0)
        ),
      () => ({ retry: true })
    ),
    Effect.retry({ schedule: Schedule.spaced("200 millis"), while: (e) => e.retry }),
    Effect.timeoutFail({ duration: within, onTimeout: () => ({ retry: false }) }),
    Effect.mapError(() => new Error(`not every process became ready: ${last}`))
  )
}

/**
 * Generates the compose file for the stack in `dir`, runs it, waits for every service to be ready, runs
 * `check` while it is up, shuts it down with `process-compose down` and asserts that nothing is left.
 */
const upReadyDown = (
  dir: string,
  env: Readonly<Record<string, string | undefined>>,
  expected: ReadonlyArray<string>,
  check: (rows: ReadonlyArray<PcProcess>) => Effect.Effect<void>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const stack = yield* loadStack(dir, { env })
      const file = yield* writeComposeFile(stack)
      const groups = new Set<number>()
      const { child, socket } = yield* runProcessCompose(dir, file, groups)

      const rows = yield* waitAllReady(socket, expected, "90 seconds", groups)
      expect(rows.map((r) => r.name).sort()).toEqual([...expected].sort())
      yield* check(rows)

      // process-compose answers `down` only after the shutdown and may close the socket first (the client then
      // reports EOF): what counts is that it exits and leaves nothing
      const down = yield* pcClient(socket, ["down"]).pipe(Effect.either)
      yield* exited(child).pipe(
        Effect.timeoutFail({
          duration: "60 seconds",
          onTimeout: () =>
            new Error(`process-compose did not exit after down (${down._tag === "Left" ? down.left.message : "ok"})`)
        })
      )
      // killed grandchildren may linger for a moment as orphans before they are gone
      let left = survivors(groups, dir)
      for (let i = 0; i < 20 && left.length > 0; i++) {
        yield* Effect.sleep("100 millis")
        left = survivors(groups, dir)
      }
      expect(left).toEqual([])
    })
  )

const missing = (what: string) => () => {
  throw new Error(`${what} is missing: run test/fixtures/compose/build-process-compose.sh (CI builds it)`)
}

describe("the generated process-compose.yaml under process-compose", () => {
  if (!havePc && inCi) it("process-compose is built", missing(processCompose))

  it.live.skipIf(!havePc)(
    "fixture stack: every process becomes ready, values arrive unexpanded, down leaves nothing",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "core-pc-compat-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        cpSync(join(fixture, "services"), join(dir, "services"), { recursive: true })
        cpSync(join(fixture, "svc.mjs"), join(dir, "svc.mjs"))
        const env = {
          ...process.env,
          CORE_PORT_WEB_HTTP: String(yield* freePort()),
          CORE_PORT_SOCKET_TCP: String(yield* freePort())
        }

        yield* upReadyDown(dir, env, compatServices, (rows) =>
          Effect.sync(() => {
            expect(rows.filter((r) => r.has_ready_probe).map((r) => r.name)).toEqual(["api", "socket", "web"])
            const dump = JSON.parse(readFileSync(join(dir, "services", "envdump", "env.json"), "utf8"))
            expect(dump.env).toEqual(trickyEnv)
            expect(dump.argv.slice(dump.argv.indexOf("--") + 1)).toEqual(trickyArgs)
            expect(dump.cwd).toBe(dir)
          })
        )
        // the stubborn service saw SIGTERM, ignored it, and is gone: process-compose escalated to SIGKILL
        expect(readFileSync(join(dir, ".core-stack", "logs", "stubborn.log"), "utf8")).toContain(
          "stubborn ignores SIGTERM"
        )
        expect(readFileSync(join(dir, ".core-stack", "logs", "worker.log"), "utf8")).toBe("worker ready.\n")
      }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)),
    120_000
  )

  if (havePc && !haveDefaultBinaries && inCi) {
    it("the default stack's binaries are provisioned in .dep", missing(`.dep/{${defaultBinaries.join(",")}}`))
  }

  it.live.skipIf(!havePc || !haveDefaultBinaries)(
    "default stack (nats, pocketbase, caddy): every process becomes ready, down leaves nothing",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "core-pc-default-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        cpSync(join(repo, "services"), join(dir, "services"), { recursive: true })
        symlinkSync(join(repo, ".dep"), join(dir, ".dep"))
        const env: Record<string, string | undefined> = { ...process.env }
        for (const name of [
          "CORE_PORT_NATS_CLIENT",
          "CORE_PORT_NATS_MONITOR",
          "CORE_PORT_POCKETBASE_HTTP",
          "CORE_PORT_CADDY_HTTP",
          "CORE_PORT_CADDY_ADMIN"
        ]) {
          env[name] = String(yield* freePort())
        }
        yield* upReadyDown(dir, env, ["caddy", "nats", "pocketbase"], () => Effect.void)
      }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)),
    180_000
  )
})
