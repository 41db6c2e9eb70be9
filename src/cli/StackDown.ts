/**
 * `core stack down`: stop the running stack, dependents first; returns once every service process and the
 * supervisor have exited.
 */
import { Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { down } from "../app/RunningStack.js"
import { dirOption } from "./CliOptions.js"

export const downCommand = Command.make("down", { dir: dirOption }, ({ dir }) =>
  Effect.flatMap(down(dir), ({ dir, pid, ms, stopped }) =>
    Console.log(
      stopped === "on request"
        ? `stack in ${dir} stopped (supervisor pid ${pid}) in ${ms} ms`
        : stopped === "supervisor signalled"
          ? `stack in ${dir} stopped (supervisor pid ${pid}, which was starting or stopping and did not answer) in ${ms} ms`
          : `stack in ${dir} stopped while it was starting (its up -d, pid ${pid}, stopped what it had started) in ${ms} ms`
    )
  )
).pipe(Command.withDescription("Stop the running stack (dependents first) and wait until every process has exited"))
