/**
 * `core stack generate [--dir PATH]`: write `.core-stack/process-compose.yaml` for the stack (the same file
 * `core stack up` writes) and exit. Starts nothing and needs no provisioned binary: `${dep.NAME}` is the
 * `.dep` path whether or not the binary is there yet.
 */
import { Command } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { writeComposeFile } from "../deploy/ComposeFile.js"
import { loadStack } from "../manifest/StackLoader.js"
import { dataOption, dirOption } from "./CliOptions.js"

/** `core stack generate`. */
export const generateCommand = Command.make("generate", { dir: dirOption, data: dataOption }, ({ dir, data }) =>
  Effect.gen(function* () {
    const stack = yield* loadStack(dir, Option.isSome(data) ? { dataDir: data.value } : {})
    const written = yield* writeComposeFile(stack)
    yield* Console.log(written)
  })
).pipe(
  Command.withDescription(
    "Write .core-stack/process-compose.yaml for process-compose (see docs/PROCESS-COMPOSE.md) and exit"
  )
)
