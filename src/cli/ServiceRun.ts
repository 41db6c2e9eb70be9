/**
 * `core <service> run [--no-deps]`: one service (its layer) in the foreground, with its dependencies unless
 * `--no-deps`. The services are those of the stack directory named on the command line.
 */
import { Command, Options } from "@effect/cli"
import { existsSync, readdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { dataOption, dirOption } from "./CliOptions.js"
import { foreground } from "./StackUp.js"

const noDeps = Options.boolean("no-deps").pipe(Options.withDescription("start this service alone"))

/** The stack directory as `--dir`, `CORE_DIR` or the current directory say, read before parsing. */
const stackDirOf = (argv: ReadonlyArray<string>): string => {
  const i = argv.findIndex((a) => a === "--dir" || a.startsWith("--dir="))
  const value = i < 0 ? undefined : argv[i].startsWith("--dir=") ? argv[i].slice(6) : argv[i + 1]
  return resolve(value ?? process.env.CORE_DIR ?? ".")
}

/** Names of the service folders that hold a service.json; none when the directory has no services. */
const serviceNames = (dir: string): ReadonlyArray<string> => {
  try {
    return readdirSync(join(dir, "services"))
      .filter(
        (name) => name !== "stack" && name !== "deploy" && existsSync(join(dir, "services", name, "service.json"))
      )
      .sort()
  } catch {
    return []
  }
}

export const serviceCommands = (argv: ReadonlyArray<string>) =>
  serviceNames(stackDirOf(argv)).map((name) =>
    Command.make(name).pipe(
      Command.withDescription(`The ${name} service`),
      Command.withSubcommands([
        Command.make("run", { dir: dirOption, data: dataOption, noDeps }, ({ dir, data, noDeps }) =>
          foreground({ dir, data, services: [name], noDeps })
        ).pipe(Command.withDescription(`Run ${name} in the foreground (with its dependencies unless --no-deps)`))
      ])
    )
  )
