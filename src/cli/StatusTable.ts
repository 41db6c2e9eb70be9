/**
 * The tables of `stack status` and `stack process list`, and their `--json` text. Plain code (no Effect): the
 * full CLI and the launcher's quick path (`QuickVerbs.ts`) print with these same functions.
 */
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { hasProcess } from "../stack/ServiceStates.js"
import { formatBytes, formatCpu, formatUptime } from "../supervisor/StatusFormat.js"

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

/** The `process list` table: NAME STATE PID RESTARTS EXIT REASON. */
export const formatProcessTable = (rows: ReadonlyArray<ServiceStatus>): string =>
  formatTable(
    ["NAME", "STATE", "PID", "RESTARTS", "EXIT", "REASON"],
    rows.map((r) => [
      r.name,
      r.state,
      r.pid === null ? "-" : String(r.pid),
      String(r.restarts),
      r.exitCode === null ? "-" : String(r.exitCode),
      r.reason ?? ""
    ])
  )

/** The `--json` text of rows already in their encoded form (what the control API carries): two-space indented. */
export const formatEncodedJson = (encoded: unknown): string => JSON.stringify(encoded, null, 2)
