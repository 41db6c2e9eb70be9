/**
 * The dashboard page: one row per service, the dependency graph, a log panel per service, and the verbs. Every
 * change arrives as a server-sent event from `/api/events` (the supervisor's transitions and resource samples);
 * nothing is polled. Built by esbuild into `dist/ui/app.js` (`npm run build`).
 */
import type { LogLineJson, StackGraphJson, UsageHistoryJson } from "../../api/ControlApi.js"
import type { ServiceStatus } from "../../stack/ServiceStatus.js"
import { formatBytes, formatCpu, formatUptime } from "../../supervisor/StatusFormat.js"
import { type AnsiStyle, parseAnsi, stripAnsi } from "../view/Ansi.js"
import { layoutGraph } from "../view/GraphLayout.js"
import { sparkline } from "../view/Sparkline.js"
import { healthLook, isAliveState, stateLook, verbsFor } from "../view/StateLook.js"
import "./style.css"

/** Lines kept per log panel; older ones are dropped. */
const MAX_LOG_LINES = 1000
const SPARK = { width: 96, height: 24 }
const SVG_NS = "http://www.w3.org/2000/svg"

const token = document.querySelector<HTMLMetaElement>('meta[name="core-token"]')?.content ?? ""

// ---------------------------------------------------------------------------------------------------------
// DOM helpers

type Child = Node | string | null | undefined | false

const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: ReadonlyArray<Child>
): HTMLElementTagNameMap[K] => {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v)
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c)
  return el
}

const s = (tag: string, attrs: Record<string, string | number> = {}, ...children: ReadonlyArray<Node>): SVGElement => {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  el.append(...children)
  return el
}

const sText = (text: string, attrs: Record<string, string | number>) => {
  const el = s("text", attrs)
  el.textContent = text
  return el
}

// ---------------------------------------------------------------------------------------------------------
// State

interface Usage {
  cpu: number | null
  rss: number | null
}

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
  readonly buttons: Record<"restart" | "stop" | "start", HTMLButtonElement>
  busy: boolean
}

const model = {
  dir: "",
  order: [] as Array<string>,
  rows: new Map<string, ServiceStatus>(),
  usage: new Map<string, Usage>(),
  times: [] as Array<number>,
  cpu: new Map<string, Array<number | null>>(),
  rss: new Map<string, Array<number | null>>(),
  capacity: 450,
  graphKey: "",
  supervisorUp: false
}

const views = new Map<string, RowView>()
const graphNodes = new Map<string, SVGElement>()

// ---------------------------------------------------------------------------------------------------------
// Layout

const connection = h("span", { class: "pill", role: "status", id: "connection" }, "connecting…")
const summary = h("div", { class: "summary", id: "summary" })
const stopAll = h(
  "button",
  { class: "danger", id: "stop-all", title: "core stack down: stop every service" },
  "Stop all"
)
const dirLabel = h("span", { class: "dir" })
const tbody = h("tbody")
const graphBox = h("div", { class: "graph", id: "graph" })
const tabs = h("div", { class: "tabs", role: "tablist", id: "log-tabs" })
const filter = h("input", {
  type: "search",
  id: "log-filter",
  placeholder: "filter lines…",
  "aria-label": "filter log lines"
})
const logInfo = h("span", { class: "log-info" })
const logLines = h("div", { class: "log", id: "log-lines", role: "log", "aria-live": "off" })
const toasts = h("div", { class: "toasts", id: "toasts", "aria-live": "polite" })
const banner = h("div", { class: "banner", id: "banner", hidden: "" })

document.body.append(
  h(
    "header",
    { class: "topbar" },
    h("div", { class: "brand" }, h("span", { class: "logo" }, "core"), dirLabel),
    summary,
    h("div", { class: "right" }, connection, stopAll)
  ),
  banner,
  h(
    "main",
    {},
    h(
      "section",
      { class: "card", id: "services" },
      h("h2", {}, "Services"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Service", "State", "Health", "PID", "Restarts", "Uptime", "Ports", "CPU", "Memory", ""].map((t) =>
                h("th", {}, t)
              )
            )
          ),
          tbody
        )
      )
    ),
    h(
      "div",
      { class: "split" },
      h("section", { class: "card", id: "graph-card" }, h("h2", {}, "Dependencies"), graphBox),
      h(
        "section",
        { class: "card", id: "logs" },
        h("h2", {}, "Logs"),
        tabs,
        h("div", { class: "log-toolbar" }, filter, logInfo),
        logLines
      )
    )
  ),
  toasts
)

const toast = (text: string) => {
  const el = h("div", { class: "toast" }, text)
  toasts.append(el)
  setTimeout(() => el.remove(), 8000)
}

const setConnection = (kind: "live" | "down" | "lost", text: string) => {
  connection.textContent = text
  connection.dataset.kind = kind
  document.body.dataset.connection = kind
  banner.hidden = kind === "live"
  banner.textContent =
    kind === "down"
      ? `The supervisor is not running (${text}). Waiting for it to come back…`
      : kind === "lost"
        ? "Lost the connection to core stack ui. Reconnecting…"
        : ""
}

// ---------------------------------------------------------------------------------------------------------
// Services table

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

const post = async (url: string): Promise<void> => {
  const response = await fetch(url, { method: "POST", headers: { "x-core-token": token }, credentials: "same-origin" })
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: string }
    throw new Error(body.error ?? `HTTP ${response.status}`)
  }
}

const act = async (name: string, verb: "restart" | "stop" | "start") => {
  const view = views.get(name)
  if (view === undefined) return
  view.busy = true
  renderButtons(name)
  try {
    await post(`/api/services/${encodeURIComponent(name)}/${verb}`)
  } catch (e) {
    toast(`${verb} ${name}: ${e instanceof Error ? e.message : String(e)}`)
  } finally {
    view.busy = false
    renderButtons(name)
  }
}

const renderButtons = (name: string) => {
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
  const button = (verb: "restart" | "stop" | "start", label: string) => {
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

const renderUptime = (name: string) => {
  const row = model.rows.get(name)
  const view = views.get(name)
  if (row === undefined || view === undefined) return
  view.uptime.textContent =
    isAliveState(row.state) && row.startedAt !== null ? formatUptime(Date.now() - row.startedAt) : "–"
}

const renderRow = (name: string) => {
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
  const node = graphNodes.get(name)
  if (node !== undefined) {
    node.dataset.state = row.state
    node.setAttribute("class", `node tone-${stateLook(row.state).tone}`)
    node.querySelector(".node-state")!.textContent = `${stateLook(row.state).symbol} ${row.state}`
  }
}

const renderUsage = (name: string) => {
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

const renderSummary = () => {
  const rows = [...model.rows.values()].filter((r) => r.state !== "disabled")
  const up = rows.filter((r) => r.state === "ready" || r.state === "running" || r.state === "completed").length
  const usage = [...model.usage.values()]
  const cpu = usage.reduce((sum, u) => sum + (u.cpu ?? 0), 0)
  const rss = usage.reduce((sum, u) => sum + (u.rss ?? 0), 0)
  const failed = rows.filter((r) => r.state === "failed").length
  summary.textContent = ""
  summary.append(
    h("span", { class: "stat" }, h("b", {}, `${up}/${rows.length}`), " up"),
    ...(failed > 0 ? [h("span", { class: "stat bad" }, h("b", {}, String(failed)), " failed")] : []),
    h("span", { class: "stat" }, h("b", {}, formatCpu(cpu)), " CPU"),
    h("span", { class: "stat" }, h("b", {}, formatBytes(rss)), " memory")
  )
}

// ---------------------------------------------------------------------------------------------------------
// Graph

const renderGraph = (graph: StackGraphJson) => {
  const layout = layoutGraph(graph, { nodeWidth: 150, nodeHeight: 54, columnGap: 84, rowGap: 26 })
  graphNodes.clear()
  const arrow = s(
    "marker",
    {
      id: "arrow",
      viewBox: "0 0 10 10",
      refX: 9,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: "auto-start-reverse"
    },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" })
  )
  const svg = s("svg", {
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    width: layout.width,
    height: layout.height,
    role: "img",
    "aria-label": "dependency graph"
  })
  svg.append(s("defs", {}, arrow))
  for (const edge of layout.edges) {
    svg.append(
      s(
        "g",
        { class: "edge", "data-service": edge.service, "data-depends-on": edge.dependsOn },
        s("path", { d: edge.path, "marker-end": "url(#arrow)" }),
        sText(edge.label, { x: edge.labelX, y: edge.labelY, "text-anchor": "middle", class: "edge-label" })
      )
    )
  }
  for (const node of layout.nodes) {
    const g = s(
      "g",
      {
        class: "node",
        "data-service": node.name,
        transform: `translate(${node.x},${node.y})`,
        tabindex: 0,
        role: "button",
        "aria-label": `${node.name}: show its logs`
      },
      s("rect", { width: layout.nodeWidth, height: layout.nodeHeight, rx: 9 }),
      s("rect", { class: "node-bar", width: 5, height: layout.nodeHeight, rx: 2 }),
      sText(node.name, { x: 18, y: 23, class: "node-name" }),
      sText("", { x: 18, y: 42, class: "node-state" })
    )
    g.addEventListener("click", () => selectLog(node.name))
    g.addEventListener("keydown", (e) => {
      if ((e as KeyboardEvent).key === "Enter") selectLog(node.name)
    })
    graphNodes.set(node.name, g)
    svg.append(g)
  }
  graphBox.textContent = ""
  graphBox.append(svg)
}

// ---------------------------------------------------------------------------------------------------------
// Logs: one panel per service, the selected one streaming

let logSource: EventSource | undefined
let selected = ""
let carry: AnsiStyle = {}

const matches = (line: HTMLElement) => {
  const needle = filter.value.trim().toLowerCase()
  return needle === "" || (line.dataset.text ?? "").includes(needle)
}

const renderLogInfo = () => {
  const total = logLines.childElementCount
  const shown =
    filter.value.trim() === "" ? total : [...logLines.children].filter((l) => !(l as HTMLElement).hidden).length
  logInfo.textContent =
    filter.value.trim() === "" ? `${total} lines (last ${MAX_LOG_LINES} kept)` : `${shown} of ${total} lines match`
}

const appendLine = (line: LogLineJson) => {
  const atBottom = logLines.scrollTop + logLines.clientHeight >= logLines.scrollHeight - 4
  const el = h("div", { class: `line ${line.stream}${line.supervisor ? " note" : ""}` })
  el.dataset.text = stripAnsi(line.text).toLowerCase()
  const time = new Date(line.time).toTimeString().slice(0, 8)
  el.append(h("span", { class: "time" }, time))
  if (line.supervisor) el.append(h("span", { class: "core" }, "[core] "), line.text)
  else {
    const { segments, end } = parseAnsi(line.text, carry)
    carry = end
    for (const seg of segments) {
      const span = h("span", {}, seg.text)
      if (seg.style.fg) span.style.color = seg.style.fg
      if (seg.style.bg) span.style.backgroundColor = seg.style.bg
      if (seg.style.bold) span.classList.add("b")
      if (seg.style.dim) span.classList.add("d")
      if (seg.style.italic) span.classList.add("i")
      if (seg.style.underline) span.classList.add("u")
      el.append(span)
    }
  }
  el.hidden = !matches(el)
  logLines.append(el)
  while (logLines.childElementCount > MAX_LOG_LINES) logLines.firstElementChild!.remove()
  if (atBottom) logLines.scrollTop = logLines.scrollHeight
}

let infoTimer: ReturnType<typeof setTimeout> | undefined
const scheduleInfo = () => {
  if (infoTimer !== undefined) return
  infoTimer = setTimeout(() => {
    infoTimer = undefined
    renderLogInfo()
  }, 200)
}

const selectLog = (name: string) => {
  if (name === selected && logSource !== undefined) return
  selected = name
  for (const tab of tabs.children) {
    const on = (tab as HTMLElement).dataset.service === name
    tab.setAttribute("aria-selected", String(on))
  }
  logSource?.close()
  logLines.textContent = ""
  carry = {}
  logLines.dataset.service = name
  const source = new EventSource(`/api/services/${encodeURIComponent(name)}/logs`)
  logSource = source
  source.addEventListener("reset", () => {
    logLines.textContent = ""
    carry = {}
    scheduleInfo()
  })
  source.addEventListener("line", (e) => {
    appendLine(JSON.parse((e as MessageEvent<string>).data) as LogLineJson)
    scheduleInfo()
  })
  source.addEventListener("supervisor", (e) => {
    const { reason } = JSON.parse((e as MessageEvent<string>).data) as { reason: string }
    appendLine({ seq: 0, time: Date.now(), stream: "stderr", text: `supervisor gone: ${reason}`, supervisor: true })
  })
}

const renderTabs = () => {
  tabs.textContent = ""
  for (const name of model.order) {
    const tab = h("button", { role: "tab", "data-service": name, "aria-selected": String(name === selected) }, name)
    tab.addEventListener("click", () => selectLog(name))
    tabs.append(tab)
  }
}

filter.addEventListener("input", () => {
  for (const line of logLines.children) (line as HTMLElement).hidden = !matches(line as HTMLElement)
  renderLogInfo()
})

// ---------------------------------------------------------------------------------------------------------
// Events from the server

interface Snapshot {
  readonly dir: string
  readonly pid: number
  readonly status: ReadonlyArray<ServiceStatus>
  readonly graph: StackGraphJson
  readonly metrics: UsageHistoryJson
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
    views.clear()
    tbody.textContent = ""
    for (const row of snapshot.status) {
      const view = buildRow(row)
      views.set(row.name, view)
      tbody.append(view.tr)
    }
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
  if (!model.order.includes(selected) && model.order.length > 0) selectLog(model.order.at(-1)!)
}

const onStatus = (row: ServiceStatus) => {
  if (!model.rows.has(row.name)) return
  model.rows.set(row.name, row)
  renderRow(row.name)
  renderSummary()
}

const onUsage = (sample: {
  time: number
  services: ReadonlyArray<{ name: string; cpu: number | null; rss: number | null }>
}) => {
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

const connect = () => {
  const events = new EventSource("/api/events")
  events.addEventListener("snapshot", (e) => onSnapshot(JSON.parse((e as MessageEvent<string>).data) as Snapshot))
  events.addEventListener("status", (e) => onStatus(JSON.parse((e as MessageEvent<string>).data) as ServiceStatus))
  events.addEventListener("usage", (e) => onUsage(JSON.parse((e as MessageEvent<string>).data)))
  events.addEventListener("supervisor", (e) => {
    const { reason } = JSON.parse((e as MessageEvent<string>).data) as { reason: string }
    model.supervisorUp = false
    for (const name of model.order) renderButtons(name)
    stopAll.disabled = true
    setConnection("down", reason)
  })
  events.addEventListener("error", () => {
    if (events.readyState !== EventSource.OPEN) setConnection("lost", "reconnecting…")
  })
}

stopAll.addEventListener("click", () => {
  if (!confirm(`Stop every service of ${model.dir} and end its supervisor (core stack down)?`)) return
  stopAll.disabled = true
  post("/api/stack/down").catch((e: unknown) => {
    toast(`stop all: ${e instanceof Error ? e.message : String(e)}`)
    stopAll.disabled = !model.supervisorUp
  })
})

setInterval(() => {
  for (const name of model.order) renderUptime(name)
}, 1000)

connect()
