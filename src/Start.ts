/**
 * The `core` command once its code is loaded: from `bin.ts` (the CLI bundle the launcher loads) and from the
 * background supervisor's startup snapshot (`SupervisorSnapshot.ts`).
 *
 * The first SIGINT/SIGTERM interrupts the program (runMain's handler): every service stops gracefully and the
 * exit code is 0. runMain then drops its listeners, so this keeps its own: a second signal SIGKILLs every
 * process group at once and exits 130.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { restoreEnvironment } from "./app/SupervisorSpawn.js"
import { SECOND_INTERRUPT_LINE } from "./app/UpLines.js"
import { exitCodeOf } from "./cli/InterruptExit.js"
import { keepWriting } from "./logs/ResilientOutput.js"
import { main, mainSupervisor, supervisorArguments } from "./Main.js"
import { killAllGroups } from "./process/ProcessGroup.js"
import * as Trace from "./trace/Trace.js"

/** Runs the CLI on `argv` (`[node, script, ...arguments]`) until it exits. */
export const start = (argv: ReadonlyArray<string>): void => {
  Trace.mark("bundle evaluated")
  restoreEnvironment()
  if (Trace.tracing()) process.once("exit", () => Trace.mark("exit"))

  // a full disk or a closed pipe must not end the supervisor (and with it, through the guardian, every service)
  keepWriting(process.stdout)
  keepWriting(process.stderr)

  let signals = 0
  const onSignal = () => {
    if (++signals < 2) return
    process.stderr.write(`${SECOND_INTERRUPT_LINE}\n`)
    killAllGroups()
    process.exit(130)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)

  // the background supervisor, started by `up -d` with arguments it wrote itself, skips the CLI's parser
  const supervisor = process.env.CORE_SUPERVISOR === "1" ? supervisorArguments(argv) : undefined
  NodeRuntime.runMain(supervisor === undefined ? main(argv) : mainSupervisor(supervisor), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(exitCodeOf(exit))
  })
}
