/**
 * The exit code of an interrupted command (Ctrl-C, SIGTERM). `stack up` in the foreground is stopped that way
 * on purpose, so 0 by default; a command that an interruption cuts short (`up -d` before its stack is ready)
 * sets a non-zero code, so that `core stack up -d && npm test` does not go on without a stack. Read once, by
 * the runtime's teardown in bin.ts.
 */
import { Cause, Effect, Exit } from "effect"

export { INTERRUPTED_EXIT_CODE } from "../app/UpLines.js"

let onInterrupt = 0

/** Makes an interruption of the program exit with `code`. */
export const exitCodeOnInterrupt = (code: number): Effect.Effect<void> =>
  Effect.sync(() => {
    onInterrupt = code
  })

/** The process's exit code for the program's exit: 1 for a failure, the code set above for an interruption. */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? onInterrupt : 1
