/**
 * `core <service> run [--no-deps]`: one service (its layer) in the foreground, with its dependencies unless
 * `--no-deps`. The services are those of the stack directory named on the command line.
 */
import { CliConfig, Command, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import { RESERVED_SERVICE_NAMES } from "../manifest/StackLoader.js"
import { dataOption, dirOption } from "./CliOptions.js"
import { foreground } from "./Foreground.js"

const noDeps = Options.boolean("no-deps").pipe(Options.withDescription("start this service alone"))

/**
 * The stack directory that `args` (without node and script) name, read with `--dir` itself before parsing
 * (from the first `--dir`: an unknown flag before it, such as `--help`, would be taken to hold a value).
 */
const stackDirOf = (args: ReadonlyArray<string>) => {
  const from = args.findIndex((arg) => arg === "--dir" || arg.startsWith("--dir="))
  return Options.processCommandLine(dirOption, from < 0 ? [] : args.slice(from), CliConfig.defaultConfig).pipe(
    Effect.map(([, , dir]) => dir),
    Effect.orElseSucceed(() => ".")
  )
}

/** Names of the service folders that hold a service.json; none when the directory has no services. */
const serviceNames = (dir: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = yield* fs.readDirectory(path.join(dir, "services")).pipe(Effect.orElseSucceed(() => []))
    return yield* Effect.filter(names.filter((name) => !RESERVED_SERVICE_NAMES.has(name)).sort(), (name) =>
      fs.exists(path.join(dir, "services", name, "service.json")).pipe(Effect.orElseSucceed(() => false))
    )
  })

/** One `<service> run` command per service of the stack directory that `args` name. */
export const serviceCommands = (args: ReadonlyArray<string>) =>
  Effect.map(Effect.flatMap(stackDirOf(args), serviceNames), (names) =>
    names.map((name) =>
      Command.make(name).pipe(
        Command.withDescription(`The ${name} service`),
        Command.withSubcommands([
          Command.make("run", { dir: dirOption, data: dataOption, noDeps }, ({ dir, data, noDeps }) =>
            foreground({ dir, data, services: [name], noDeps })
          ).pipe(Command.withDescription(`Run ${name} in the foreground (with its dependencies unless --no-deps)`))
        ])
      )
    )
  )
