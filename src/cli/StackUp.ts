/**
 * `core stack up [SERVICE...] [-d]`: start the stack (or the named services and their dependencies) in the
 * foreground, printing `name | line`, until Ctrl-C or SIGTERM; with `-d`, a background supervisor.
 */
import { Args, Command, Options } from "@effect/cli"
import type { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import { runStack, type StackRun, type StackRunOptions } from "../supervisor/StackRunner.js"
import { dataOption, dirOption } from "./CliOptions.js"
import { detach } from "./Detach.js"
import { dim, lineBatcher, linePrefixer, useColour } from "./Output.js"

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

/** Runs services in the foreground until Ctrl-C, SIGTERM, or a service that ends the stack. */
export const foreground = (options: Omit<StackRunOptions, "onProgress" | "beforeStart">) =>
  Effect.scoped(
    runStack({
      ...options,
      onProgress: (message) => process.stderr.write(`${message}\n`),
      beforeStart: printLines
    }).pipe(
      Effect.tap((run) =>
        Effect.sync(() =>
          process.stderr.write(`core: ${run.started.length} service(s) ready in ${run.readyMs} ms; Ctrl-C to stop\n`)
        )
      ),
      Effect.flatMap((run) => run.supervisor.exitRequested),
      Effect.flatMap((reason) => Effect.sync(() => process.stderr.write(`core: stopping the stack: ${reason}\n`)))
    )
  )

export const upCommand = Command.make(
  "up",
  { services, detach: detachOption, dir: dirOption, data: dataOption },
  ({ services, detach: background, dir, data }) =>
    background
      ? Effect.asVoid<unknown, unknown, FileSystem.FileSystem | Path.Path>(detach(dir, services, data))
      : Effect.asVoid(foreground({ dir, services, data }))
).pipe(Command.withDescription("Start the stack, or the named services and their dependencies"))
