/**
 * The exit code of an interrupted command (Ctrl-C, SIGTERM). `stack up` in the foreground is stopped that way
 * on purpose, so 0 by default; a command that an interruption cuts short (`up -d` before its stack is ready)
 * sets a non-zero code, so that `core stack up -d && npm test` does not go on without a stack. Read once, by
 * the runtime's teardown in bin.ts.
 */
import { Cause, Effect, Exit } from "effect"

export { INTERRUPTED_EXIT_CODE } from "../app/UpLines.js"

let onInterrupt = 0
let onSuccess = 0

/** Makes an interruption of the program exit with `code`. */
export const exitCodeOnInterrupt = (code: number): Effect.Effect<void> =>
  Effect.sync(() => {
    onInterrupt = code
  })

/**
 * Makes the program's success exit with `code`: the foreground `up` ended by a service (`exit_on_failure`,
 * `exit_on_end`) exits with that service's code, as process-compose does.
 */
export const exitCodeOnSuccess = (code: number): Effect.Effect<void> =>
  Effect.sync(() => {
    onSuccess = code
  })

/**
 * The process's exit code for the program's exit: 1 for a failure, the codes set above for an interruption and
 * for a success.
 */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit) ? onSuccess : Cause.isInterruptedOnly(exit.cause) ? onInterrupt : 1
