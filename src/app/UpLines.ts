/**
 * What `core stack up -d` prints at its end, plain (no Effect): the full CLI (`StackUp.ts`) and the launcher's
 * quick wait (`QuickUp.ts`) print the same lines.
 */

/** 128 + SIGINT, as a shell reports a command ended by Ctrl-C. */
export const INTERRUPTED_EXIT_CODE = 130

/** `up -d` done: every service ready. */
export const detachedReadyLine = (up: {
  readonly ready: ReadonlyArray<string>
  readonly readyMs: number
  readonly pid: number
  readonly output: string
}): string =>
  `core: ${up.ready.length} service(s) ready in ${up.readyMs} ms; supervisor pid ${up.pid}, output in ${up.output}; stop with: core stack down`

/** `up -d` interrupted before its stack was ready (the supervisor it started is stopped by then). */
export const INTERRUPTED_LINE =
  "core: interrupted before the stack was ready: stopped what was starting; nothing is left running"

/** A second Ctrl-C or SIGTERM. */
export const SECOND_INTERRUPT_LINE = "core: second interrupt: killing every process group now"
