import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parse } from "yaml"
import { renderComposeFile, writeComposeFile } from "../src/deploy/ComposeFile.js"
import { escapeDollars, escapeTemplate, readyLogLiteral, tcpProbeCommand } from "../src/deploy/ComposeTranslation.js"
import { loadStack } from "../src/manifest/StackLoader.js"
import type { ServiceName } from "../src/manifest/ServiceManifest.js"
import { fakeStackDir, goldenCases, service, stack } from "./fixtures/compose/specs.js"

const fixtures = join(import.meta.dirname, "fixtures", "compose")

/**
 * What process-compose v1.85.0 reads from the file: `$$` kept as `$` while every other `$` would be
 * substituted (there must be none left), then YAML.
 */
const loadLikeProcessCompose = (text: string): any => {
  const marker = "##PC_ENV_ESCAPED##"
  const escaped = text.replaceAll("$$", marker)
  expect(escaped).not.toContain("$")
  return parse(escaped.replaceAll(marker, "$"))
}

/** What process-compose's Go template rendering makes of an escaped field (only the escape is used). */
const renderTemplate = (value: string): string => value.replaceAll('{{"{{"}}', "{{")

describe("renderComposeFile golden files", () => {
  for (const [name, spec] of Object.entries(goldenCases)) {
    it(`${name} matches test/fixtures/compose/${name}/expected.yaml`, () => {
      const actual = renderComposeFile(spec, { commandPaths: {}, nodeExecutable: "node" })
      const file = join(fixtures, name, "expected.yaml")
      if (process.env.UPDATE_GOLDEN === "1") writeFileSync(file, actual)
      expect(actual).toBe(readFileSync(file, "utf8"))
    })
  }

  it.live("the compat fixture stack, loaded from its manifests, matches compat/expected.yaml", () =>
    Effect.gen(function* () {
      const spec = yield* loadStack(join(fixtures, "compat"), { env: { PATH: "/usr/bin:/bin" } })
      const actual = renderComposeFile(spec, { commandPaths: {}, nodeExecutable: "node" }).replaceAll(
        spec.dir,
        fakeStackDir
      )
      const file = join(fixtures, "compat", "expected.yaml")
      if (process.env.UPDATE_GOLDEN === "1") writeFileSync(file, actual)
      expect(actual).toBe(readFileSync(file, "utf8"))
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it("is deterministic whatever the order of services and environment", () => {
    const spec = goldenCases.basic!
    const shuffled = {
      ...spec,
      services: [...spec.services].reverse().map((s) => ({
        ...s,
        env: Object.fromEntries(Object.entries(s.env).reverse()),
        dependsOn: [...s.dependsOn].reverse()
      }))
    }
    expect(renderComposeFile(shuffled)).toBe(renderComposeFile(spec))
  })

  it("orders processes and dependencies by name in code units, whatever the locale ('-' before '_')", () => {
    const dependsOn = ["a_b", "a-b"].map((name) => ({
      name: name as ServiceName,
      condition: "process_started" as const
    }))
    const text = renderComposeFile(stack([service("z", { dependsOn }), service("a_b"), service("a-b")]))
    // a locale's collation (localeCompare) puts "a_b" first
    expect(text.indexOf("\n  a-b:")).toBeGreaterThan(0)
    expect(text.indexOf("\n  a-b:")).toBeLessThan(text.indexOf("\n  a_b:"))
    const z = text.slice(text.indexOf("\n  z:"))
    expect(z.indexOf("a-b:")).toBeGreaterThan(0)
    expect(z.indexOf("a-b:")).toBeLessThan(z.indexOf("a_b:"))
  })
})

describe("renderComposeFile meaning", () => {
  it("passes arguments, environment, working directory and description through process-compose's expansion and templates unchanged", () => {
    const spec = goldenCases.escaping!
    const original = spec.services[0]!
    const loaded = loadLikeProcessCompose(renderComposeFile(spec))
    const proc = loaded.processes.quoting
    expect(proc.entrypoint).toEqual([original.command, ...original.args])
    expect(proc.environment.map(renderTemplate)).toEqual(
      Object.keys(original.env)
        .sort()
        .map((key) => `${key}=${original.env[key]}`)
    )
    expect(renderTemplate(proc.working_dir)).toBe(original.workingDir)
    expect(renderTemplate(proc.description)).toBe(original.description)
    // not rendered as a template by process-compose, so not escaped
    expect(proc.ready_log_line).toBe("ready {{ now }} costs $5")
  })

  it("gives every process a shutdown timeout of at least 1 s and a numeric signal", () => {
    for (const spec of Object.values(goldenCases)) {
      const loaded = loadLikeProcessCompose(renderComposeFile(spec))
      for (const [name, proc] of Object.entries<any>(loaded.processes)) {
        expect(proc.shutdown.timeout_seconds, name).toBeGreaterThanOrEqual(1)
        expect(Number.isInteger(proc.shutdown.signal), name).toBe(true)
      }
    }
  })

  it("keeps every dependency of an enabled service on an enabled one", () => {
    const loaded = loadLikeProcessCompose(renderComposeFile(goldenCases.translations!))
    expect(Object.keys(loaded.processes.dependent.depends_on).sort()).toEqual([
      "both",
      "log-regex",
      "plain",
      "tcp-ready"
    ])
    expect(loaded.processes.once.depends_on).toEqual({ off: { condition: "process_completed_successfully" } })
  })

  it("never writes ready_log_line beside a readiness probe (process-compose refuses that)", () => {
    const loaded = loadLikeProcessCompose(renderComposeFile(goldenCases.translations!))
    for (const [name, proc] of Object.entries<any>(loaded.processes)) {
      expect(proc.ready_log_line !== undefined && proc.readiness_probe !== undefined, name).toBe(false)
    }
  })

  it("resolves bare commands through commandPaths and notes those it cannot", () => {
    const spec = stack([service("a", { command: "tool" }), service("b", { command: "other" })])
    const text = renderComposeFile(spec, { commandPaths: { tool: "/opt/bin/tool" } })
    const loaded = loadLikeProcessCompose(text)
    expect(loaded.processes.a.entrypoint).toEqual(["/opt/bin/tool"])
    expect(loaded.processes.b.entrypoint).toEqual(["other"])
    expect(text).toContain("# other was not found on PATH")
    // a command named as what every object inherits is looked up, not found in Object.prototype
    const inherited = renderComposeFile(stack([service("c", { command: "toString" })]), { commandPaths: {} })
    expect(loadLikeProcessCompose(inherited).processes.c.entrypoint).toEqual(["toString"])
  })
})

describe("translation helpers", () => {
  it("readyLogLiteral keeps literal patterns and refuses real regular expressions", () => {
    expect(readyLogLiteral("Server ready")).toBe("Server ready")
    expect(readyLogLiteral("^worker ready\\.$")).toBe("worker ready.")
    expect(readyLogLiteral("costs \\$5")).toBe("costs $5")
    expect(readyLogLiteral("listening on [0-9]+")).toBeUndefined()
    expect(readyLogLiteral("a|b")).toBeUndefined()
    expect(readyLogLiteral("\\d")).toBeUndefined()
    expect(readyLogLiteral("^$")).toBeUndefined()
  })

  it("escapes dollars and template openings", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: placeholder text that must stay literal
    expect(escapeDollars("$A $$ ${B}")).toBe("$$A $$$$ $${B}")
    expect(escapeTemplate("{{ .x }} {{{")).toBe('{{"{{"}} .x }} {{"{{"}}{')
  })

  it.live("the tcp stand-in probe exits 0 on a listening port and 1 on a closed one", () =>
    Effect.promise(async () => {
      const server = createServer((socket) => socket.end())
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      const port = (server.address() as { port: number }).port
      const open = spawnSync("sh", ["-c", tcpProbeCommand(process.execPath, "127.0.0.1", port, 1000)])
      await new Promise<void>((resolve) => server.close(() => resolve()))
      const closed = spawnSync("sh", ["-c", tcpProbeCommand(process.execPath, "127.0.0.1", port, 1000)])
      expect(open.status).toBe(0)
      expect(closed.status).toBe(1)
    })
  )
})

describe("writeComposeFile", () => {
  it.scopedLive("writes .core-stack/process-compose.yaml with mode 0600 in a 0700 directory, atomically", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "core-compose-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const sh = execFileSync("sh", ["-c", "command -v sh"]).toString().trim()
      const spec = stack(
        [service("a", { command: "sh", args: ["-c", "sleep 1"], env: { SECRET: "$ecret" } }, dir)],
        dir
      )
      const written = yield* writeComposeFile(spec)
      expect(written).toBe(join(dir, ".core-stack", "process-compose.yaml"))
      expect(statSync(written).mode & 0o777).toBe(0o600)
      expect(statSync(join(dir, ".core-stack")).mode & 0o777).toBe(0o700)
      expect(readdirSync(join(dir, ".core-stack"))).toEqual(["process-compose.yaml"])
      const loaded = loadLikeProcessCompose(readFileSync(written, "utf8"))
      expect(loaded.processes.a.entrypoint).toEqual([sh, "-c", "sleep 1"])
      expect(loaded.processes.a.environment).toEqual(["SECRET=$ecret"])

      // a second write replaces the file and leaves no temporary file behind
      yield* writeComposeFile({ ...spec, services: [] })
      expect(readdirSync(join(dir, ".core-stack"))).toEqual(["process-compose.yaml"])
      expect(loadLikeProcessCompose(readFileSync(written, "utf8")).processes).toEqual({})
      expect(statSync(written).mode & 0o777).toBe(0o600)
    }).pipe(Effect.provide(NodeContext.layer))
  )
})
