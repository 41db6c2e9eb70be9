/**
 * How a program of `core` runs: expected failures as one readable message and a non-zero exit, defects as a bug
 * report, and the process's signals. Shared by the CLI (`Main`, `Start`) and the background supervisor
 * (`SupervisorMain`, `SupervisorSnapshot`), which holds no CLI parser.
 *
 * The first SIGINT/SIGTERM interrupts the program (runMain's handler): every service stops gracefully and the
 * exit code is 0. runMain then drops its listeners, so this keeps its own: a second signal SIGKILLs every
 * process group at once and exits 130.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, type Console, Effect, type Layer } from "effect"
import { restoreEnvironment } from "./app/SupervisorSpawn.js"
import { SECOND_INTERRUPT_LINE } from "./app/UpLines.js"
import { exitCodeOf } from "./cli/InterruptExit.js"
import { useColour } from "./cli/Output.js"
import { keepWriting } from "./logs/ResilientOutput.js"
import { killAllGroups } from "./process/ProcessGroup.js"
import * as Trace from "./trace/Trace.js"

const SGR = /\x1b\[[0-9;]*m/g

const plain = (value: unknown): unknown => (typeof value === "string" ? value.replace(SGR, "") : value)

/**
 * A console whose `log` and `error` drop colour escapes: @effect/cli colours its help and errors whatever
 * NO_COLOR says (CliConfig has no such option) and writes them through the Effect `Console`.
 */
const uncoloured = (base: Console.Console): Console.Console => ({
  ...base,
  log: (...args) => base.log(...args.map(plain)),
  error: (...args) => base.error(...args.map(plain))
})

/** Exit status for a usage error (the CLI has printed it already). */
const USAGE = 2

/** The message of an expected error: our errors carry a readable `message`. */
const describe = (error: unknown): string => {
  if (error && typeof error === "object" && "message" in error && typeof error.message === "string" && error.message) {
    return error.message
  }
  if (error && typeof error === "object" && "_tag" in error) return String(error._tag)
  return String(error)
}

/**
 * `program` as the CLI runs it: expected failures print `core: <message>` on stderr and set a non-zero exit
 * code; defects print the cause, as a bug report. An error `isUsageError` says the CLI has printed already
 * only sets the usage exit code.
 */
export const runProgram = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  live: Layer.Layer<R>,
  isUsageError: (error: NoInfer<E>) => boolean = () => false
) =>
  program.pipe(
    Effect.catchAll((error) =>
      Effect.sync(() => {
        if (isUsageError(error)) {
          process.exitCode = USAGE
          return
        }
        process.stderr.write(`core: ${describe(error)}\n`)
        process.exitCode = 1
      })
    ),
    Effect.catchAllDefect((defect) =>
      Effect.sync(() => {
        process.stderr.write(`core: internal error (please report it):\n${Cause.pretty(Cause.die(defect))}\n`)
        process.exitCode = 70
      })
    ),
    (program) => (useColour() ? program : Effect.consoleWith((base) => Effect.withConsole(program, uncoloured(base)))),
    Effect.provide(live)
  )

/** Runs the program `make` returns (made once the environment is restored) as this process's, until it exits. */
export const runAsProcess = <A>(make: () => Effect.Effect<A>): void => {
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

  NodeRuntime.runMain(make(), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(exitCodeOf(exit))
  })
}
