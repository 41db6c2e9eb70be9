/**
 * The dashboard page's pure parts: ANSI colours, the graph's layout, sparklines, how states look.
 */
import { describe, expect, it } from "@effect/vitest"
import { BASIC_COLOURS, colour256, parseAnsi, stripAnsi } from "../src/ui/view/Ansi.js"
import { conditionLabel, layoutGraph } from "../src/ui/view/GraphLayout.js"
import { sparkline } from "../src/ui/view/Sparkline.js"
import { healthLook, stateLook, verbsFor } from "../src/ui/view/StateLook.js"

describe("parseAnsi", () => {
  it("plain text is one unstyled segment", () => {
    expect(parseAnsi("hello").segments).toEqual([{ text: "hello", style: {} }])
  })

  it("basic, bright, 256 and 24-bit colours, bold and reset", () => {
    const { segments, end } = parseAnsi("a\x1b[31mb\x1b[1;94mc\x1b[0md\x1b[38;5;196me\x1b[48;2;1;2;3mf\x1b[39;49mg")
    expect(segments).toEqual([
      { text: "a", style: {} },
      { text: "b", style: { fg: BASIC_COLOURS[1] } },
      { text: "c", style: { fg: BASIC_COLOURS[12], bold: true } },
      { text: "d", style: {} },
      { text: "e", style: { fg: "#ff0000" } },
      { text: "f", style: { fg: "#ff0000", bg: "#010203" } },
      { text: "g", style: {} }
    ])
    expect(end).toEqual({})
  })

  it("a style left open carries over to the next line", () => {
    const first = parseAnsi("\x1b[32mgreen")
    expect(parseAnsi("still", first.end).segments).toEqual([{ text: "still", style: { fg: BASIC_COLOURS[2] } }])
  })

  it("drops other escapes (cursor moves, erase, titles); `ESC[m` resets", () => {
    expect(parseAnsi("\x1b[2K\x1b[1Gdone\x1b]0;title\x07!\x1b[1mx\x1b[my").segments).toEqual([
      { text: "done", style: {} },
      { text: "!", style: {} },
      { text: "x", style: { bold: true } },
      { text: "y", style: {} }
    ])
    expect(stripAnsi("\x1b[31mred\x1b[0m \x1b[2Kline")).toBe("red line")
  })

  it("colour256: the cube and the grey ramp", () => {
    expect(colour256(16)).toBe("#000000")
    expect(colour256(231)).toBe("#ffffff")
    expect(colour256(232)).toBe("#080808")
    expect(colour256(3)).toBe(BASIC_COLOURS[3])
  })
})

describe("layoutGraph", () => {
  const graph = {
    layers: [["db"], ["api", "cache"], ["web"]],
    edges: [
      { service: "api", dependsOn: "db", condition: "process_healthy" },
      { service: "web", dependsOn: "api", condition: "process_log_ready" },
      { service: "web", dependsOn: "gone", condition: "process_started" }
    ]
  }
  const layout = layoutGraph(graph, { nodeWidth: 100, nodeHeight: 40, columnGap: 50, rowGap: 10, margin: 5 })

  it("one column per level, dependencies on the left, each column centred", () => {
    const at = new Map(layout.nodes.map((n) => [n.name, n]))
    expect(layout.width).toBe(5 * 2 + 3 * 100 + 2 * 50)
    expect(layout.height).toBe(5 * 2 + 2 * 40 + 10)
    expect([at.get("db")!.x, at.get("api")!.x, at.get("web")!.x]).toEqual([5, 155, 305])
    expect(at.get("api")!.y).toBe(5)
    expect(at.get("cache")!.y).toBe(55)
    expect(at.get("db")!.y).toBe(at.get("web")!.y)
    expect(at.get("db")!.y).toBe((layout.height - 40) / 2)
  })

  it("an edge per known dependency, from the dependency's right side to the dependent's left, labelled", () => {
    expect(layout.edges.map((e) => [e.dependsOn, e.service, e.label])).toEqual([
      ["db", "api", "healthy"],
      ["api", "web", "log ready"]
    ])
    expect(layout.edges[0]!.path.startsWith("M105,")).toBe(true)
    expect(layout.edges[0]!.path.endsWith(" 155,25")).toBe(true)
    expect(conditionLabel("process_completed_successfully")).toBe("completed ok")
  })
})

describe("sparkline", () => {
  it("scales to the largest value, newest at the right edge, broken where a value is missing", () => {
    const { line, area } = sparkline([0, 10, null, 5, 10], { width: 40, height: 12, capacity: 5 })
    expect(line).toBe("M0.0,11.0L10.0,1.0M30.0,6.0L40.0,1.0")
    expect(area).toBe("M0.0,12L0.0,11.0L10.0,1.0L10.0,12ZM30.0,12L30.0,6.0L40.0,1.0L40.0,12Z")
  })

  it("fewer values than slots sit at the right; a floor keeps small values low; nothing known draws nothing", () => {
    expect(sparkline([1, 1], { width: 40, height: 12, capacity: 5, floor: 2 }).line).toBe("M30.0,6.0L40.0,6.0")
    expect(sparkline([null, null], { width: 40, height: 12, capacity: 5 })).toEqual({ line: "", area: "" })
  })
})

describe("stateLook", () => {
  it("every state has a tone and a symbol; verbs follow the state", () => {
    expect(stateLook("ready")).toEqual({ tone: "ok", symbol: "●" })
    expect(stateLook("failed").tone).toBe("bad")
    expect(stateLook("stopped").tone).toBe("idle")
    expect(healthLook("unhealthy").tone).toBe("bad")
    expect(verbsFor("ready")).toEqual({ start: false, stop: true, restart: true })
    expect(verbsFor("stopped")).toEqual({ start: true, stop: false, restart: true })
    expect(verbsFor("pending")).toEqual({ start: true, stop: false, restart: true })
    expect(verbsFor("disabled")).toEqual({ start: false, stop: false, restart: false })
  })
})
