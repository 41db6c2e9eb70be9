/**
 * `core stack up [SERVICE...] [-d]`: start the stack (or the named services and their dependencies) in the
 * foreground, printing `name | line`, until Ctrl-C or SIGTERM; with `-d`, a background supervisor.
 */
import { Args, Command, Options } from "@effect/cli"
import type { FileSystem, Path } from "@effect/platform"
import { Console, Effect, Option } from "effect"
import type { StackRunOptions } from "../app/StackUp.js"
import { upDetached } from "../app/StackUpDetached.js"
import { dataOption, dirOption } from "./CliOptions.js"
import { foreground } from "./Foreground.js"
import { exitCodeOnInterrupt } from "./InterruptExit.js"
import { detachedReadyLine, INTERRUPTED_EXIT_CODE, INTERRUPTED_LINE } from "../app/UpLines.js"

const services = Args.text({ name: "SERVICE" }).pipe(
  Args.withDescription("services to start, with their dependencies (default: all)"),
  Args.repeated
)
const detachOption = Options.boolean("detach").pipe(
  Options.withAlias("d"),
  Options.withDescription("start a background supervisor and return once every service is ready")
)

/** Starts a background supervisor, showing its progress, and says where it runs once every service is ready. */
const background = (dir: StackRunOptions["dir"], services: ReadonlyArray<string>, data: Option.Option<string>) =>
  exitCodeOnInterrupt(INTERRUPTED_EXIT_CODE).pipe(
    Effect.zipRight(upDetached(dir, services, (lines) => Console.error(lines.join("\n")), Option.getOrUndefined(data))),
    // upDetached has stopped the supervisor it started when this runs
    Effect.onInterrupt(() => Console.error(INTERRUPTED_LINE)),
    Effect.flatMap((up) => Console.log(detachedReadyLine(up)))
  )

export const upCommand = Command.make(
  "up",
  { services, detach: detachOption, dir: dirOption, data: dataOption },
  ({ services, detach, dir, data }) =>
    detach
      ? Effect.asVoid<unknown, unknown, FileSystem.FileSystem | Path.Path>(background(dir, services, data))
      : Effect.asVoid(foreground({ dir, services, data }))
).pipe(Command.withDescription("Start the stack, or the named services and their dependencies"))
