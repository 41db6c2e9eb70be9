/**
 * The `core` command once its code is loaded: from `bin.ts` (the CLI bundle the launcher loads). The background
 * supervisor's startup snapshot (`SupervisorSnapshot.ts`) runs `SupervisorMain` the same way (`runAsProcess`).
 */
import { supervisorArguments } from "./app/SupervisorSpawn.js"
import { main } from "./Main.js"
import { runAsProcess } from "./Program.js"
import { mainSupervisor } from "./SupervisorMain.js"

/** Runs the CLI on `argv` (`[node, script, ...arguments]`) until it exits. */
export const start = (argv: ReadonlyArray<string>): void =>
  runAsProcess(() => {
    // the background supervisor, started by `up -d` with arguments it wrote itself, skips the CLI's parser
    const supervisor = process.env.CORE_SUPERVISOR === "1" ? supervisorArguments(argv) : undefined
    return supervisor === undefined ? main(argv) : mainSupervisor(supervisor)
  })
