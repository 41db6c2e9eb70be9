/**
 * `core deploy <target>`: write the stack as deployment files for a platform.
 */
import { Command } from "@effect/cli"
import { deployK8sCommand } from "./DeployK8s.js"

export const deployCommand = Command.make("deploy").pipe(
  Command.withDescription("Write deployment files for the stack (see docs/DEPLOYMENT.md)"),
  Command.withSubcommands([deployK8sCommand])
)
