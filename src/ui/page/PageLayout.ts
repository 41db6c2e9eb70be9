/**
 * The page's skeleton: the top bar, the services table, the graph and log cards, the banner and the toasts. The
 * other modules fill the elements exported here.
 */
import { h } from "./Dom.js"

export const connection = h("span", { class: "pill", role: "status", id: "connection" }, "connecting…")
export const summary = h("div", { class: "summary", id: "summary" })
export const stopAll = h(
  "button",
  { class: "danger", id: "stop-all", title: "core stack down: stop every service" },
  "Stop all"
)
export const dirLabel = h("span", { class: "dir" })
export const tbody = h("tbody")
export const graphBox = h("div", { class: "graph", id: "graph" })
export const tabs = h("div", { class: "tabs", role: "tablist", id: "log-tabs" })
export const filter = h("input", {
  type: "search",
  id: "log-filter",
  placeholder: "filter lines…",
  "aria-label": "filter log lines"
})
export const logInfo = h("span", { class: "log-info" })
export const logLines = h("div", { class: "log", id: "log-lines", role: "log", "aria-live": "off" })
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

/** Shows `text` in a toast for eight seconds. */
export const toast = (text: string) => {
  const el = h("div", { class: "toast" }, text)
  toasts.append(el)
  setTimeout(() => el.remove(), 8000)
}

/** Shows the state of the connection in the top bar, and in the banner when it is not live. */
export const setConnection = (kind: "live" | "down" | "lost", text: string) => {
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
