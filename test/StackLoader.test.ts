// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifest placeholders are the subject of these tests
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Option, Schema } from "effect"
import * as net from "node:net"
import { formatPath, loneSurrogates, ManifestError } from "../src/manifest/ManifestError.js"
import { CliConfig, CommandDescriptor, Options } from "@effect/cli"
import { checkPortsFree } from "../src/manifest/PortCheck.js"
import { resolveService, signalName, type StackContext } from "../src/manifest/ServiceResolver.js"
import { ServiceManifest } from "../src/manifest/ServiceManifest.js"
import { loadEnvironment, loadStack } from "../src/manifest/StackLoader.js"
import { dirOption } from "../src/cli/CliOptions.js"
import { serviceCommands } from "../src/cli/ServiceRun.js"
import type { StackSpec } from "../src/manifest/ServiceSpec.js"
import { malformedStacks } from "./fixtures/malformed.js"

const json = (value: unknown): string => JSON.stringify(value, null, 2)

/** A fresh temporary stack directory holding `files`; removed with the scope. */
const makeStack = (files: Readonly<Record<string, string>>, links: Readonly<Record<string, string>> = {}) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "core-stack-" })
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(dir, name)
      yield* fs.makeDirectory(path.dirname(file), { recursive: true })
      yield* fs.writeFileString(file, content)
    }
    for (const [name, target] of Object.entries(links)) {
      yield* fs.makeDirectory(path.dirname(path.join(dir, name)), { recursive: true })
      yield* fs.symlink(target, path.join(dir, name))
    }
    return dir
  })

/** Listens on a free port of 127.0.0.1 for the scope's lifetime. */
const occupyPort = Effect.acquireRelease(
  Effect.async<net.Server & { port: number }>((resume) => {
    const server = net.createServer()
    server.listen({ port: 0, host: "127.0.0.1" }, () => {
      const address = server.address() as net.AddressInfo
      resume(Effect.succeed(Object.assign(server, { port: address.port })))
    })
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

/** What `stack up` does before spawning: load, then check the ports of the enabled services. */
const loadForUp = (dir: string, env: Record<string, string | undefined>) =>
  loadStack(dir, { env }).pipe(
    Effect.tap((stack) =>
      checkPortsFree(
        stack,
        stack.services.filter((s) => !s.disabled).map((s) => s.name)
      )
    )
  )

const baseEnv = { PATH: process.env["PATH"] }

describe("loneSurrogates", () => {
  it("finds a surrogate without its other half in keys and values, and passes whole pairs", () => {
    const found = loneSurrogates({ ok: "pair \ud83d\ude00", args: ["x", "a\ud800"], ["k\udfff"]: 1, end: "\ud83d" })
    expect(found.map(({ path, unit }) => [formatPath(path), unit])).toEqual([
      ["args[1]", "\\uD800"],
      ['["k\\udfff"]', "\\uDFFF"],
      ["end", "\\uD83D"]
    ])
    expect(loneSurrogates({ a: ["\ud83d\ude00", { b: "\u00e9" }] })).toEqual([])
  })
})

describe("malformed stacks", () => {
  it("has at least 15 distinct cases with unique names", () => {
    expect(malformedStacks.length).toBeGreaterThanOrEqual(15)
    expect(new Set(malformedStacks.map((c) => c.name)).size).toBe(malformedStacks.length)
  })

  for (const stackCase of malformedStacks) {
    it.scoped(`refuses: ${stackCase.name}`, () =>
      Effect.gen(function* () {
        const port = stackCase.occupyPort === true ? String((yield* occupyPort).port) : "{{PORT}}"
        const fill = (text: string) => text.replaceAll("{{PORT}}", port)
        const files = Object.fromEntries(Object.entries(stackCase.files).map(([k, v]) => [k, fill(v)]))
        const dir = yield* makeStack(files, stackCase.links)
        const error = yield* Effect.flip(loadForUp(dir, { ...baseEnv, ...stackCase.env }))
        expect(error).toBeInstanceOf(ManifestError)
        for (const line of stackCase.expect) expect(error.message).toContain(fill(line))
        expect(error.message).not.toMatch(/\n\s+at /)
        // file paths are relative to the stack directory
        for (const line of error.message.split("\n")) expect(line.startsWith(dir)).toBe(false)
      }).pipe(Effect.provide(NodeContext.layer))
    )
  }
})

/** A stack in the shape of the default one, using `sh` so that every command exists. */
const goodFiles = {
  "services/nats/service.json": json({
    description: "message bus",
    binaries: {
      "nats-server": {
        version: "2.11.4",
        download: {
          url: "https://example.invalid/v${version}/nats-${os}-${arch}.tar.gz",
          sha256: { "linux-amd64": "0".repeat(64) }
        }
      }
    },
    process: {
      command: "${dep.nats-server}",
      args: ["-p", "${port.client}", "-m", "${port.monitor}", "--store_dir", "${data}/nats"],
      compose: {
        readiness_probe: { http_get: { path: "/healthz", port: "${port.monitor}" }, period_seconds: 2 },
        shutdown: { signal: 2, timeout_seconds: 3 },
        availability: { restart: "on_failure", backoff_seconds: 0.5, max_restarts: 4, backoff_exponential: true }
      }
    },
    ports: { client: 14222, monitor: 18222 }
  }),
  "services/pocketbase/service.json": json({
    process: {
      command: "sh",
      args: ["-c", "echo $${HOME} ${env.GREETING:-hello}"],
      env: { NATS_URL: "nats://127.0.0.1:${svc.nats.port.client}", FROM_DOTENV: "${env.FROM_DOTENV}" },
      compose: {
        depends_on: { nats: { condition: "process_healthy" } },
        working_dir: "services/pocketbase",
        liveness_probe: { exec: { command: "test -d ${dir}" } },
        readiness_probe: { tcp: { port: "${port.http}" }, failure_threshold: 5 },
        ready_log_line: "^listening on \\d+$",
        shutdown: { signal: "TERM" }
      },
      "x-note": "extension keys are allowed"
    },
    ports: { http: 18090 }
  }),
  "services/caddy/service.json": json({
    process: {
      command: "./services/caddy/run.sh",
      compose: { depends_on: { pocketbase: {} }, disabled: true }
    },
    ports: { http: 18091 }
  }),
  ".env": "FROM_DOTENV=from-file\nGREETING=from-file\n"
}

const loadGood = (env: Record<string, string | undefined> = {}) =>
  Effect.gen(function* () {
    const dir = yield* makeStack(goodFiles)
    const stack = yield* loadStack(dir, { env: { ...baseEnv, ...env } })
    return { dir, stack }
  })

const service = (stack: StackSpec, name: string) => stack.services.find((s) => s.name === name)!

describe("loadStack", () => {
  it.scoped("loads a good stack with placeholders resolved and defaults applied", () =>
    Effect.gen(function* () {
      const { dir, stack } = yield* loadGood()
      expect(stack.dir).toBe(dir)
      expect(stack.dataDir).toBe(`${dir}/.data`)
      expect(stack.depDir).toBe(`${dir}/.dep`)
      expect(stack.stateDir).toBe(`${dir}/.core-stack`)
      expect(stack.services.map((s) => s.name)).toEqual(["caddy", "nats", "pocketbase"])

      const nats = service(stack, "nats")
      expect(nats.command).toBe(`${dir}/.dep/nats-server`)
      expect(nats.args).toEqual(["-p", "14222", "-m", "18222", "--store_dir", `${dir}/.data/nats`])
      expect(nats.dir).toBe(`${dir}/services/nats`)
      expect(nats.manifestPath).toBe(`${dir}/services/nats/service.json`)
      expect(nats.description).toBe("message bus")
      expect(nats.workingDir).toBe(dir)
      expect(nats.readiness).toEqual({
        check: { _tag: "http_get", scheme: "http", host: "127.0.0.1", port: 18222, path: "/healthz", headers: {} },
        initialDelayMs: 0,
        periodMs: 2000,
        timeoutMs: 1000,
        successThreshold: 1,
        failureThreshold: 3
      })
      expect(nats.liveness).toBeUndefined()
      expect(nats.shutdown).toEqual({ signal: "SIGINT", timeoutMs: 3000, command: undefined })
      expect(nats.restart).toEqual({
        policy: "on_failure",
        backoffMs: 500,
        maxRestarts: 4,
        exponential: true,
        maxBackoffMs: 60_000,
        exitOnEnd: false
      })
      expect(nats.readinessTimeoutMs).toBe(60_000)
      expect(Object.keys(nats.binaries)).toEqual(["nats-server"])
      expect(nats.dependsOn).toEqual([])

      const pb = service(stack, "pocketbase")
      expect(pb.command).toBe("sh")
      expect(pb.args).toEqual(["-c", "echo ${HOME} from-file"])
      expect(pb.env).toEqual({ NATS_URL: "nats://127.0.0.1:14222", FROM_DOTENV: "from-file" })
      expect(pb.workingDir).toBe(`${dir}/services/pocketbase`)
      expect(pb.dependsOn).toEqual([{ name: "nats", condition: "process_healthy" }])
      expect(pb.liveness?.check).toEqual({
        _tag: "exec",
        command: `test -d ${dir}/services/pocketbase`,
        workingDir: pb.workingDir
      })
      expect(pb.readiness?.check).toEqual({ _tag: "tcp", host: "127.0.0.1", port: 18090 })
      expect(pb.readiness?.failureThreshold).toBe(5)
      expect(pb.readyLogLine).toBe("^listening on \\d+$")
      expect(pb.shutdown.signal).toBe("SIGTERM")
      expect(pb.disabled).toBe(false)
      expect(pb.restart.policy).toBe("no")

      const caddy = service(stack, "caddy")
      expect(caddy.disabled).toBe(true)
      expect(caddy.command).toBe(`${dir}/services/caddy/run.sh`)
      expect(caddy.dependsOn).toEqual([{ name: "pocketbase", condition: "process_started" }])
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("lets the environment win over .env", () =>
    Effect.gen(function* () {
      const { stack } = yield* loadGood({ FROM_DOTENV: "from-env", GREETING: "" })
      const pb = service(stack, "pocketbase")
      expect(pb.env["FROM_DOTENV"]).toBe("from-env")
      // an empty variable counts as set for .env, and `:-` then uses the default
      expect(pb.args[1]).toBe("echo ${HOME} hello")
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("applies port overrides everywhere the port is used", () =>
    Effect.gen(function* () {
      const { stack } = yield* loadGood({ CORE_PORT_NATS_CLIENT: "24222", CORE_PORT_POCKETBASE_HTTP: "28090" })
      expect(service(stack, "nats").ports).toEqual({ client: 24222, monitor: 18222 })
      expect(service(stack, "nats").args[1]).toBe("24222")
      const pb = service(stack, "pocketbase")
      expect(pb.env["NATS_URL"]).toBe("nats://127.0.0.1:24222")
      expect(pb.readiness?.check).toMatchObject({ port: 28090 })
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("accepts an executable script given as a path", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* makeStack({
        "services/api/service.json": json({ process: { command: "${dir}/run.sh" } }),
        "services/api/run.sh": "#!/bin/sh\nexit 0\n"
      })
      const refused = yield* Effect.flip(loadStack(dir, { env: baseEnv }))
      expect(refused.message).toContain("is not executable")
      yield* fs.chmod(`${dir}/services/api/run.sh`, 0o755)
      const stack = yield* loadStack(dir, { env: baseEnv })
      expect(stack.services[0]!.command).toBe(`${dir}/services/api/run.sh`)
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("finds nothing wrong with free ports", () =>
    Effect.gen(function* () {
      const { stack } = yield* loadGood()
      yield* checkPortsFree(
        stack,
        stack.services.map((s) => s.name)
      )
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("checks only the ports of the named services", () =>
    Effect.gen(function* () {
      const server = yield* occupyPort
      const { stack } = yield* loadGood({ CORE_PORT_CADDY_HTTP: String(server.port) })
      yield* checkPortsFree(stack, ["nats", "pocketbase"])
      const error = yield* Effect.flip(checkPortsFree(stack, ["caddy"]))
      expect(error.problems).toEqual([
        {
          step: "ports-free",
          file: "services/caddy/service.json",
          path: "ports.http",
          message: `port ${server.port} of service "caddy" is already in use on 127.0.0.1`
        }
      ])
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("reports every taken port in the order of services and ports, and releases what it bound", () =>
    Effect.gen(function* () {
      const taken = [yield* occupyPort, yield* occupyPort, yield* occupyPort].map((s) => s.port)
      // free ports: bound on 0, then released (the kernel hands them out again only much later)
      const free = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        Effect.acquireUseRelease(
          occupyPort,
          (server) => Effect.succeed(server.port),
          (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
        )
      )
      // the local port of a connection to a listener: nothing listens on it, yet a server cannot bind it
      const client = yield* Effect.acquireRelease(
        Effect.async<net.Socket>((resume) => {
          const socket = net.connect({ host: "127.0.0.1", port: taken[0]! }, () => resume(Effect.succeed(socket)))
        }),
        (socket) => Effect.sync(() => socket.destroy())
      )
      const connected = client.localPort!
      const spec = (name: string, ports: Record<string, number>) =>
        ({ name, manifestPath: `/stack/services/${name}/service.json`, ports }) as unknown as StackSpec["services"][0]
      const services = [
        ...free.slice(0, 16).map((port, i) => spec(`a${String(i).padStart(2, "0")}`, { http: port })),
        spec("b-one", { admin: free[16]!, http: taken[1]! }),
        spec("c-two", { http: taken[0]!, client: connected }),
        spec("d-three", { http: free[17]!, metrics: taken[2]! })
      ]
      const stack = { dir: "/stack", services } as unknown as StackSpec
      const error = yield* Effect.flip(
        checkPortsFree(
          stack,
          services.map((s) => s.name)
        )
      )
      const inUse = (service: string, port: number) =>
        `port ${port} of service "${service}" is already in use on 127.0.0.1`
      expect(error.problems.map((p) => `${p.file} ${p.path}: ${p.message}`)).toEqual([
        `services/b-one/service.json ports.http: ${inUse("b-one", taken[1]!)}`,
        `services/c-two/service.json ports.http: ${inUse("c-two", taken[0]!)}`,
        `services/c-two/service.json ports.client: ${inUse("c-two", connected)}`,
        `services/d-three/service.json ports.metrics: ${inUse("d-three", taken[2]!)}`
      ])
      // every port it bound is free again
      const released = services.filter((s) => s.name.startsWith("a"))
      yield* checkPortsFree(
        { dir: "/stack", services: released } as unknown as StackSpec,
        released.map((s) => s.name)
      )
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("names 0.0.0.0 when only a bind of every address is refused", () =>
    Effect.gen(function* () {
      // a listener on another loopback address leaves 127.0.0.1 free and refuses 0.0.0.0
      const other = yield* Effect.acquireRelease(
        Effect.async<net.Server & { port: number }>((resume) => {
          const server = net.createServer()
          server.listen({ port: 0, host: "127.0.0.2" }, () =>
            resume(Effect.succeed(Object.assign(server, { port: (server.address() as net.AddressInfo).port })))
          )
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const spec = { name: "api", manifestPath: "/stack/services/api/service.json", ports: { http: other.port } }
      const error = yield* Effect.flip(
        checkPortsFree({ dir: "/stack", services: [spec] } as unknown as StackSpec, ["api"])
      )
      expect(error.problems.map((p) => p.message)).toEqual([
        `port ${other.port} of service "api" is already in use on 0.0.0.0`
      ])
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.scoped("reports a missing stack directory", () =>
    Effect.gen(function* () {
      const dir = yield* makeStack({})
      const error = yield* Effect.flip(loadStack(`${dir}/nope`, { env: baseEnv }))
      expect(error.message).toContain("does not exist")
    }).pipe(Effect.provide(NodeContext.layer))
  )
})

describe("loadEnvironment", () => {
  it.scoped("adds .env under the given environment", () =>
    Effect.gen(function* () {
      const dir = yield* makeStack({ ".env": "A=file\nB=file\n" })
      expect(yield* loadEnvironment(dir, { A: "env" })).toEqual({ A: "env", B: "file" })
      const empty = yield* makeStack({})
      expect(yield* loadEnvironment(empty, { A: "env" })).toEqual({ A: "env" })
      const bad = yield* makeStack({ ".env": "oops\n" })
      const error = yield* Effect.flip(loadEnvironment(bad, {}))
      expect(error.message).toBe('.env: line 1: expected KEY=VALUE, got "oops"')
    }).pipe(Effect.provide(NodeContext.layer))
  )
})

describe("ManifestError", () => {
  it("prints every problem on its own line, with a heading in format()", () => {
    const error = new ManifestError({
      problems: [
        {
          step: "dependencies",
          file: "services/api/service.json",
          path: "process.compose.depends_on.db",
          message: "x"
        },
        { step: "discover", file: "services/", path: "", message: "y" }
      ]
    })
    expect(error.message).toBe("services/api/service.json: process.compose.depends_on.db: x\nservices/: y")
    expect(error.format("/srv/stack")).toBe(
      "stack /srv/stack: 2 problems\n  services/api/service.json: process.compose.depends_on.db: x\n  services/: y"
    )
  })
})

describe("signalName", () => {
  it("maps numbers and names to Node signal names", () => {
    expect(signalName(15)).toBe("SIGTERM")
    expect(signalName("TERM")).toBe("SIGTERM")
    expect(signalName("sigint")).toBe("SIGINT")
    expect(signalName("9")).toBe("SIGKILL")
    expect(signalName("SIGFOO")).toBeUndefined()
    expect(signalName(64)).toBeUndefined()
  })
})

describe("resolveService", () => {
  const ctx: StackContext = {
    dir: "/srv/stack",
    dataDir: "/srv/stack/.data",
    depDir: "/srv/stack/.dep",
    env: { PAGE: "index.html" },
    servicePorts: { web: { http: 8080 }, db: { sql: 5432 } },
    binaries: new Set(["server"]),
    unavailable: new Set()
  }
  const source = (process: unknown) => ({
    name: "web",
    dir: "/srv/stack/services/web",
    manifestPath: "/srv/stack/services/web/service.json",
    file: "services/web/service.json",
    manifest: Schema.decodeUnknownSync(ServiceManifest)({ process, ports: { http: 8080 } })
  })

  it("resolves a service from its manifest and the stack context alone", () => {
    const spec = resolveService(
      source({
        command: "${dep.server}",
        args: ["--port", "${port.http}", "--db", "127.0.0.1:${svc.db.port.sql}"],
        compose: { readiness_probe: { http_get: { port: "${port.http}", path: "/${env.PAGE}" } } }
      }),
      { http: 8080 },
      ctx
    )
    expect(Either.isRight(spec)).toBe(true)
    const right = Either.getOrThrow(spec)
    expect(right.command).toBe("/srv/stack/.dep/server")
    expect(right.args).toEqual(["--port", "8080", "--db", "127.0.0.1:5432"])
    expect(right.workingDir).toBe("/srv/stack")
    expect(right.readiness?.check).toMatchObject({ _tag: "http_get", port: 8080, path: "/index.html" })
  })

  it("returns every problem of the failing step, located", () => {
    const problems = Either.getLeft(
      resolveService(source({ command: "${dep.nope}", args: ["${env.UNSET}"] }), { http: 8080 }, ctx)
    )
    expect(Option.getOrThrow(problems).map((p) => `${p.step} ${p.path}`)).toEqual([
      "placeholders process.command",
      "placeholders process.args[0]"
    ])
  })
})

describe("dirOption", () => {
  const dirOf = (args: ReadonlyArray<string>, env: Record<string, string>) =>
    Options.processCommandLine(dirOption, args, CliConfig.defaultConfig).pipe(
      Effect.map(([, , dir]) => dir),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    )

  it.effect("prefers --dir, then CORE_DIR, then the current directory", () =>
    Effect.gen(function* () {
      expect(yield* dirOf(["--dir", "/a/b"], { CORE_DIR: "/c" })).toBe("/a/b")
      expect(yield* dirOf(["--dir=rel"], {})).toBe(`${process.cwd()}/rel`)
      expect(yield* dirOf([], { CORE_DIR: "/c" })).toBe("/c")
      expect(yield* dirOf([], { CORE_DIR: "" })).toBe(process.cwd())
      expect(yield* dirOf([], {})).toBe(process.cwd())
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it.effect("names the services of the directory `--dir` gives, wherever it stands in argv", () =>
    Effect.gen(function* () {
      const fixture = `${import.meta.dirname}/fixtures/stack`
      const names = (args: ReadonlyArray<string>) =>
        Effect.map(serviceCommands(args), (commands) =>
          commands.flatMap((command) => [...CommandDescriptor.getNames(command.descriptor)])
        )
      expect(yield* names(["--help", "--dir", fixture])).toEqual(["api", "db", "web"])
      expect(yield* names(["api", "run", `--dir=${fixture}`])).toEqual(["api", "db", "web"])
      expect(yield* names(["--help", "--dir", `${fixture}/services`])).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer))
  )
})
