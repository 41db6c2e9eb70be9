/** The log panel: a tab per service, the selected one streaming its lines, with ANSI colours and a filter. */
import type { LogLineJson } from "../../api/ControlApi.js"
import { type AnsiStyle, parseAnsi, stripAnsi } from "../view/Ansi.js"
import { h } from "./Dom.js"
import { filter, logInfo, logLines, tabs } from "./PageLayout.js"
import { model } from "./PageModel.js"

/** Lines kept per log panel; older ones are dropped. */
const MAX_LOG_LINES = 1000

let logSource: EventSource | undefined
let selected = ""
let carry: AnsiStyle = {}

/** The service whose logs are shown; `""` before the first snapshot. */
export const selectedLog = () => selected

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

/** Shows the logs of `name`: closes the previous stream and opens the service's, which replays its recent lines. */
export const selectLog = (name: string) => {
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
  const source = new EventSource(`api/services/${encodeURIComponent(name)}/logs`)
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

/** Rebuilds the tabs, one per service in the stack's order. */
export const renderTabs = () => {
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
