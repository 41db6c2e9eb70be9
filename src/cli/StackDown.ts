/**
 * `core stack down`: stop the running stack, dependents first; returns once every service process and the
 * supervisor have exited.
 */
import { Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { withClient } from "../api/ControlClient.js"
import { dirOption } from "./CliOptions.js"

export const downCommand = Command.make("down", { dir: dirOption }, ({ dir }) =>
  Effect.gen(function* () {
    const root = dir
    const started = Date.now()
    const pid = yield* withClient(root, (client) => Effect.as(client.down, client.identity.pid))
    yield* Console.log(`stack in ${root} stopped (supervisor pid ${pid}) in ${Date.now() - started} ms`)
  })
).pipe(Command.withDescription("Stop the running stack (dependents first) and wait until every process has exited"))
