/**
 * `core stack status [--json]`: one row per service of the running stack.
 */
import { Command } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { withClient } from "../api/ControlClient.js"
import { ServiceStatus } from "../stack/ServiceStatus.js"
import { formatUptime } from "../supervisor/StatusFormat.js"
import { dirOption, jsonOption } from "./CliOptions.js"
import { formatEncodedJson, formatStatusTable } from "./StatusTable.js"

export { formatStatusTable, formatUptime }

/** The documented `--json` shape of `stack status` and `stack process list`: an array of `ServiceStatus`. */
export const StatusJson = Schema.Array(ServiceStatus)

/** The `--json` text: the rows encoded with the API's Schema, two-space indented. */
export const formatStatusJson = (rows: ReadonlyArray<ServiceStatus>): string =>
  formatEncodedJson(Schema.encodeSync(StatusJson)(rows))

export const statusCommand = Command.make("status", { dir: dirOption, json: jsonOption }, ({ dir, json }) =>
  Effect.gen(function* () {
    const { rows, dropped } = yield* withClient(dir, (client) =>
      Effect.map(client.status, (rows) => ({ rows, dropped: client.identity.droppedOutputBytes ?? 0 }))
    )
    yield* Console.log(json ? formatStatusJson(rows) : formatStatusTable(rows, Date.now(), dropped))
  })
).pipe(
  Command.withDescription(
    "Show every service of the running stack: state, health, pid, restarts, uptime, CPU, memory, ports"
  )
)
