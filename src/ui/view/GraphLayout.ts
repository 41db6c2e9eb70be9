/**
 * Where the dependency graph's nodes and edges go in the picture: one column per start level (dependencies on
 * the left), nodes stacked in each column and centred, edges as curves from a dependency to its dependent,
 * labelled with the condition. Pure, for the page's bundle.
 */

export interface GraphInput {
  readonly layers: ReadonlyArray<ReadonlyArray<string>>
  readonly edges: ReadonlyArray<{ readonly service: string; readonly dependsOn: string; readonly condition: string }>
}

export interface PlacedNode {
  readonly name: string
  readonly layer: number
  readonly x: number
  readonly y: number
}

export interface PlacedEdge {
  readonly service: string
  readonly dependsOn: string
  readonly label: string
  /** SVG path data. */
  readonly path: string
  readonly labelX: number
  readonly labelY: number
}

export interface GraphLayout {
  readonly width: number
  readonly height: number
  readonly nodeWidth: number
  readonly nodeHeight: number
  readonly nodes: ReadonlyArray<PlacedNode>
  readonly edges: ReadonlyArray<PlacedEdge>
}

/** A condition as the picture names it. */
export const conditionLabel = (condition: string): string =>
  ({
    process_started: "started",
    process_healthy: "healthy",
    process_log_ready: "log ready",
    process_completed: "completed",
    process_completed_successfully: "completed ok"
  })[condition] ?? condition

export const layoutGraph = (
  graph: GraphInput,
  size: {
    readonly nodeWidth?: number
    readonly nodeHeight?: number
    readonly columnGap?: number
    readonly rowGap?: number
    readonly margin?: number
  } = {}
): GraphLayout => {
  const nodeWidth = size.nodeWidth ?? 150
  const nodeHeight = size.nodeHeight ?? 46
  const columnGap = size.columnGap ?? 110
  const rowGap = size.rowGap ?? 22
  const margin = size.margin ?? 12
  const tallest = Math.max(1, ...graph.layers.map((l) => l.length))
  const height = margin * 2 + tallest * nodeHeight + (tallest - 1) * rowGap
  const width = margin * 2 + graph.layers.length * nodeWidth + Math.max(0, graph.layers.length - 1) * columnGap
  const nodes: Array<PlacedNode> = []
  const at = new Map<string, PlacedNode>()
  graph.layers.forEach((layer, i) => {
    const column = layer.length * nodeHeight + (layer.length - 1) * rowGap
    const top = (height - column) / 2
    layer.forEach((name, j) => {
      const node = { name, layer: i, x: margin + i * (nodeWidth + columnGap), y: top + j * (nodeHeight + rowGap) }
      nodes.push(node)
      at.set(name, node)
    })
  })
  const edges: Array<PlacedEdge> = []
  for (const edge of graph.edges) {
    const from = at.get(edge.dependsOn)
    const to = at.get(edge.service)
    if (from === undefined || to === undefined) continue
    const x1 = from.x + nodeWidth
    const y1 = from.y + nodeHeight / 2
    const x2 = to.x
    const y2 = to.y + nodeHeight / 2
    const bend = Math.max(30, (x2 - x1) / 2)
    edges.push({
      service: edge.service,
      dependsOn: edge.dependsOn,
      label: conditionLabel(edge.condition),
      path: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
      labelX: (x1 + x2) / 2,
      labelY: (y1 + y2) / 2 - 6
    })
  }
  return { width, height, nodeWidth, nodeHeight, nodes, edges }
}
