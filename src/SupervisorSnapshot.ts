/**
 * Entry of the background supervisor's V8 startup snapshot (`dist/core-supervisor.blob`, built by
 * `SupervisorSnapshotBuild.ts`). Building it evaluates the supervisor's program once (`SupervisorMain`: the
 * foreground `up` without the CLI); `up -d` then starts the supervisor from the snapshot (`node
 * --snapshot-blob`), which deserializes that heap instead of compiling and evaluating the CLI bundle. It runs
 * only `stack up --dir ROOT [SERVICE...]` (`supervisorArguments`); `spawnSupervisor` starts any other command
 * line from the CLI bundle.
 *
 * The build also runs a small stack of its own, up and down (`SnapshotWarmUp`): the snapshot keeps the bytecode
 * of every function that run compiled.
 *
 * Module state is the build's: whatever reads the environment at load must read it again here (`Trace`), and
 * `__dirname` is the build's `dist/` (the helper's folder is set again, `useBundleDir`). So is Node's timer
 * state (`SnapshotWarmUp` leaves none of its own; `wakeTimers` is the guard for any other).
 * Effect's default `Random` service keeps the seed it got at the build (the supervisor does not use it: no
 * jittered schedule; tokens come from `node:crypto`), and `Math.random` is seeded again by V8 at each start.
 * Effect's `Clock.currentTimeNanos` counts from the build's wall clock plus the monotonic clock, so it is off
 * after a reboot or a suspend; the supervisor uses `currentTimeMillis` (`Date.now`), which is not.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as v8 from "node:v8"
import { supervisorArguments } from "./app/SupervisorSpawn.js"
import { useBundleDir } from "./process/Spawner.js"
import { runAsProcess } from "./Program.js"
import { warmUp } from "./SnapshotWarmUp.js"
import { mainSupervisor } from "./SupervisorMain.js"
import * as Trace from "./trace/Trace.js"

/**
 * Has Node set its native timer again, in case the build left its timer state believing one set for some time:
 * no timer due later than that time would ever be set (`SnapshotWarmUp`). A timer due at once is due before any
 * time the build's run can have left, unless this start took longer than that run; once it fires, Node's state
 * is right again.
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
