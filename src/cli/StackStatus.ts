/**
 * `core stack status [--json]`: one row per service of the running stack.
 */
import { Command } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { withClient } from "../api/ControlClient.js"
import { hasProcess, ServiceStatus } from "../stack/ServiceStatus.js"
import { formatBytes, formatCpu, formatUptime } from "../supervisor/StatusFormat.js"
import { dirOption, jsonOption } from "./CliOptions.js"

export { formatUptime }

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export const formatTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

/**
 * The `stack status` table: SERVICE STATE HEALTH PID RESTARTS UPTIME CPU RSS PORTS. `now` in epoch ms;
 * `supervisorDropped`: bytes of the supervisor's own output it could not write.
 */
export const formatStatusTable = (rows: ReadonlyArray<ServiceStatus>, now: number, supervisorDropped = 0): string =>
  [formatRows(rows, now), ...droppedNote(rows), ...supervisorDroppedNote(supervisorDropped)].join("\n")

/** A line under the table when the supervisor could not write its own output (`.core-stack/supervisor.log`). */
const supervisorDroppedNote = (dropped: number): ReadonlyArray<string> =>
  dropped > 0 ? [`supervisor output not written (disk full?): ${dropped} bytes`] : []

/** A line under the table when log lines could not be written to their files. */
const droppedNote = (rows: ReadonlyArray<ServiceStatus>): ReadonlyArray<string> => {
  const dropped = rows.filter((r) => (r.droppedLogBytes ?? 0) > 0)
  if (dropped.length === 0) return []
  const list = dropped.map((r) => `${r.name} ${r.droppedLogBytes} bytes`).join(", ")
  return [`log output not written to .core-stack/logs (disk full?): ${list}`]
}

const formatRows = (rows: ReadonlyArray<ServiceStatus>, now: number): string =>
  formatTable(
    ["SERVICE", "STATE", "HEALTH", "PID", "RESTARTS", "UPTIME", "CPU", "RSS", "PORTS"],
    rows.map((r) => [
      r.name,
      r.state,
      r.health,
      r.pid === null ? "-" : String(r.pid),
      String(r.restarts),
      hasProcess(r.state) && r.startedAt !== null ? formatUptime(now - r.startedAt) : "-",
      formatCpu(r.cpu),
      formatBytes(r.rss),
      Object.entries(r.ports)
        .map(([name, port]) => `${name}=${port}`)
        .join(",") || "-"
    ])
  )

/** The documented `--json` shape of `stack status` and `stack process list`: an array of `ServiceStatus`. */
export const StatusJson = Schema.Array(ServiceStatus)

/** The `--json` text: the rows encoded with the API's Schema, two-space indented. */
export const formatStatusJson = (rows: ReadonlyArray<ServiceStatus>): string =>
  JSON.stringify(Schema.encodeSync(StatusJson)(rows), null, 2)

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
