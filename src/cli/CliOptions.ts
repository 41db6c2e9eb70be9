/**
 * Options shared by the `stack` verbs.
 */
import { Options } from "@effect/cli"
import { Config } from "effect"
import { resolve } from "node:path"

/** `--dir PATH`: the absolute stack directory; default env `CORE_DIR`, else the current directory. */
export const dirOption = Options.text("dir").pipe(
  Options.withDescription("stack directory (default: $CORE_DIR, else the current directory)"),
  Options.withFallbackConfig(Config.string("CORE_DIR")),
  Options.withDefault("."),
  Options.map((dir) => resolve(dir))
)

/** `--data PATH`: the data directory, `${data}` (default: env `CORE_DATA_DIR`, else `.data` in the stack directory). */
export const dataOption = Options.text("data").pipe(
  Options.withDescription("data directory, ${data} (default: $CORE_DATA_DIR, else .data in the stack directory)"),
  Options.optional
)

/** `--json`: machine-readable output. */
export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON"))
