/**
 * `core stack wait NAME... [--timeout SECONDS] [--dir PATH]`: return once each named service answers its own
 * readiness probe (against `CORE_HOST_<NAME>` when set); fail with a message naming the service, the check
 * and its last failure after the timeout. Used by the init containers of `core deploy k8s`.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect } from "effect"
import { waitForServices } from "../app/StackWait.js"
import { dirOption } from "./CliOptions.js"

const names = Args.text({ name: "SERVICE" }).pipe(Args.withDescription("services to wait for"), Args.atLeast(1))
const timeout = Options.integer("timeout").pipe(
  Options.withDescription("seconds to wait for all of them before failing"),
  Options.withDefault(60)
)

/** `core stack wait`. */
export const waitCommand = Command.make("wait", { names, timeout, dir: dirOption }, ({ names, timeout, dir }) =>
  Effect.gen(function* () {
    yield* waitForServices(dir, names, {
      timeoutSeconds: Math.max(1, timeout),
      onProgress: (line) => process.stderr.write(`core: ${line}\n`)
    })
  })
).pipe(
  Command.withDescription(
    "Wait until the named services answer their readiness probes (at $CORE_HOST_<NAME> when set), or fail after --timeout"
  )
)
