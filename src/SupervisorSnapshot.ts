/**
 * Entry of the background supervisor's V8 startup snapshot (`dist/core-supervisor.blob`, built by
 * `SupervisorSnapshotBuild.ts`). Building it evaluates the supervisor's program once (`SupervisorMain`: the
 * foreground `up` without the CLI); `up -d` then starts the supervisor from the snapshot (`node
 * --snapshot-blob`), which deserializes that heap instead of compiling and evaluating the CLI bundle. It runs
 * only `stack up --dir ROOT [SERVICE...]` (`supervisorArguments`); `spawnSupervisor` starts any other command
 * line from the CLI bundle.
 *
 * The build also loads a small stack of its own and writes its process-compose file (in a temporary folder,
 * removed after): the snapshot keeps the bytecode of every function that run compiled (manifest loading and its
 * Schemas, the compose file). A probe saw a warmed function's first call take 2.3 ms instead of 4.1; on the
 * start of 200 services, with and without the warm-up, the first spawn came at the same time within the noise
 * (4 runs each). It is kept because it costs nothing at run time, and it checks the build.
 *
 * Module state is the build's: whatever reads the environment at load must read it again here (`Trace`), and
 * `__dirname` is the build's `dist/` (the helper's folder is set again, `useBundleDir`).
 * Effect's default `Random` service keeps the seed it got at the build (the supervisor does not use it: no
 * jittered schedule; tokens come from `node:crypto`), and `Math.random` is seeded again by V8 at each start.
 * Effect's `Clock.currentTimeNanos` counts from the build's wall clock plus the monotonic clock, so it is off
 * after a reboot or a suspend; the supervisor uses `currentTimeMillis` (`Date.now`), which is not.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import { Effect } from "effect"
import { loadSelection } from "./app/StackUp.js"
import { supervisorArguments } from "./app/SupervisorSpawn.js"
import { writeComposeFile } from "./deploy/ComposeFile.js"
import { useBundleDir } from "./process/Spawner.js"
import { runAsProcess } from "./Program.js"
import { mainSupervisor, SupervisorLive } from "./SupervisorMain.js"
import * as Trace from "./trace/Trace.js"

/** A stack that uses what a supervisor's start uses: placeholders, a probe, a dependency, a shutdown. */
const WARM_UP_SERVICES: Record<string, unknown> = {
  first: {
    process: {
      command: "sleep",
      args: ["1"],
      env: { GREETING: "${env.HOME}", DATA: "${data}" },
      compose: {
        readiness_probe: { http_get: { host: "127.0.0.1", port: 1, path: "/" }, period_seconds: 1 },
        liveness_probe: { exec: { command: "true" }, period_seconds: 10 },
        shutdown: { signal: 15, timeout_seconds: 5 },
        availability: { restart: "on_failure", backoff_seconds: 1 }
      }
    },
    ports: { http: 1 }
  },
  second: {
    process: {
      command: "sleep",
      args: ["1"],
      compose: { depends_on: { first: { condition: "process_healthy" } }, ready_log_line: "ready" }
    }
  }
}

/** Loads `WARM_UP_SERVICES` in a temporary folder and writes their process-compose file, once. */
const warmUp = async (): Promise<void> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "core-snapshot-"))
  try {
    for (const [name, manifest] of Object.entries(WARM_UP_SERVICES)) {
      fs.mkdirSync(path.join(dir, "services", name), { recursive: true })
      fs.writeFileSync(path.join(dir, "services", name, "service.json"), JSON.stringify(manifest))
    }
    // a warm-up that fails fails the build: no blob rather than a cold one
    await Effect.runPromise(
      // (writeComposeFile makes the state folder, 0700 whatever the umask: one made here would fail its check)
      loadSelection(dir, []).pipe(
        Effect.flatMap(({ stack }) => writeComposeFile(stack)),
        Effect.provide(SupervisorLive)
      )
    )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (v8.startupSnapshot.isBuildingSnapshot()) {
  // a rejection ends the build with an error: `SupervisorSnapshotBuild` then leaves no blob and says why
  void warmUp()
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    // Node 20 builds snapshots without Error.stackTraceLimit and Effect saved that at load: errors would have
    // no stack at all (nodejs/node#55100)
    if (typeof Error.stackTraceLimit !== "number") Error.stackTraceLimit = 10
    Trace.refresh()
    // the launcher that started it (`dist/core.cjs`; the file, not npm's symlink), beside the helper it spawns with
    const launcher = process.argv[1]
    try {
      // (an empty path would be the working directory's)
      if (launcher) useBundleDir(path.dirname(fs.realpathSync(launcher)))
    } catch {
      // no such file: the build's folder stays, as before
    }
    Trace.mark("node started from the supervisor snapshot")
    const args = supervisorArguments(process.argv)
    if (args === undefined) {
      // not what `spawnSupervisor` starts from here: a command line for the CLI bundle
      process.stderr.write(`core: the supervisor's snapshot runs only \`stack up --dir ROOT [SERVICE...]\`\n`)
      process.exitCode = 2
      return
    }
    runAsProcess(() => mainSupervisor(args))
  })
}
