/** The top bar's summary of the stack: services up, failed, and their total CPU and memory. */
import { formatBytes, formatCpu } from "../../supervisor/StatusFormat.js"
import { h } from "./Dom.js"
import { summary } from "./PageLayout.js"
import { model } from "./PageModel.js"

/** Redraws the summary from the model. */
export const renderSummary = () => {
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
