/**
 * `core stack up [SERVICE...] [-d]`: start the stack (or the named services and their dependencies) in the
 * foreground, printing `name | line`, until Ctrl-C or SIGTERM; with `-d`, a background supervisor.
 */
import { Args, Command, Options } from "@effect/cli"
import type { FileSystem, Path } from "@effect/platform"
import { Console, Effect, Option } from "effect"
import { type StackRun, type StackRunOptions, upForeground } from "../app/StackUp.js"
import { upDetached } from "../app/StackUpDetached.js"
import { dataOption, dirOption } from "./CliOptions.js"
import { exitCodeOnInterrupt, exitCodeOnSuccess } from "./InterruptExit.js"
import { dim, lineBatcher, linePrefixer, useColour } from "./Output.js"
import { detachedReadyLine, INTERRUPTED_EXIT_CODE, INTERRUPTED_LINE } from "../app/UpLines.js"

const services = Args.text({ name: "SERVICE" }).pipe(
  Args.withDescription("services to start, with their dependencies (default: all)"),
  Args.repeated
)
const detachOption = Options.boolean("detach").pipe(
  Options.withAlias("d"),
  Options.withDescription("start a background supervisor and return once every service is ready")
)

/**
 * The foreground printer: every line of every service, and the supervisor's own notes, dimmed. It stays
 * subscribed to the end, so that the shutdown's notes are printed too.
 */
const printLines = (run: StackRun) =>
  Effect.sync(() => {
    const colour = useColour()
    const prefix = linePrefixer(
      run.supervisor.stack.services.map((s) => s.name),
      colour
    )
    // one write per turn of the event loop, not per line: a service flooding its output would otherwise cost a
    // synchronous write per line to supervisor.log (about 0.85 ms of CPU per thousand lines)
    const out = lineBatcher((text) => process.stdout.write(text))
    process.once("exit", out.flush)
    run.supervisor.onLine((service, line) => {
      const text = line.supervisor ? dim(`[core] ${line.text}`, colour) : line.text
      out.push(`${prefix(service)}${text}\n`)
    })
  })

/**
 * `3 service(s) ready in 170184 ms (provisioning 169772 ms, start 412 ms)`: a first run's builds and downloads
 * apart from the start itself.
 */
export const readySummary = (run: Pick<StackRun, "started" | "readyMs" | "provisionMs">): string =>
  `${run.started.length} service(s) ready in ${run.readyMs} ms (provisioning ${run.provisionMs} ms, start ${run.readyMs - run.provisionMs} ms)`

/** Runs services in the foreground until Ctrl-C, SIGTERM, or a service that ends the stack. */
export const foreground = (options: Omit<StackRunOptions, "onProgress" | "beforeStart">) =>
  upForeground(
    { ...options, onProgress: (message) => process.stderr.write(`${message}\n`), beforeStart: printLines },
    (run) => Effect.sync(() => process.stderr.write(`core: ${readySummary(run)}; Ctrl-C to stop\n`))
  ).pipe(
    // ended by a service: its exit code is the command's (a supervisor that restarts the command on failure,
    // as `fly.toml`'s on-failure policy does, must see one that failed)
    Effect.flatMap((end) =>
      Effect.zipRight(
        Effect.sync(() => process.stderr.write(`core: stopping the stack: ${end.reason}\n`)),
        exitCodeOnSuccess(end.exitCode)
      )
    )
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
