/**
 * `core stack provision [SERVICE...] [--dir PATH]`: put the binaries of the stack (or of the named services
 * and their dependencies) into `.dep`, printing progress, and start nothing.
 */
import * as path from "node:path"
import { Args, Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { loadEnvironment, loadStack } from "../manifest/StackLoader.js"
import { provision } from "../provision/Provisioner.js"
import { dirOption } from "./CliOptions.js"

const services = Args.text({ name: "SERVICE" }).pipe(
  Args.withDescription("services whose binaries to provision, with their dependencies (default: all)"),
  Args.repeated
)

/** `core stack provision`. */
export const provisionCommand = Command.make("provision", { services, dir: dirOption }, ({ services, dir }) =>
  Effect.gen(function* () {
    const stackDir = dir
    const stack = yield* loadStack(stackDir)
    // `.env` counts for CORE_BIN_* overrides, PATH and Go's variables, as for the services.
    const env = yield* loadEnvironment(stackDir)
    const results = yield* provision(stack, services, {
      env,
      onProgress: (event) => {
        if (event._tag !== "Reused") process.stderr.write(`${event.message}\n`)
      }
    })
    for (const result of results) {
      const where = path.relative(stack.dir, result.path)
      const how = result.reused ? `already there, from ${result.source}` : `from ${result.source}`
      yield* Console.log(`${result.name} ${result.version}  ${where}  (${how}: ${result.origin})`)
    }
    if (results.length === 0) yield* Console.log("no binaries to provision")
  })
).pipe(Command.withDescription("Provision the binaries of the stack (or of the named services) into .dep"))
