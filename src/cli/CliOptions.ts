/**
 * Options shared by the `stack` verbs.
 */
import { Options } from "@effect/cli"

/** `--dir PATH`: the stack directory (default: env `CORE_DIR`, else the current directory). */
export const dirOption = Options.text("dir").pipe(
  Options.withDescription("stack directory (default: $CORE_DIR, else the current directory)"),
  Options.optional
)

/** `--json`: machine-readable output. */
export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON"))
