/**
 * The connection to `/api/events`: a snapshot on every (re)connect, then the supervisor's transitions and
 * resource samples as they happen. Each event updates the model and redraws what it touched; nothing is polled.
 */
import type { StackGraphJson, UsageHistoryJson } from "../../api/ControlApi.js"
import type { ServiceStatus } from "../../stack/ServiceStatus.js"
import { renderGraph } from "./DependencyGraph.js"
import { renderTabs, selectedLog, selectLog } from "./LogPanel.js"
import { dirLabel, setConnection, stopAll } from "./PageLayout.js"
import { model } from "./PageModel.js"
import { rebuildRows, renderButtons, renderRow, renderUsage } from "./ServicesTable.js"
import { renderSummary } from "./StackSummary.js"

interface Snapshot {
  readonly dir: string
  readonly pid: number
  readonly status: ReadonlyArray<ServiceStatus>
  readonly graph: StackGraphJson
  readonly metrics: UsageHistoryJson
}

interface UsageSample {
  readonly time: number
  readonly services: ReadonlyArray<{ name: string; cpu: number | null; rss: number | null }>
}

const onSnapshot = (snapshot: Snapshot) => {
  model.dir = snapshot.dir
  model.supervisorUp = true
  dirLabel.textContent = snapshot.dir
  dirLabel.title = `supervisor pid ${snapshot.pid}`
  document.title = `core · ${snapshot.dir.split("/").pop()}`
  const order = snapshot.status.map((r) => r.name)
  const rebuild = order.join("\n") !== model.order.join("\n")
  model.order = order
  model.rows = new Map(snapshot.status.map((r) => [r.name, r]))
  model.capacity = Math.max(2, Math.ceil((15 * 60_000) / snapshot.metrics.intervalMs))
  model.times = [...snapshot.metrics.times]
  model.cpu = new Map(snapshot.metrics.services.map((m) => [m.name, [...m.cpu]]))
  model.rss = new Map(snapshot.metrics.services.map((m) => [m.name, [...m.rss]]))
  model.usage = new Map(snapshot.status.map((r) => [r.name, { cpu: r.cpu ?? null, rss: r.rss ?? null }]))
  if (rebuild) {
    rebuildRows(snapshot.status)
    renderTabs()
  }
  const graphKey = JSON.stringify(snapshot.graph)
  if (graphKey !== model.graphKey) {
    model.graphKey = graphKey
    renderGraph(snapshot.graph)
  }
  for (const name of order) {
    renderRow(name)
    renderUsage(name)
  }
  renderSummary()
  stopAll.disabled = false
  setConnection("live", "live")
  if (!model.order.includes(selectedLog()) && model.order.length > 0) selectLog(model.order.at(-1)!)
}

const onStatus = (row: ServiceStatus) => {
  if (!model.rows.has(row.name)) return
  model.rows.set(row.name, row)
  renderRow(row.name)
  renderSummary()
}

const onUsage = (sample: UsageSample) => {
  model.times.push(sample.time)
  const drop = model.times.length > model.capacity
  if (drop) model.times.shift()
  for (const u of sample.services) {
    model.usage.set(u.name, { cpu: u.cpu, rss: u.rss })
    for (const [series, value] of [
      [model.cpu, u.cpu],
      [model.rss, u.rss]
    ] as const) {
      const values = series.get(u.name) ?? []
      values.push(value)
      while (values.length > model.times.length) values.shift()
      series.set(u.name, values)
    }
    renderUsage(u.name)
  }
  renderSummary()
}

/** Opens the event stream; the browser reconnects by itself, and each reconnect starts with a snapshot. */
export const connect = () => {
  const events = new EventSource("api/events")
  const data = (e: Event): unknown => JSON.parse((e as MessageEvent<string>).data)
  events.addEventListener("snapshot", (e) => onSnapshot(data(e) as Snapshot))
  events.addEventListener("status", (e) => onStatus(data(e) as ServiceStatus))
  events.addEventListener("usage", (e) => onUsage(data(e) as UsageSample))
  events.addEventListener("supervisor", (e) => {
    const { reason } = data(e) as { reason: string }
    model.supervisorUp = false
    for (const name of model.order) renderButtons(name)
    stopAll.disabled = true
    setConnection("down", reason)
  })
  events.addEventListener("error", () => {
    if (events.readyState !== EventSource.OPEN) setConnection("lost", "reconnecting…")
  })
}
