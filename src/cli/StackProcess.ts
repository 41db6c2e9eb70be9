/**
 * `core stack process list|logs|restart|stop|start`: one service of the running stack.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Stream } from "effect"
import { DefaultTail } from "../api/ControlApi.js"
import { onRunningStack, serviceVerb } from "../app/RunningStack.js"
import { whenStdoutClosed } from "../logs/ResilientOutput.js"
import type { LogLine } from "../logs/ServiceLog.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { Supervisor } from "../supervisor/Supervisor.js"
import { dirOption, jsonOption } from "./CliOptions.js"
import { formatStatusJson } from "./StackStatus.js"
import { formatProcessTable } from "./StatusTable.js"

export { formatProcessTable }

const name = Args.text({ name: "name" }).pipe(Args.withDescription("service name"))

/** One line about a service after a verb: `a: running (pid 123, restarts 1)`. */
export const describeStatus = (row: ServiceStatus): string => {
  const details = [row.pid === null ? undefined : `pid ${row.pid}`, `restarts ${row.restarts}`]
  if (row.reason) details.push(row.reason)
  return `${row.name}: ${row.state} (${details.filter(Boolean).join(", ")})`
}

const listCommand = Command.make("list", { dir: dirOption, json: jsonOption }, ({ dir, json }) =>
  Effect.gen(function* () {
    const rows = yield* onRunningStack(
      dir,
      Effect.flatMap(Supervisor, (supervisor) => supervisor.status)
    )
    yield* Console.log(json ? formatStatusJson(rows) : formatProcessTable(rows))
  })
).pipe(Command.withDescription("List the processes of the running stack"))

/** A line as `logs` prints it: the service's text as is, the supervisor's notes as `[core] …`. */
export const formatLogLine = (line: LogLine): string => (line.supervisor ? `[core] ${line.text}` : line.text)

const follow = Options.boolean("follow").pipe(
  Options.withAlias("f"),
  Options.withDescription("keep printing new lines, across restarts and log rotation, until Ctrl-C")
)
const tail = Options.integer("tail").pipe(
  Options.withAlias("n"),
  Options.withDefault(DefaultTail),
  Options.withDescription("number of past lines to print")
)

const logsCommand = Command.make("logs", { name, follow, tail, dir: dirOption }, ({ name, follow, tail, dir }) =>
  Effect.gen(function* () {
    const n = Math.max(0, tail)
    yield* onRunningStack(
      dir,
      Effect.flatMap(Supervisor, (supervisor) =>
        follow
          ? Stream.runForEach(supervisor.follow(name, n), (line) => Console.log(formatLogLine(line))).pipe(
              // `logs -f | head`: once the reader is gone, stop following (the follow itself never ends)
              Effect.raceFirst(Effect.async<void>((resume) => Effect.sync(whenStdoutClosed(() => resume(Effect.void)))))
            )
          : Effect.flatMap(supervisor.logs(name, n), (lines) =>
              Effect.forEach(lines, (line) => Console.log(formatLogLine(line)))
            )
      )
    )
  })
).pipe(Command.withDescription("Print a service's output: the last N lines, then new ones with --follow"))

/** A verb on one service (`restart`, `stop`, `start`): run it, then print the service's row. */
const verbCommand = (verb: "restart" | "stop" | "start", description: string) =>
  Command.make(verb, { name, dir: dirOption }, ({ name, dir }) =>
    Effect.gen(function* () {
      const row = yield* onRunningStack(
        dir,
        serviceVerb(name, (supervisor) => supervisor[verb](name))
      )
      yield* Console.log(describeStatus(row))
    })
  ).pipe(Command.withDescription(description))

const restartCommand = verbCommand(
  "restart",
  "Restart a service and wait until it is ready; its dependents keep running"
)
const stopCommand = verbCommand("stop", "Stop a service, after the services that depend on it")
const startCommand = verbCommand(
  "start",
  "Start a stopped service once its dependencies' conditions hold; wait until it is ready"
)

export const processCommand = Command.make("process").pipe(
  Command.withDescription("Inspect and control one process of the running stack"),
  Command.withSubcommands([listCommand, logsCommand, restartCommand, stopCommand, startCommand])
)
