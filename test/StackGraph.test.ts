import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import {
  dependentsOf,
  findCycle,
  type GraphNode,
  startLevels,
  stopLevels,
  topologicalOrder,
  unknownDependencies,
  withDependencies
} from "../src/stack/StackGraph.js"

/** `graph({ a: ["b"], b: [] })`: a depends on b. */
const graph = (edges: Record<string, ReadonlyArray<string>>): ReadonlyArray<GraphNode> =>
  Object.entries(edges).map(([name, deps]) => ({ name, dependsOn: deps.map((dep) => ({ name: dep })) }))

// The default stack: caddy -> pocketbase -> nats, plus a free-standing worker.
const stack = graph({ caddy: ["pocketbase"], worker: [], pocketbase: ["nats"], nats: [] })

// A diamond: app needs api and web, both need db.
const diamond = graph({ app: ["api", "web"], web: ["db"], api: ["db"], db: [] })

describe("findCycle", () => {
  it("finds no cycle in a DAG", () => {
    expect(findCycle(stack)).toBeUndefined()
    expect(findCycle(diamond)).toBeUndefined()
    expect(findCycle([])).toBeUndefined()
  })

  it("returns a cycle of three as a closed path", () => {
    expect(findCycle(graph({ a: ["b"], b: ["c"], c: ["a"], d: [] }))).toEqual(["a", "b", "c", "a"])
  })

  it("starts the path where the cycle starts, not at the entry node", () => {
    expect(findCycle(graph({ a: ["b"], b: ["c"], c: ["b"] }))).toEqual(["b", "c", "b"])
  })

  it("reports a self-dependency", () => {
    expect(findCycle(graph({ a: ["a"] }))).toEqual(["a", "a"])
  })

  it("ignores unknown dependencies", () => {
    expect(findCycle(graph({ a: ["ghost"] }))).toBeUndefined()
  })
})

describe("topologicalOrder", () => {
  it("puts dependencies first, ties by name", () => {
    expect(topologicalOrder(stack)).toEqual(["nats", "pocketbase", "caddy", "worker"])
    expect(topologicalOrder(diamond)).toEqual(["db", "api", "web", "app"])
  })

  it("does not depend on input order", () => {
    expect(topologicalOrder([...stack].reverse())).toEqual(topologicalOrder(stack))
  })

  it("each node comes after all its dependencies", () => {
    const order = topologicalOrder(diamond)
    for (const node of diamond) {
      for (const dep of node.dependsOn) expect(order.indexOf(dep.name)).toBeLessThan(order.indexOf(node.name))
    }
    expect(order).toHaveLength(4)
  })
})

describe("topologicalOrder against its definition", () => {
  // the definition, as first written: at each step, the first name in order whose dependencies are all placed
  const reference = (nodes: ReadonlyArray<GraphNode>): ReadonlyArray<string> => {
    const known = new Set(nodes.map((n) => n.name))
    const deps = new Map(nodes.map((n) => [n.name, n.dependsOn.map((d) => d.name).filter((d) => known.has(d))]))
    const pending = [...deps.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const placed = new Set<string>()
    const order: Array<string> = []
    for (let progress = true; progress; ) {
      progress = false
      const next = pending.find((name) => !placed.has(name) && deps.get(name)!.every((d) => placed.has(d)))
      if (next !== undefined) {
        placed.add(next)
        order.push(next)
        progress = true
      }
    }
    return order
  }

  it("gives the same order on random graphs (cycles, duplicates, unknown names included)", () => {
    const names = ["a", "b", "c", "d", "e", "f", "g", "h", "a-b", "a_b", "B"]
    const arbitrary = FastCheck.uniqueArray(FastCheck.constantFrom(...names), { minLength: 0, maxLength: 11 }).chain(
      (nodes) =>
        FastCheck.tuple(
          ...nodes.map((name) =>
            FastCheck.array(FastCheck.constantFrom(...names, "unknown"), { maxLength: 4 }).map((deps) => ({
              name,
              dependsOn: deps.map((dep) => ({ name: dep }))
            }))
          )
        )
    )
    FastCheck.assert(
      FastCheck.property(arbitrary, (nodes) => {
        expect(topologicalOrder(nodes)).toEqual(reference(nodes))
      }),
      { numRuns: 1000 }
    )
  })
})

describe("levels", () => {
  it("start levels group what may run in parallel", () => {
    expect(startLevels(stack)).toEqual([["nats", "worker"], ["pocketbase"], ["caddy"]])
    expect(startLevels(diamond)).toEqual([["db"], ["api", "web"], ["app"]])
  })

  it("stop levels put dependents first", () => {
    expect(stopLevels(stack)).toEqual([["caddy", "worker"], ["pocketbase"], ["nats"]])
    expect(stopLevels(diamond)).toEqual([["app"], ["api", "web"], ["db"]])
  })

  it("empty graph has no levels", () => {
    expect(startLevels([])).toEqual([])
    expect(stopLevels([])).toEqual([])
  })
})

describe("subsets", () => {
  it("withDependencies adds transitive dependencies in order", () => {
    expect(withDependencies(stack, ["caddy"])).toEqual(["nats", "pocketbase", "caddy"])
    expect(withDependencies(stack, ["worker", "nats"])).toEqual(["nats", "worker"])
    expect(withDependencies(diamond, ["web"])).toEqual(["db", "web"])
    expect(withDependencies(diamond, [])).toEqual([])
  })

  it("dependentsOf finds transitive dependents without the node itself", () => {
    expect(dependentsOf(stack, "nats")).toEqual(["pocketbase", "caddy"])
    expect(dependentsOf(stack, "caddy")).toEqual([])
    expect(dependentsOf(diamond, "db")).toEqual(["api", "web", "app"])
    expect(dependentsOf(diamond, "web")).toEqual(["app"])
  })
})

describe("unknownDependencies", () => {
  it("lists each dependency that names no service", () => {
    expect(unknownDependencies(graph({ api: ["db", "nats"], nats: [], web: ["cache"] }))).toEqual([
      { service: "api", dependency: "db" },
      { service: "web", dependency: "cache" }
    ])
    expect(unknownDependencies(stack)).toEqual([])
  })
})
