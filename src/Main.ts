/**
 * The one place where layers are composed: the CLI program with the Node platform, and the rendering of
 * every expected error as one readable message and a non-zero exit.
 */
import { CliConfig, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Cause, type Console, Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { cli } from "./cli/Cli.js"
import { useColour } from "./cli/Output.js"
import { foreground } from "./cli/StackUp.js"

export const MainLive = Layer.mergeAll(NodeContext.layer, CliConfig.layer({ showBuiltIns: false }))

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
 * code; defects print the cause, as a bug report.
 */
const runProgram = <A, E, R>(program: Effect.Effect<A, E, R>, live: Layer.Layer<R>) =>
  program.pipe(
    Effect.catchAll((error) =>
      Effect.sync(() => {
        if (ValidationError.isValidationError(error)) {
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

/** The CLI run on `argv` (`[node, script, ...arguments]`). */
export const main = (argv: ReadonlyArray<string>) => runProgram(cli(argv), MainLive)

/**
 * What the background supervisor's program needs, and no more: building the whole `MainLive` (Node's command
 * executor, terminal and worker layers, the CLI's config) was ~10 ms of its start before the first spawn
 * (traced, 6 alternated runs each: 15-23 ms from the bundle to the command against 6-10 ms with this).
 */
const SupervisorLive = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

/**
 * What a background supervisor was asked, when its arguments are exactly what `spawnSupervisor` writes:
 * `stack up --dir ROOT [SERVICE...]`, ROOT absolute, no option among the services. Anything else is
 * undefined, and goes through the CLI.
 */
export const supervisorArguments = (
  argv: ReadonlyArray<string>
): { readonly dir: string; readonly services: ReadonlyArray<string> } | undefined => {
  const [, , stack, up, dirFlag, dir, ...services] = argv
  if (stack !== "stack" || up !== "up" || dirFlag !== "--dir" || dir === undefined || !path.isAbsolute(dir))
    return undefined
  if (services.some((name) => name.startsWith("-"))) return undefined
  return { dir: path.resolve(dir), services }
}

/**
 * The background supervisor's `stack up --dir ROOT [SERVICE...]` without the CLI's parser (~45 ms of its
 * start, traced): the foreground `up` the CLI would run for those arguments.
 */
export const mainSupervisor = (args: { readonly dir: string; readonly services: ReadonlyArray<string> }) =>
  runProgram(foreground({ dir: args.dir, services: args.services, data: Option.none() }), SupervisorLive)
