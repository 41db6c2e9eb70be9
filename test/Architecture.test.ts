/**
 * The layer rule of docs/ARCHITECTURE.md, enforced: every import of every `src/**\/*.ts` is read, and a
 * module may import only from its own folder or from a folder of a lower layer.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const srcDir = path.resolve(import.meta.dirname, "../src")

/**
 * The layers, top to bottom. Folders of one layer may not import each other, except where a layer says
 * `peers` (manifest and stack use each other). The files directly in `src/` (bin, Main, Start, Program, index, launcher, SupervisorMain, SupervisorSnapshot and its build)
 * are above every layer.
 */
const layers: ReadonlyArray<{ readonly folders: ReadonlyArray<string>; readonly peers?: true }> = [
  { folders: ["cli", "library"] },
  { folders: ["ui"] },
  { folders: ["app"] },
  { folders: ["api"] },
  { folders: ["deploy"] },
  { folders: ["supervisor"] },
  { folders: ["provision", "health", "logs"] },
  { folders: ["manifest", "stack"], peers: true },
  { folders: ["state"] },
  { folders: ["process"] },
  { folders: ["trace"] }
]

/** Modules of one folder that must not import each other (`from` must not import `to`). */
const forbidden: ReadonlyArray<{ readonly from: string; readonly to: string }> = [
  { from: "api/ControlClient.ts", to: "api/ControlServer.ts" }
]

/** An import of one of our modules: both paths relative to `src/`. */
interface Import {
  readonly from: string
  readonly to: string
  readonly line: number
}

const folderOf = (file: string): string => (file.includes("/") ? file.slice(0, file.indexOf("/")) : ".")

const rankOf = (folder: string): number | undefined => {
  if (folder === ".") return -1
  const i = layers.findIndex((l) => l.folders.includes(folder))
  return i < 0 ? undefined : i
}

/** What is wrong with one import, or undefined. */
const violation = (i: Import): string | undefined => {
  const from = folderOf(i.from)
  const to = folderOf(i.to)
  const where = `src/${i.from}:${i.line} imports src/${i.to}`
  if (forbidden.some((f) => f.from === i.from && f.to === i.to)) return `${where}, which it must not`
  if (from === to) return undefined
  const fromRank = rankOf(from)
  const toRank = rankOf(to)
  if (fromRank === undefined) return `src/${i.from}: folder ${from}/ has no layer in test/Architecture.test.ts`
  if (toRank === undefined) return `src/${i.to}: folder ${to}/ has no layer in test/Architecture.test.ts`
  if (toRank === -1) return `${where}: the entry files are above every layer`
  if (fromRank < toRank) return undefined
  if (fromRank === toRank && layers[fromRank]!.peers) return undefined
  return fromRank === toRank
    ? `${where}: ${from}/ and ${to}/ are on the same layer`
    : `${where}: ${to}/ is on a layer above ${from}/`
}

const specifier = /(?:^|[\s;])(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm

/** The relative imports of a source text, resolved against its path (relative to `src/`). */
const importsOf = (file: string, text: string): ReadonlyArray<Import> => {
  const out: Array<Import> = []
  for (const m of text.matchAll(specifier)) {
    const spec = m[1] ?? m[2]!
    if (!spec.startsWith(".")) continue
    const line = text.slice(0, m.index).split("\n").length + (m[0].startsWith("\n") ? 1 : 0)
    const to = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, ".ts")
    out.push({ from: file, to, line })
  }
  return out
}

const sourceFiles = (dir: string, prefix = ""): ReadonlyArray<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name
    if (entry.isDirectory()) return sourceFiles(path.join(dir, entry.name), rel)
    return entry.name.endsWith(".ts") ? [rel] : []
  })

describe("Architecture", () => {
  it("no module imports from a layer above its own", () => {
    const files = sourceFiles(srcDir)
    expect(files.length).toBeGreaterThan(20)
    const imports = files.flatMap((f) => importsOf(f, fs.readFileSync(path.join(srcDir, f), "utf8")))
    // the parser sees the imports there are (a broken pattern would see none and pass everything)
    expect(imports.length).toBeGreaterThan(files.length)
    for (const i of imports) expect(fs.existsSync(path.join(srcDir, i.to)), `src/${i.from} -> src/${i.to}`).toBe(true)
    expect(imports.map(violation).filter((v) => v !== undefined)).toEqual([])
  })

  it("reads every form of import and tells each kind of violation", () => {
    const text = [
      'import { a } from "../api/ControlServer.js"',
      'import type { B } from "./Supervisor.js"',
      "export { c } from '../stack/StackGraph.js'",
      'import {\n  d,\n  e\n} from "../app/StackUp.js"',
      'const f = await import("../cli/Cli.js")',
      'import { Effect } from "effect"'
    ].join("\n")
    const found = importsOf("supervisor/X.ts", text)
    expect(found.map((i) => [i.to, i.line])).toEqual([
      ["api/ControlServer.ts", 1],
      ["supervisor/Supervisor.ts", 2],
      ["stack/StackGraph.ts", 3],
      ["app/StackUp.ts", 4],
      ["cli/Cli.ts", 8]
    ])
    expect(found.map(violation)).toEqual([
      "src/supervisor/X.ts:1 imports src/api/ControlServer.ts: api/ is on a layer above supervisor/",
      undefined,
      undefined,
      "src/supervisor/X.ts:4 imports src/app/StackUp.ts: app/ is on a layer above supervisor/",
      "src/supervisor/X.ts:8 imports src/cli/Cli.ts: cli/ is on a layer above supervisor/"
    ])
    expect(violation({ from: "logs/A.ts", to: "health/B.ts", line: 1 })).toContain("same layer")
    expect(violation({ from: "stack/A.ts", to: "manifest/B.ts", line: 1 })).toBeUndefined()
    expect(violation({ from: "api/ControlClient.ts", to: "api/ControlServer.ts", line: 3 })).toContain("must not")
    expect(violation({ from: "cli/A.ts", to: "Main.ts", line: 1 })).toContain("above every layer")
    expect(violation({ from: "newfolder/A.ts", to: "stack/B.ts", line: 1 })).toContain("has no layer")
  })
})
