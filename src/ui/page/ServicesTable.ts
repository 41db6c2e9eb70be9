/** The services table: a row per service with its state, health, process, ports, resource sparklines and verbs. */
import type { ServiceStatus } from "../../stack/ServiceStatus.js"
import { formatBytes, formatCpu, formatUptime } from "../../supervisor/StatusFormat.js"
import { sparkline } from "../view/Sparkline.js"
import { healthLook, isAliveState, stateLook, verbsFor } from "../view/StateLook.js"
import { post } from "./ControlClient.js"
import { renderGraphNode } from "./DependencyGraph.js"
import { type Child, h, s } from "./Dom.js"
import { selectLog } from "./LogPanel.js"
import { tbody, toast } from "./PageLayout.js"
import { model } from "./PageModel.js"

const SPARK = { width: 96, height: 24 }

type Verb = "restart" | "stop" | "start"

interface RowView {
  readonly tr: HTMLTableRowElement
  readonly state: HTMLElement
  readonly reason: HTMLElement
  readonly health: HTMLElement
  readonly pid: HTMLElement
  readonly restarts: HTMLElement
  readonly uptime: HTMLElement
  readonly cpu: HTMLElement
  readonly rss: HTMLElement
  readonly cpuLine: SVGElement
  readonly cpuArea: SVGElement
  readonly rssLine: SVGElement
  readonly rssArea: SVGElement
  readonly buttons: Record<Verb, HTMLButtonElement>
  busy: boolean
}

const views = new Map<string, RowView>()

const badge = (el: HTMLElement, look: { tone: string; symbol: string }, text: string) => {
  el.className = `badge tone-${look.tone}`
  el.textContent = ""
  el.append(h("span", { class: "sym", "aria-hidden": "true" }, look.symbol), ` ${text}`)
}

const sparkSvg = (kind: string) => {
  const area = s("path", { class: `spark-area ${kind}` })
  const line = s("path", { class: `spark-line ${kind}` })
  const svg = s(
    "svg",
    {
      class: "spark",
      width: SPARK.width,
      height: SPARK.height,
      viewBox: `0 0 ${SPARK.width} ${SPARK.height}`,
      "aria-hidden": "true"
    },
    area,
    line
  )
  return { svg, area, line }
}

const act = async (name: string, verb: Verb) => {
  const view = views.get(name)
  if (view === undefined) return
  view.busy = true
  renderButtons(name)
  try {
    await post(`api/services/${encodeURIComponent(name)}/${verb}`)
  } catch (e) {
    toast(`${verb} ${name}: ${e instanceof Error ? e.message : String(e)}`)
  } finally {
    view.busy = false
    renderButtons(name)
  }
}

/** Enables the verbs the service's state allows, unless one is under way or the supervisor is gone. */
export const renderButtons = (name: string) => {
  const view = views.get(name)
  const row = model.rows.get(name)
  if (view === undefined || row === undefined) return
  const allowed = verbsFor(row.state)
  for (const verb of ["restart", "stop", "start"] as const) {
    view.buttons[verb].disabled = view.busy || !model.supervisorUp || !allowed[verb]
  }
  view.tr.classList.toggle("busy", view.busy)
}

const buildRow = (row: ServiceStatus): RowView => {
  const cell = (field: string, ...children: ReadonlyArray<Child>) => h("td", { "data-field": field }, ...children)
  const state = h("span")
  const reason = h("span", { class: "reason" })
  const health = h("span")
  const pid = cell("pid")
  const restarts = cell("restarts")
  const uptime = cell("uptime")
  const cpuValue = h("span", { class: "value" })
  const rssValue = h("span", { class: "value" })
  const cpuSpark = sparkSvg("cpu")
  const rssSpark = sparkSvg("rss")
  const ports = Object.entries(row.ports).map(([portName, port]) =>
    h(
      "a",
      {
        href: `${location.protocol}//${location.hostname}:${port}/`,
        target: "_blank",
        rel: "noopener noreferrer",
        title: `${portName} port`
      },
      h("span", { class: "port-name" }, portName),
      String(port)
    )
  )
  const button = (verb: Verb, label: string) => {
    const b = h(
      "button",
      { class: `verb ${verb}`, "data-verb": verb, "aria-label": `${verb} ${row.name}`, title: `${verb} ${row.name}` },
      label
    )
    b.addEventListener("click", () => void act(row.name, verb))
    return b
  }
  const buttons = {
    restart: button("restart", "Restart"),
    stop: button("stop", "Stop"),
    start: button("start", "Start")
  }
  const tr = h(
    "tr",
    { "data-service": row.name },
    h(
      "th",
      { scope: "row", class: "name" },
      h("button", { class: "link", title: `show the logs of ${row.name}` }, row.name)
    ),
    cell("state", state, reason),
    cell("health", health),
    pid,
    restarts,
    uptime,
    cell("ports", ...(ports.length > 0 ? ports : ["–"])),
    cell("cpu", h("div", { class: "metric" }, cpuValue, cpuSpark.svg)),
    cell("rss", h("div", { class: "metric" }, rssValue, rssSpark.svg)),
    h("td", { class: "verbs" }, buttons.restart, buttons.stop, buttons.start)
  )
  tr.querySelector("th button")!.addEventListener("click", () => selectLog(row.name))
  return {
    tr,
    state,
    reason,
    health,
    pid,
    restarts,
    uptime,
    cpu: cpuValue,
    rss: rssValue,
    cpuLine: cpuSpark.line,
    cpuArea: cpuSpark.area,
    rssLine: rssSpark.line,
    rssArea: rssSpark.area,
    buttons,
    busy: false
  }
}

/** Replaces every row with a fresh one per service, in the stack's order. */
export const rebuildRows = (status: ReadonlyArray<ServiceStatus>) => {
  views.clear()
  tbody.textContent = ""
  for (const row of status) {
    const view = buildRow(row)
    views.set(row.name, view)
    tbody.append(view.tr)
  }
}

/** Shows how long the service has been up, or "–" when it is not alive. */
export const renderUptime = (name: string) => {
  const row = model.rows.get(name)
  const view = views.get(name)
  if (row === undefined || view === undefined) return
  view.uptime.textContent =
    isAliveState(row.state) && row.startedAt !== null ? formatUptime(Date.now() - row.startedAt) : "–"
}

/** Shows the service's status on its row and on its graph node. */
export const renderRow = (name: string) => {
  const row = model.rows.get(name)
  const view = views.get(name)
  if (row === undefined || view === undefined) return
  view.tr.dataset.state = row.state
  badge(view.state, stateLook(row.state), row.state)
  view.reason.textContent = row.reason ?? ""
  view.reason.title = row.reason ?? ""
  badge(view.health, healthLook(row.health), row.health)
  view.pid.textContent = row.pid === null ? "–" : String(row.pid)
  view.restarts.textContent = String(row.restarts)
  renderUptime(name)
  renderButtons(name)
  renderGraphNode(row)
}

/** Shows the service's latest CPU and memory and redraws its sparklines from the history. */
export const renderUsage = (name: string) => {
  const view = views.get(name)
  if (view === undefined) return
  const usage = model.usage.get(name)
  view.cpu.textContent = formatCpu(usage?.cpu)
  view.rss.textContent = formatBytes(usage?.rss)
  // the samples span the whole width: the window grows with the history, up to the 15 minutes kept
  const shown = Math.min(model.capacity, Math.max(2, model.times.length))
  const options = { ...SPARK, capacity: shown }
  const cpu = sparkline(model.cpu.get(name) ?? [], { ...options, floor: 5, headroom: 0.15 })
  const rss = sparkline(model.rss.get(name) ?? [], { ...options, floor: 1024 * 1024, headroom: 0.3 })
  view.cpuLine.setAttribute("d", cpu.line)
  view.cpuArea.setAttribute("d", cpu.area)
  view.rssLine.setAttribute("d", rss.line)
  view.rssArea.setAttribute("d", rss.area)
}
