/**
 * `core deploy <target>`: files that run the stack elsewhere, one verb per target (`fly`, `k8s`).
 * Generators in `src/deploy/` are pure; `WriteFiles.ts` writes what they return.
 */
import { Command } from "@effect/cli"
import { deployFlyCommand } from "./DeployFly.js"
import { deployK8sCommand } from "./DeployK8s.js"

/** `core deploy`: the group; each target is one subcommand. */
export const deployCommand = Command.make("deploy").pipe(
  Command.withDescription("Write the files that deploy the stack (Fly.io; Kubernetes)"),
  Command.withSubcommands([deployFlyCommand, deployK8sCommand])
)
