/**
 * Exec probes, shutdown commands and builds run through the one child-process primitive: each is ended
 * with the stack (nothing of its process group is left when the scope closes), and a `kill -9` of the
 * supervisor ends it too: the spawner helper that started it kills it, or, started by Node's `spawn()`
 * (`CORE_SPAWNER=node`), the guardian it is recorded with.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { join, resolve } from "node:path"
import { ProcessRegistry } from "../src/process/ProcessRegistry.js"
import { runTool } from "../src/provision/RunTool.js"
import { recordedGroups as recordedBy } from "../src/state/StateRecords.js"
import { makeLocalSupervisor } from "../src/supervisor/LocalSupervisor.js"
import { eventually, parentOf, survivors } from "./support/Processes.js"
import { execProbe, service, stackOf, tempDir } from "./support/Specs.js"

/** A command that hangs, and leaves a background child in its group. */
const hang = "sleep 3600 & sleep 3600"

/** A registry that remembers every group registered, by owner, and which are still registered. */
const recordingRegistry = () => {
  const owners = new Map<number, string>()
  const registered = new Set<number>()
  const layer = Layer.succeed(ProcessRegistry, {
    register: (owner, pid) =>
      Effect.sync(() => {
        owners.set(pid, owner)
        registered.add(pid)
      }),
    unregister: (_owner, pid) => Effect.sync(() => registered.delete(pid))
  })
  const groupOf = (owner: string) => [...owners].find(([, o]) => o === owner)?.[0]
  return { owners, registered, layer, groupOf }
}

/** Waits (real time) until `check` holds; fails the test when it does not within 10 s. */
const waitFor = (what: string, check: () => boolean) =>
  Effect.promise(() => eventually(check, 10_000)).pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.die(`timed out waiting for ${what}`)))
  )

describe("child processes end with the stack", () => {
  it.live("a hanging exec probe, background child included", () =>
    Effect.gen(function* () {
      const registry = recordingRegistry()
      const scope = yield* Scope.make()
      const sup = yield* makeLocalSupervisor(
        stackOf(tempDir(), [
          service("svc", "sleep", ["3600"], {
            readiness: execProbe(hang, { timeoutMs: 3_600_000 }),
            readinessTimeoutMs: 3_600_000
          })
        ])
      ).pipe(Effect.provide(registry.layer), Scope.extend(scope))
      yield* Effect.fork(sup.up())
      yield* waitFor("the probe", () => registry.groupOf("svc (readiness probe)") !== undefined)
      const probe = registry.groupOf("svc (readiness probe)")!
      yield* waitFor("the probe's children", () => survivors([probe]).length >= 3)
      yield* Scope.close(scope, Exit.void)
      expect(survivors(registry.owners.keys())).toEqual([])
      expect([...registry.registered].map((pid) => registry.owners.get(pid))).toEqual([])
    })
  )

  it.live("a hanging shutdown command is ended at its timeout, with what it left in the background", () =>
    Effect.gen(function* () {
      const registry = recordingRegistry()
      const scope = yield* Scope.make()
      const sup = yield* makeLocalSupervisor(
        stackOf(tempDir(), [service("svc", "sleep", ["3600"], { shutdown: { command: hang, timeoutMs: 500 } })])
      ).pipe(Effect.provide(registry.layer), Scope.extend(scope))
      yield* sup.up()
      yield* sup.stop("svc")
      expect(registry.groupOf("svc (shutdown command)")).toBeDefined()
      expect(survivors(registry.owners.keys())).toEqual([])
      expect((yield* sup.statusOf("svc")).state).toBe("stopped")
      yield* Scope.close(scope, Exit.void)
      expect(registry.registered.size).toBe(0)
    })
  )

  it.live("a build: interrupted, or past its timeout", () =>
    Effect.gen(function* () {
      const registry = recordingRegistry()
      const options = { cwd: process.cwd(), env: process.env }
      const build = yield* Effect.fork(runTool("sh", ["-c", hang], options).pipe(Effect.provide(registry.layer)))
      yield* waitFor("the build", () => registry.groupOf("build: sh") !== undefined)
      const group = registry.groupOf("build: sh")!
      yield* waitFor("the build's children", () => survivors([group]).length >= 3)
      yield* Fiber.interrupt(build)
      expect(survivors([group])).toEqual([])

      const timed = yield* runTool("sh", ["-c", `echo started; ${hang}`], { ...options, timeoutMs: 300 })
      expect(timed).toMatchObject({ code: undefined, signal: "SIGKILL" })
      expect(timed.output).toContain("started")
      expect(timed.output).toContain("(killed after 300 ms)")
      expect(survivors(registry.owners.keys())).toEqual([])

      const missing = yield* Effect.flip(runTool("no-such-tool-here", [], options))
      expect(missing._tag).toBe("ToolError")
      expect(missing.message).toBe("no-such-tool-here not found on PATH")
    })
  )
})

const fixture = resolve(import.meta.dirname, "fixtures/control/child-supervisor.ts")

/** Starts the fixture supervisor leaving a `kind` of child hanging; the scope's end SIGKILLs what is left. */
const startSupervisor = (dir: string, kind: string, env: NodeJS.ProcessEnv) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess, Error>((resume) => {
      const child = spawn(process.execPath, ["--import", "tsx", fixture, dir, kind], {
        stdio: ["ignore", "pipe", "inherit"],
        detached: true,
        env
      })
      let out = ""
      child.stdout!.on("data", (b: Buffer) => {
        out += b.toString()
        if (out.includes("ready\n")) resume(Effect.succeed(child))
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`supervisor exited with ${code}: ${out}`))))
    }),
    (child) =>
      Effect.sync(() => {
        for (const pid of [...recordedGroups(dir).keys(), -child.pid!]) {
          try {
            process.kill(-pid, "SIGKILL")
          } catch {}
        }
      })
  )

/** The process groups recorded in `.core-stack/pids`, by owner. */
const recordedGroups = (dir: string): Map<number, string> =>
  new Map(recordedBy(join(dir, ".core-stack")).map((record) => [record.pid, record.service] as const))

describe("child processes end after kill -9 of the supervisor", () => {
  for (const [kind, owner] of [
    ["probe", "svc (readiness probe)"],
    ["shutdown", "svc (shutdown command)"],
    ["build", "build: sh"]
  ] as const)
    for (const [ender, env] of [
      // named: the fixture runs from the sources as an ES module, where no built helper is looked for
      ["the spawner", { ...process.env, CORE_SPAWNER: resolve(import.meta.dirname, "..", "dist", "core-spawner") }],
      ["the guardian", { ...process.env, CORE_SPAWNER: "node" }]
    ] as const) {
      it.scopedLive(`${kind}: ${ender} ends ${owner}`, () =>
        Effect.gen(function* () {
          const dir = tempDir("core-child-")
          const supervisor = yield* startSupervisor(dir, kind, env)
          yield* waitFor(owner, () => [...recordedGroups(dir).values()].includes(owner))
          const groups = [...recordedGroups(dir).keys()]
          const child = [...recordedGroups(dir)].find(([, o]) => o === owner)![0]
          yield* waitFor(`the children of ${owner}`, () => survivors([child]).length >= 3)
          expect(parentOf(child).name).toBe(ender === "the spawner" ? "core-spawner" : "node")

          supervisor.kill("SIGKILL")
          yield* waitFor("every recorded group to end", () => survivors(groups).length === 0)
          expect(survivors(groups)).toEqual([])
        })
      )
    }
})
