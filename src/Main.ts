/**
 * The one place where the CLI's layers are composed: the CLI program with the Node platform, run by `Program`
 * (every expected error as one readable message and a non-zero exit). The background supervisor's program is
 * `SupervisorMain`.
 */
import { CliConfig, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Layer } from "effect"
import { cli } from "./cli/Cli.js"
import { runProgram } from "./Program.js"

export const MainLive = Layer.mergeAll(NodeContext.layer, CliConfig.layer({ showBuiltIns: false }))

/** The CLI run on `argv` (`[node, script, ...arguments]`). */
export const main = (argv: ReadonlyArray<string>) => runProgram(cli(argv), MainLive, ValidationError.isValidationError)
