/**
 * The dashboard page: one row per service, the dependency graph, a log panel per service, and the verbs. Every
 * change arrives as a server-sent event from `/api/events` (the supervisor's transitions and resource samples);
 * nothing is polled. Built by esbuild into `dist/ui/app.js` (`npm run build`). This module wires the parts:
 * `PageLayout` (the skeleton), `ServicesTable`, `DependencyGraph`, `LogPanel`, `StackSummary` and `EventStream`.
 */
import { post } from "./ControlClient.js"
import { connect } from "./EventStream.js"
import { stopAll, toast } from "./PageLayout.js"
import { model } from "./PageModel.js"
import { renderUptime } from "./ServicesTable.js"
import "./style.css"
import "./ServicesTable.css"
import "./DependencyGraph.css"
import "./LogPanel.css"

stopAll.addEventListener("click", () => {
  if (!confirm(`Stop every service of ${model.dir} and end its supervisor (core stack down)?`)) return
  stopAll.disabled = true
  post("api/stack/down").catch((e: unknown) => {
    toast(`stop all: ${e instanceof Error ? e.message : String(e)}`)
    stopAll.disabled = !model.supervisorUp
  })
})

setInterval(() => {
  for (const name of model.order) renderUptime(name)
}, 1000)

connect()
