/**
 * The production path of `core deploy fly`, without Docker: a directory laid out as the image's runtime stage
 * lays it out (the Dockerfile's `COPY --from=build` sources to the same relative places, `.dep` from this
 * repository's provisioning), the Dockerfile's command run there with the image's `ENV`, fly.toml's `[env]`
 * and a temporary data directory. The public entry must listen on all interfaces and answer `/api/health`
 * (asked on 127.0.0.1 only), every other port on loopback only; PocketBase's data lands in the data
 * directory; a killed service is restarted by its policy; SIGTERM (what tini forwards from Fly) stops the
 * stack, dependents first, within `kill_timeout`; nothing is left running. A stack that cannot start exits
 * non-zero.
 *
 * Ports are overridden (`CORE_PORT_*`) so that the test runs beside the others; tini itself is not run.
 * In CI this never skips: missing binaries fail it. Locally it skips, saying so, when `.dep/` lacks them.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { parse as parseToml } from "smol-toml"
import { flyDeployment } from "../src/deploy/FlyDeploy.js"
import { loadStack } from "../src/manifest/StackLoader.js"
import { inCi, missingBinaries, repoRoot } from "./support/DefaultStackCopy.js"
import { decodeFlyConfig } from "./support/FlyConfig.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { freshPort, tempDir } from "./support/Specs.js"

const missing = missingBinaries()

/** The runtime stage of a Dockerfile: its WORKDIR, `COPY --from=build` pairs, ENV, RUN mkdirs and CMD. */
const runtimeStage = (dockerfile: string) => {
  const stage = dockerfile.split(/^FROM /m).at(-1)!
  const workdir = /^WORKDIR (\S+)$/m.exec(stage)![1]!
  const copies = [...stage.matchAll(/^COPY --from=build (\S+) (\S+)$/gm)].map(([, from, to]) => ({ from, to }))
  const env: Record<string, string> = {}
  for (const [, assignments] of stage.matchAll(/^ENV (.+)$/gm)) {
    for (const pair of assignments!.split(" ")) {
      const eq = pair.indexOf("=")
      env[pair.slice(0, eq)] = pair.slice(eq + 1)
    }
  }
  const made = /mkdir -p ([^\\\n&]+)/.exec(stage)?.[1]?.trim().split(/\s+/) ?? []
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(stage)![1]!) as Array<string>
  return { workdir, copies: copies as Array<{ from: string; to: string }>, env, made, cmd }
}

/** Sockets listening on `port` (IPv4 and IPv6), as `address` hex strings of /proc/net/tcp{,6}. */
const listeners = (port: number): ReadonlyArray<string> => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  return ["/proc/net/tcp", "/proc/net/tcp6"].flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === "0A" && fields[1]?.endsWith(`:${hexPort}`))
      .map((fields) => fields[1]!.split(":")[0]!)
  )
}
/** All interfaces: 0.0.0.0, or :: (dual-stack, as Go listens for 0.0.0.0 on such hosts). */
const ANY = ["00000000", "00000000000000000000000000000000"]
const LOOPBACK_V4 = "0100007F"

interface Run {
  readonly child: ChildProcess
  readonly out: () => string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
}

const start = (cmd: ReadonlyArray<string>, cwd: string, env: Record<string, string>): Run => {
  const [program, ...args] = cmd
  const child = spawn(program === "node" ? process.execPath : program!, args, { cwd, env, stdio: "pipe" })
  let text = ""
  child.stdout!.on("data", (chunk) => {
    text += chunk
  })
  child.stderr!.on("data", (chunk) => {
    text += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() }))
  )
  return { child, out: () => text, exited }
}

if (missing.length > 0 && !inCi()) {
  describe.skip(`Fly production path: SKIPPED, .dep/ lacks ${missing.join(", ")} (run \`npm run build && node dist/core.cjs stack provision\`)`, () => {
    it("runs when the binaries are provisioned", () => {})
  })
} else {
  const deployment = Effect.runPromise(
    loadStack(repoRoot, { env: { PATH: process.env.PATH }, portable: true }).pipe(
      Effect.map((stack) => flyDeployment(stack, { app: "core", region: "iad" })),
      Effect.provide(NodeContext.layer)
    )
  ).then((result) => {
    if (Either.isLeft(result)) throw result.left
    const file = (name: string) => result.right.files.find((f) => f.path === name)!.content
    const config = decodeFlyConfig(parseToml(file("fly.toml")))
    if (Either.isLeft(config)) throw new Error(String(config.left))
    return { dockerfile: file("Dockerfile"), config: config.right }
  })

  /** Lays out the image's runtime stage in a temp directory; returns it and the command's environment. */
  const layout = async () => {
    const { dockerfile, config } = await deployment
    const stage = runtimeStage(dockerfile)
    const dir = tempDir("core-fly-image-")
    // what the build stage holds at /app: this repository after `npm run build` and `core stack provision`
    for (const { from, to } of stage.copies) {
      expect(from.startsWith(`${stage.workdir}/`)).toBe(true)
      const source = join(repoRoot, from.slice(stage.workdir.length + 1))
      cpSync(source, join(dir, to), {
        recursive: true,
        dereference: true,
        preserveTimestamps: true,
        // the image provisions the stack's binaries only; .dep/tools holds this repository's test tools
        filter: (path) => path !== join(source, "tools")
      })
    }
    for (const made of stage.made) if (!made.startsWith("/")) mkdirSync(join(dir, made), { recursive: true })
    const inImage = (value: string) => value.replaceAll(stage.workdir, dir)
    const dataDir = join(tempDir("core-fly-volume-"), "data")
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dir,
      ...Object.fromEntries(Object.entries(stage.env).map(([k, v]) => [k, inImage(v)])),
      ...config.env,
      CORE_DATA_DIR: dataDir
    }
    return { dir, dataDir, env, cmd: stage.cmd, config }
  }

  /** Fresh ports for every service, so that the run does not meet other tests' stacks. */
  const freshPorts = () => {
    const ports = {
      nats: { client: freshPort(), monitor: freshPort() },
      pocketbase: { http: freshPort() },
      caddy: { http: freshPort(), admin: freshPort() }
    }
    const overrides = {
      CORE_PORT_NATS_CLIENT: String(ports.nats.client),
      CORE_PORT_NATS_MONITOR: String(ports.nats.monitor),
      CORE_PORT_POCKETBASE_HTTP: String(ports.pocketbase.http),
      CORE_PORT_CADDY_HTTP: String(ports.caddy.http),
      CORE_PORT_CADDY_ADMIN: String(ports.caddy.admin)
    }
    return { ports, overrides }
  }

  const started: Array<Run> = []
  afterAll(() => {
    for (const run of started)
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL")
  })

  describe("Fly production path (the image's layout, without Docker)", () => {
    it("the public entry on all interfaces, the rest on loopback; data in the volume; restarts; SIGTERM within kill_timeout", async () => {
      const { dir, dataDir, env, cmd, config } = await deployment.then(layout)
      const { ports, overrides } = freshPorts()
      // the image's command, as tini runs it: `node dist/core.cjs stack up` in WORKDIR
      expect(cmd).toEqual(["node", "dist/core.cjs", "stack", "up"])
      const run = start(cmd, dir, { ...env, ...overrides })
      started.push(run)
      const ready = await eventually(() => /core: \d+ service\(s\) ready/.test(run.out()), 90_000, 50)
      expect(ready, run.out()).toBe(true)

      const publicListeners = listeners(ports.caddy.http)
      expect(publicListeners.length).toBeGreaterThan(0)
      for (const address of publicListeners) expect(ANY).toContain(address)
      for (const port of [ports.nats.client, ports.nats.monitor, ports.pocketbase.http, ports.caddy.admin]) {
        expect(listeners(port), `port ${port}`).toEqual([LOOPBACK_V4])
      }
      const health = await fetch(`http://127.0.0.1:${ports.caddy.http}/api/health`)
      expect(health.status).toBe(200)
      expect(((await health.json()) as { code: number }).code).toBe(200)

      // logs on stdout with the `name |` prefix, no colour (not a terminal)
      expect(run.out()).toMatch(/^pocketbase \| /m)
      expect(run.out()).toMatch(/^nats\s+\| /m)
      expect(run.out()).not.toContain("\x1b[")
      // the data directory: created 0700, PocketBase's database in it
      expect(statSync(dataDir).mode & 0o777).toBe(0o700)
      expect(existsSync(join(dataDir, "pocketbase", "data.db"))).toBe(true)
      expect(existsSync(join(dataDir, "nats", "jetstream"))).toBe(true)
      expect(existsSync(join(dir, ".data"))).toBe(false)

      // a service that fails follows its restart policy (on_failure): PocketBase killed, restarted, serving again
      const [pocketbase] = processesMentioning(join(dir, ".dep", "pocketbase"))
      expect(pocketbase).toBeDefined()
      process.kill(pocketbase!.pid, "SIGKILL")
      const restarted = await eventually(() => /^pocketbase\s+\| \[core\].*restarting in/m.test(run.out()), 10_000)
      expect(restarted, run.out()).toBe(true)
      const servingAgain = await eventually(
        () => {
          const [now] = processesMentioning(join(dir, ".dep", "pocketbase"))
          return now !== undefined && now.pid !== pocketbase!.pid && listeners(ports.pocketbase.http).length > 0
        },
        30_000,
        50
      )
      expect(servingAgain, run.out()).toBe(true)
      expect((await fetch(`http://127.0.0.1:${ports.caddy.http}/api/health`)).status).toBe(200)

      const sent = Date.now()
      run.child.kill("SIGTERM")
      const { code, at } = await run.exited
      expect(code).toBe(0)
      expect(at - sent).toBeLessThan(Number(config.kill_timeout) * 1000)
      // dependents first: caddy stopped before pocketbase, pocketbase before nats
      const stoppedAt = (name: string) => run.out().search(new RegExp(`^${name}\\s+\\| \\[core\\].*stopped`, "m"))
      expect(stoppedAt("caddy"), run.out()).toBeGreaterThan(-1)
      expect(stoppedAt("caddy")).toBeLessThan(stoppedAt("pocketbase"))
      expect(stoppedAt("pocketbase")).toBeLessThan(stoppedAt("nats"))
      expect(await eventually(() => processesMentioning(dir).length === 0, 10_000)).toBe(true)
    })

    it("a stack that cannot start exits non-zero, with the reason, and leaves nothing running", async () => {
      const { dir, env, cmd } = await deployment.then(layout)
      const { ports, overrides } = freshPorts()
      const port = ports.caddy.http
      const blocker = createServer()
      await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve))
      try {
        const run = start(cmd, dir, { ...env, ...overrides })
        started.push(run)
        const { code } = await run.exited
        expect(code).toBe(1)
        expect(run.out()).toContain(`port ${port} of service "caddy" is already in use`)
      } finally {
        blocker.close()
      }
      // and a data directory that cannot be made
      const file = join(tempDir("core-fly-volume-"), "not-a-directory")
      writeFileSync(file, "")
      const run = start(cmd, dir, { ...env, ...overrides, CORE_DATA_DIR: file })
      started.push(run)
      const { code } = await run.exited
      expect(code).toBe(1)
      expect(run.out()).toContain(`cannot create the data directory ${file}: it exists and is not a directory`)
      expect(processesMentioning(dir)).toEqual([])
    })
  })
}
