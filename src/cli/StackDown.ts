/**
 * `core stack down`: stop the running stack, dependents first; returns once every service process and the
 * supervisor have exited.
 */
import { Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { down } from "../app/RunningStack.js"
import { dirOption } from "./CliOptions.js"

export const downCommand = Command.make("down", { dir: dirOption }, ({ dir }) =>
  Effect.flatMap(down(dir), (stopped) =>
    Console.log(
      `stack in ${stopped.dir} stopped (supervisor pid ${stopped.pid}${stopped.starting ? ", which was starting or stopping and did not answer" : ""}) in ${stopped.ms} ms`
    )
  )
).pipe(Command.withDescription("Stop the running stack (dependents first) and wait until every process has exited"))
