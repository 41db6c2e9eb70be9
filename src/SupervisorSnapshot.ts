/**
 * Entry of the background supervisor's V8 startup snapshot (`dist/core-supervisor.blob`, built by
 * `SupervisorSnapshotBuild.ts`). Building it evaluates the supervisor's program once (`SupervisorMain`: the
 * foreground `up` without the CLI); `up -d` then starts the supervisor from the snapshot (`node
 * --snapshot-blob`), which deserializes that heap instead of compiling and evaluating the CLI bundle. It runs
 * only `stack up --dir ROOT [SERVICE...]` (`supervisorArguments`); `spawnSupervisor` starts any other command
 * line from the CLI bundle.
 *
 * The build also runs a small stack of its own, up and down, in a temporary folder removed after (its
 * manifests loaded, its process-compose file written, its two services started through the guardian and the
 * spawner, one probed, and stopped): the snapshot keeps the bytecode of every function that run compiled, so
 * the supervisor does not compile them lazily on first call. Measured against the manifests and compose file
 * alone (alternated `up -d`s, `CORE_TRACE=1`): the 3-level chain's first spawn 16-22 ms sooner after the
 * supervisor's first line, its services ready 28-33 ms sooner; 200 services that only run, ready 21-68 ms sooner.
 * That run loads `net` and `child_process` into the snapshot (Node warns that the second is not verified there;
 * every process and socket of the run is closed before the snapshot is taken).
 *
 * Module state is the build's: whatever reads the environment at load must read it again here (`Trace`), and
 * `__dirname` is the build's `dist/` (the helper's folder is set again, `useBundleDir`). So is Node's own timer
 * state: a timer the build's run cleared before it fired left Node believing its native timer already set for
 * that time, so that no timer due later was ever set, and a supervisor ended by its event loop running dry
 * while its guardian's release waited on one (5 of 8 `down`s of 200 services left the pid file). A timer set
 * as the supervisor starts (`wakeTimers`) has Node set its native timer again.
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
import { loadSelection, runStack } from "./app/StackUp.js"
import { supervisorArguments } from "./app/SupervisorSpawn.js"
import { writeComposeFile } from "./deploy/ComposeFile.js"
import { useBundleDir } from "./process/Spawner.js"
import { runAsProcess } from "./Program.js"
import { mainSupervisor, SupervisorLive } from "./SupervisorMain.js"
import * as Trace from "./trace/Trace.js"

/**
 * A stack that uses what a supervisor's start and stop use: placeholders, probes, a dependency, a ready line, a
 * shutdown. Its processes run until stopped (`sleep`), so that stopping them is warmed up too.
 */
const WARM_UP_SERVICES: Record<string, unknown> = {
  first: {
    process: {
      command: "sleep",
      args: ["60"],
      env: { GREETING: "${env.HOME}", DATA: "${data}" },
      compose: {
        readiness_probe: { exec: { command: "true" }, period_seconds: 1 },
        liveness_probe: { exec: { command: "true" }, period_seconds: 10 },
        shutdown: { signal: 15, timeout_seconds: 5 },
        availability: { restart: "on_failure", backoff_seconds: 1 }
      }
    }
  },
  second: {
    process: {
      command: "sh",
      args: ["-c", "echo ready; exec sleep 60"],
      compose: { depends_on: { first: { condition: "process_healthy" } }, ready_log_line: "ready" }
    }
  }
}

/** The process's listeners of the events a supervisor listens to: a warm-up must leave none behind. */
const processListeners = (): number =>
  ["SIGINT", "SIGTERM", "exit", "beforeExit"].reduce((sum, event) => sum + process.listenerCount(event), 0)

/**
 * Runs `WARM_UP_SERVICES` once in a temporary folder: loaded, their process-compose file written, started and
 * stopped. Fails when anything of that run is left in this process: a listener, a timer, a handle other than
 * the build's own output.
 */
const warmUp = async (): Promise<void> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "core-snapshot-"))
  const listeners = processListeners()
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
        Effect.zipRight(Effect.scoped(runStack({ dir, services: [], serve: false }))),
        Effect.provide(SupervisorLive)
      )
    )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const left = process.getActiveResourcesInfo().filter((kind) => kind !== "TTYWrap" && kind !== "PipeWrap")
  if (processListeners() !== listeners || left.length > 0) {
    throw new Error(
      `the warm-up left ${processListeners() - listeners} listener(s) and ${left.join(", ") || "no"} resource(s)`
    )
  }
}

/**
 * Has Node set its native timer again: the build's run may have left its timer state believing one set (see
 * the header), and then no timer due later than that would ever be. A timer due now is earlier than any the
 * build set; once it fires, Node's state is right again.
 */
const wakeTimers = (): void => {
  setTimeout(() => {}, 0)
}

if (v8.startupSnapshot.isBuildingSnapshot()) {
  // a rejection ends the build with an error: `SupervisorSnapshotBuild` then leaves no blob and says why
  void warmUp()
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    // Node 20 builds snapshots without Error.stackTraceLimit and Effect saved that at load: errors would have
    // no stack at all (nodejs/node#55100)
    if (typeof Error.stackTraceLimit !== "number") Error.stackTraceLimit = 10
    wakeTimers()
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
