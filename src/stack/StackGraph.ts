/**
 * The dependency graph of a stack: order, cycles, subsets.
 *
 * Pure functions over anything that has a name and a list of dependencies (a `ServiceSpec` qualifies).
 * Results are deterministic: wherever the graph leaves a choice, names are taken in alphabetical order.
 * Dependencies that name no node of the graph are ignored by every function but `unknownDependencies`.
 */

/** A node of the graph: a service and the services it depends on. */
export interface GraphNode {
  readonly name: string
  readonly dependsOn: ReadonlyArray<{ readonly name: string }>
}

/**
 * Names in code-unit order: the same in every locale (`localeCompare` is not, and its first use loads ICU's
 * collation into the supervisor, ~2.2 MB of the node binary's pages).
 */
export const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Each node's known dependencies, sorted and without duplicates. */
const adjacency = (nodes: ReadonlyArray<GraphNode>): Map<string, ReadonlyArray<string>> => {
  const known = new Set(nodes.map((node) => node.name))
  const result = new Map<string, ReadonlyArray<string>>()
  for (const node of nodes) {
    const deps = new Set(node.dependsOn.map((dep) => dep.name).filter((name) => known.has(name)))
    result.set(node.name, [...deps].sort(compareNames))
  }
  return result
}

/** Each node's direct dependents (the reverse edges), sorted. */
const reverseAdjacency = (nodes: ReadonlyArray<GraphNode>): Map<string, ReadonlyArray<string>> => {
  const result = reverseEdges(adjacency(nodes))
  for (const list of result.values()) list.sort(compareNames)
  return result
}

/** The reverse of `deps`: each node's direct dependents, in the order met. */
const reverseEdges = (deps: Map<string, ReadonlyArray<string>>): Map<string, Array<string>> => {
  const result = new Map<string, Array<string>>()
  for (const name of deps.keys()) result.set(name, [])
  for (const [name, list] of deps) {
    for (const dep of list) result.get(dep)!.push(name)
  }
  return result
}

/** Dependencies that name no node of the graph, in node order. */
export const unknownDependencies = (
  nodes: ReadonlyArray<GraphNode>
): ReadonlyArray<{ readonly service: string; readonly dependency: string }> => {
  const known = new Set(nodes.map((node) => node.name))
  return nodes.flatMap((node) =>
    node.dependsOn.filter((dep) => !known.has(dep.name)).map((dep) => ({ service: node.name, dependency: dep.name }))
  )
}

/**
 * A dependency cycle, if there is one, as a closed path: `["a", "b", "a"]` means a depends on b and b on a.
 * A service that depends on itself gives `["a", "a"]`. Only the first cycle found is returned.
 */
export const findCycle = (nodes: ReadonlyArray<GraphNode>): ReadonlyArray<string> | undefined => {
  const deps = adjacency(nodes)
  const done = new Set<string>()
  const onPath = new Map<string, number>()
  const path: Array<string> = []

  const visit = (name: string): ReadonlyArray<string> | undefined => {
    if (done.has(name)) return undefined
    const index = onPath.get(name)
    if (index !== undefined) return [...path.slice(index), name]
    onPath.set(name, path.length)
    path.push(name)
    for (const dep of deps.get(name) ?? []) {
      const cycle = visit(dep)
      if (cycle !== undefined) return cycle
    }
    path.pop()
    onPath.delete(name)
    done.add(name)
    return undefined
  }

  for (const name of [...deps.keys()].sort(compareNames)) {
    const cycle = visit(name)
    if (cycle !== undefined) return cycle
  }
  return undefined
}

/**
 * Levels of the graph: the first holds the nodes without dependencies, each next one the nodes whose
 * dependencies all lie in earlier levels. Nodes of one level may start in parallel. Names sorted per level.
 * Nodes on a cycle never become ready and are left out; check `findCycle` first.
 */
export const startLevels = (nodes: ReadonlyArray<GraphNode>): ReadonlyArray<ReadonlyArray<string>> => {
  const deps = adjacency(nodes)
  const placed = new Set<string>()
  const levels: Array<ReadonlyArray<string>> = []
  let remaining = [...deps.keys()].sort(compareNames)
  while (remaining.length > 0) {
    const level = remaining.filter((name) => deps.get(name)!.every((dep) => placed.has(dep)))
    if (level.length === 0) break
    for (const name of level) placed.add(name)
    levels.push(level)
    remaining = remaining.filter((name) => !placed.has(name))
  }
  return levels
}

/**
 * Levels for stopping: dependents before their dependencies. The first level holds the nodes nothing
 * depends on, each next one the nodes whose dependents all lie in earlier levels.
 */
export const stopLevels = (nodes: ReadonlyArray<GraphNode>): ReadonlyArray<ReadonlyArray<string>> => {
  const reversed = reverseAdjacency(nodes)
  return startLevels(
    [...reversed].map(([name, dependents]) => ({ name, dependsOn: dependents.map((n) => ({ name: n })) }))
  )
}

/**
 * All names, dependencies before dependents; among nodes free to go next, alphabetical order.
 * Assumes there is no cycle (nodes on a cycle are left out).
 */
export const topologicalOrder = (nodes: ReadonlyArray<GraphNode>): ReadonlyArray<string> => {
  // Kahn's algorithm, the free nodes in a heap by name: O((nodes + edges) log nodes). (Scanning the sorted
  // names again after each placement was O(nodes²): ~4 ms a call for 200 services, called ~4 times by `up`.)
  const deps = adjacency(nodes)
  const waitingFor = new Map<string, number>()
  const free = new NameHeap()
  for (const [name, list] of deps) {
    waitingFor.set(name, list.length)
    if (list.length === 0) free.push(name)
  }
  const dependents = reverseEdges(deps)
  const order: Array<string> = []
  for (let name = free.pop(); name !== undefined; name = free.pop()) {
    order.push(name)
    for (const dependent of dependents.get(name)!) {
      const left = waitingFor.get(dependent)! - 1
      waitingFor.set(dependent, left)
      if (left === 0) free.push(dependent)
    }
  }
  return order
}

/** A binary min-heap of names (`compareNames`). */
class NameHeap {
  private readonly items: Array<string> = []

  push(name: string): void {
    const items = this.items
    items.push(name)
    for (let i = items.length - 1; i > 0; ) {
      const up = (i - 1) >> 1
      if (compareNames(items[up]!, items[i]!) <= 0) break
      ;[items[up], items[i]] = [items[i]!, items[up]!]
      i = up
    }
  }

  pop(): string | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    items[0] = last
    for (let i = 0; ; ) {
      const left = 2 * i + 1
      const right = left + 1
      let least = i
      if (left < items.length && compareNames(items[left]!, items[least]!) < 0) least = left
      if (right < items.length && compareNames(items[right]!, items[least]!) < 0) least = right
      if (least === i) break
      ;[items[least], items[i]] = [items[i]!, items[least]!]
      i = least
    }
    return top
  }
}

const closure = (edges: Map<string, ReadonlyArray<string>>, start: ReadonlyArray<string>): Set<string> => {
  const seen = new Set<string>()
  const stack = [...start]
  while (stack.length > 0) {
    const name = stack.pop()!
    if (seen.has(name)) continue
    seen.add(name)
    stack.push(...(edges.get(name) ?? []))
  }
  return seen
}

/**
 * The given names plus everything they depend on, transitively, in topological order.
 * Names that are not nodes of the graph are ignored.
 */
export const withDependencies = (
  nodes: ReadonlyArray<GraphNode>,
  names: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const deps = adjacency(nodes)
  const wanted = closure(
    deps,
    names.filter((name) => deps.has(name))
  )
  return topologicalOrder(nodes).filter((name) => wanted.has(name))
}

/** Every node that depends on `name`, directly or transitively, in topological order, without `name` itself. */
export const dependentsOf = (nodes: ReadonlyArray<GraphNode>, name: string): ReadonlyArray<string> => {
  const reversed = reverseAdjacency(nodes)
  const found = closure(reversed, reversed.get(name) ?? [])
  found.delete(name)
  return topologicalOrder(nodes).filter((n) => found.has(n))
}
