/** The dependency graph card: a node per service, coloured by its state; a click on a node shows its logs. */
import type { StackGraphJson } from "../../api/ControlApi.js"
import type { ServiceStatus } from "../../stack/ServiceStatus.js"
import { layoutGraph } from "../view/GraphLayout.js"
import { stateLook } from "../view/StateLook.js"
import { s, sText } from "./Dom.js"
import { selectLog } from "./LogPanel.js"
import { graphBox } from "./PageLayout.js"

const graphNodes = new Map<string, SVGElement>()

/** Draws the graph anew; the nodes show no state until `renderGraphNode`. */
export const renderGraph = (graph: StackGraphJson) => {
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

/** Shows the state of `row` on its node, if the graph has one. */
export const renderGraphNode = (row: ServiceStatus) => {
  const node = graphNodes.get(row.name)
  if (node !== undefined) {
    node.dataset.state = row.state
    node.setAttribute("class", `node tone-${stateLook(row.state).tone}`)
    node.querySelector(".node-state")!.textContent = `${stateLook(row.state).symbol} ${row.state}`
  }
}
