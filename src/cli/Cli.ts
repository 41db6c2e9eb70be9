/**
 * The command tree: `core stack <verb>`, `core deploy <target>` and `core <service> run`.
 */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import { deployCommand } from "./Deploy.js"
import { downCommand } from "./StackDown.js"
import { generateCommand } from "./StackGenerate.js"
import { processCommand } from "./StackProcess.js"
import { provisionCommand } from "./StackProvision.js"
import { statusCommand } from "./StackStatus.js"
import { uiCommand } from "./StackUi.js"
import { upCommand } from "./StackUp.js"
import { waitCommand } from "./StackWait.js"
import { serviceCommands } from "./ServiceRun.js"

export const stackCommand = Command.make("stack").pipe(
  Command.withDescription("Run and inspect the stack of this directory"),
  Command.withSubcommands([
    upCommand,
    downCommand,
    statusCommand,
    processCommand,
    generateCommand,
    provisionCommand,
    waitCommand,
    uiCommand
  ])
)

/** The root command, with one `<service> run` command per service of the stack directory given in argv. */
export const rootCommand = (argv: ReadonlyArray<string>) =>
  Effect.map(serviceCommands(argv.slice(2)), (services) =>
    Command.make("core").pipe(
      Command.withDescription("Run a stack of native services from per-service manifests"),
      Command.withSubcommands([stackCommand, deployCommand, ...services])
    )
  )

export const version = "0.1.0"

export const cli = (argv: ReadonlyArray<string>) =>
  Effect.flatMap(rootCommand(argv), (root) => Command.run(root, { name: "core", version })(argv))
