// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifest placeholders are the subject of these tests
/**
 * What makes a stack portable: `${svc.NAME.host}`, `${bind}`, a movable data directory (created 0700), the
 * manifest's `deploy` key, portable loading for the generators, and the default manifests using them.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { envReferences, usesDataDir } from "../src/manifest/EnvReferences.js"
import {
  bindAddress,
  hostVariable,
  type PlaceholderContext,
  placeholdersIn,
  resolvePlaceholders,
  serviceHost
} from "../src/manifest/Placeholders.js"
import type { ServiceManifest } from "../src/manifest/ServiceManifest.js"
import { loadStack } from "../src/manifest/StackLoader.js"
import { ensureDataDir } from "../src/app/StackUp.js"
import { repoRoot } from "./support/DefaultStackCopy.js"
import { tempDir } from "./support/Specs.js"

const ctx: PlaceholderContext = {
  dataDir: "/stack/.data",
  depDir: "/stack/.dep",
  serviceDir: "/stack/services/api",
  env: { CORE_HOST_NATS_SERVER: "nats.internal" },
  ports: { http: 8080 },
  servicePorts: { api: { http: 8080 }, "nats-server": { client: 4222 }, db: { sql: 5432 } },
  binaries: new Set(),
  unavailable: new Set(["broken"])
}
const resolve = (text: string, over: Partial<PlaceholderContext> = {}) => resolvePlaceholders(text, { ...ctx, ...over })

describe("placeholders for portability", () => {
  it("${svc.NAME.host}: CORE_HOST_<NAME> when set, else 127.0.0.1; NAME must be a service", () => {
    expect(hostVariable("nats-server")).toBe("CORE_HOST_NATS_SERVER")
    expect(resolve("nats://${svc.nats-server.host}:4222")).toEqual(Either.right("nats://nats.internal:4222"))
    expect(resolve("${svc.db.host}")).toEqual(Either.right("127.0.0.1"))
    expect(resolve("${svc.db.host}", { env: { CORE_HOST_DB: " " } })).toEqual(Either.right("127.0.0.1"))
    expect(resolve("${svc.broken.host}")).toEqual(Either.right("127.0.0.1"))
    expect(resolve("${svc.nope.host}")).toEqual(
      Either.left(['${svc.nope.host}: unknown service "nope" (known: api, db, nats-server)'])
    )
    expect(resolve("${svc.db}")).toEqual(
      Either.left(["${svc.db}: expected ${svc.SERVICE.port.NAME} or ${svc.SERVICE.host}"])
    )
  })

  it("${bind}: the public entry follows CORE_PUBLIC_BIND, then CORE_BIND; the others CORE_BIND; else loopback", () => {
    const env = { CORE_PUBLIC_BIND: "0.0.0.0", CORE_BIND: "10.0.0.7" }
    expect(bindAddress(env, true)).toBe("0.0.0.0")
    expect(bindAddress(env, false)).toBe("10.0.0.7")
    expect(bindAddress({ CORE_BIND: "10.0.0.7" }, true)).toBe("10.0.0.7")
    expect(bindAddress({ CORE_PUBLIC_BIND: "0.0.0.0" }, false)).toBe("127.0.0.1")
    expect(bindAddress({}, true)).toBe("127.0.0.1")
    expect(resolve("${bind}:${port.http}", { bind: "0.0.0.0" })).toEqual(Either.right("0.0.0.0:8080"))
    expect(resolve("${bind}")).toEqual(Either.right("127.0.0.1"))
    expect(serviceHost({}, "x")).toBe("127.0.0.1")
  })

  it("keeps an unset ${env.X} as written only when asked (portable loading)", () => {
    expect(Either.isLeft(resolve("${env.TOKEN}"))).toBe(true)
    expect(resolve("Bearer ${env.TOKEN}", { keepUnsetEnv: true })).toEqual(Either.right("Bearer ${env.TOKEN}"))
    expect(resolve("${env.LEVEL:-info}", { keepUnsetEnv: true })).toEqual(Either.right("info"))
  })

  it("finds placeholders, env references and ${data} in a manifest, $${...} excepted", () => {
    expect(placeholdersIn("a ${bind}:${port.http} $${env.NOT} ${env.X:-a:b}")).toEqual([
      "bind",
      "port.http",
      "env.X:-a:b"
    ])
    const manifest: ServiceManifest = {
      process: {
        command: "x",
        args: ["--pw", "${env.PW}", "$${env.LITERAL}"],
        env: { LEVEL: "${env.LEVEL:-info}", "odd.key": "${env.ODD}" }
      }
    }
    expect(envReferences(manifest)).toEqual([
      { name: "PW", fallback: undefined, field: "process.args[1]" },
      { name: "LEVEL", fallback: "info", field: "process.env.LEVEL" },
      { name: "ODD", fallback: undefined, field: 'process.env["odd.key"]' }
    ])
    expect(usesDataDir(manifest)).toBe(false)
    expect(usesDataDir({ process: { command: "x", args: ["${data}/x"] } })).toBe(true)
    expect(usesDataDir({ process: { command: "x", args: ["$${data}/x"] } })).toBe(false)
  })
})

/** A stack with a public `web` (on ${bind}) and a private `db` it reaches by ${svc.db.host}. */
const makeStack = (extra: Record<string, string> = {}) => {
  const dir = tempDir("core-portable-")
  const files: Record<string, string> = {
    "services/web/service.json": JSON.stringify({
      process: {
        command: "sh",
        args: ["-c", "serve", "${bind}:${port.http}", "${svc.db.host}:${svc.db.port.sql}", "${data}/web"],
        env: { TOKEN: "${env.TOKEN}" }
      },
      ports: { http: 18481 },
      deploy: { public: "http", memory_mb: 512, cpus: 0.5, read_only_root: true }
    }),
    "services/db/service.json": JSON.stringify({
      process: { command: "sh", args: ["${bind}:${port.sql}"] },
      ports: { sql: 18482 }
    }),
    ".env": "TOKEN=from-dotenv\n",
    ...extra
  }
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(dir, file, ".."), { recursive: true })
    writeFileSync(join(dir, file), text)
  }
  return dir
}

const load = (dir: string, env: Record<string, string>, options: { dataDir?: string; portable?: boolean } = {}) =>
  loadStack(dir, { env: { PATH: process.env.PATH, ...env }, ...options }).pipe(Effect.provide(NodeContext.layer))

describe("loading a portable stack", () => {
  it.effect("resolves ${bind}, ${svc.NAME.host} and ${data} from the environment; deploy hints kept", () =>
    Effect.gen(function* () {
      const dir = makeStack()
      const local = yield* load(dir, {})
      const web = local.services.find((s) => s.name === "web")!
      expect(local.dataDir).toBe(join(dir, ".data"))
      expect(web.args.slice(2)).toEqual(["127.0.0.1:18481", "127.0.0.1:18482", `${dir}/.data/web`])
      expect(web.env).toEqual({ TOKEN: "from-dotenv" })
      expect(web.deploy).toEqual({ public: "http", memory_mb: 512, cpus: 0.5, read_only_root: true })
      expect(web.manifest.process.args?.[2]).toBe("${bind}:${port.http}")

      const deployed = yield* load(dir, {
        CORE_PUBLIC_BIND: "0.0.0.0",
        CORE_BIND: "10.1.2.3",
        CORE_HOST_DB: "db.ns.svc",
        CORE_DATA_DIR: "/mnt/volume"
      })
      const [db, web2] = deployed.services
      expect(deployed.dataDir).toBe("/mnt/volume")
      expect(web2!.args.slice(2)).toEqual(["0.0.0.0:18481", "db.ns.svc:18482", "/mnt/volume/web"])
      expect(db!.args).toEqual(["10.1.2.3:18482"])
    })
  )

  it.effect("--data wins over CORE_DATA_DIR; a relative one is taken from the current directory", () =>
    Effect.gen(function* () {
      const dir = makeStack()
      const stack = yield* load(dir, { CORE_DATA_DIR: "/from/env" }, { dataDir: "rel/data" })
      expect(stack.dataDir).toBe(join(process.cwd(), "rel/data"))
    })
  )

  it.effect("portable loading reads no .env and keeps secrets unresolved", () =>
    Effect.gen(function* () {
      const dir = makeStack()
      const stack = yield* load(dir, {}, { portable: true })
      expect(stack.services.find((s) => s.name === "web")!.env).toEqual({ TOKEN: "${env.TOKEN}" })
      // without portable, the same stack without .env and without TOKEN is refused
      const bare = makeStack({ ".env": "" })
      const error = yield* Effect.flip(load(bare, {}))
      expect(error.message).toContain(
        "services/web/service.json: process.env.TOKEN: ${env.TOKEN}: environment variable TOKEN is not set"
      )
    })
  )

  it.effect("deploy: a public port the service lacks, or an unknown key, is a located error", () =>
    Effect.gen(function* () {
      const badPort = makeStack({
        "services/db/service.json": JSON.stringify({
          process: { command: "sh" },
          ports: { sql: 1 },
          deploy: { public: "http" }
        })
      })
      const error = yield* Effect.flip(load(badPort, {}))
      expect(error.message).toContain(
        'services/db/service.json: deploy.public: this service has no port "http" (ports: sql)'
      )
      const badKey = makeStack({
        "services/db/service.json": JSON.stringify({ process: { command: "sh" }, deploy: { memory: 1 } })
      })
      const keyError = yield* Effect.flip(load(badKey, {}))
      expect(keyError.message).toMatch(/services\/db\/service.json: deploy.memory: /)
    })
  )
})

describe("the data directory", () => {
  it.effect("is created with mode 0700 when missing, parents included; an existing one is left as it is", () =>
    Effect.gen(function* () {
      const root = tempDir("core-data-")
      const data = join(root, "a/b/data")
      const oldUmask = process.umask(0o022)
      try {
        yield* ensureDataDir(data)
      } finally {
        process.umask(oldUmask)
      }
      expect(statSync(data).mode & 0o777).toBe(0o700)
      mkdirSync(join(root, "open"), { mode: 0o755 })
      yield* ensureDataDir(join(root, "open"))
      expect(statSync(join(root, "open")).mode & 0o777).toBe(0o755)
      writeFileSync(join(root, "file"), "")
      const error = yield* Effect.flip(ensureDataDir(join(root, "file")))
      expect(error.message).toBe(
        `cannot create the data directory ${join(root, "file")}: it exists and is not a directory`
      )
    }).pipe(Effect.provide(NodeContext.layer))
  )
})

describe("the default manifests", () => {
  it("use ${bind}, ${svc.NAME.host} and ${data}; 127.0.0.1 is left only for Caddy's admin API", () => {
    const literal: Array<string> = []
    for (const service of readdirSync(join(repoRoot, "services"))) {
      for (const file of readdirSync(join(repoRoot, "services", service))) {
        if (!/\.(json|Caddyfile)$|^Caddyfile$/.test(file)) continue
        readFileSync(join(repoRoot, "services", service, file), "utf8")
          .split("\n")
          .forEach((line, index) => {
            if (line.includes("127.0.0.1")) literal.push(`services/${service}/${file}:${index + 1}: ${line.trim()}`)
          })
      }
    }
    expect(literal).toEqual(['services/caddy/service.json:30: "CADDY_ADMIN": "127.0.0.1:${port.admin}",'])
    const manifest = (name: string) => readFileSync(join(repoRoot, "services", name, "service.json"), "utf8")
    expect(manifest("pocketbase")).toContain('"NATS_URL": "nats://${svc.nats.host}:${svc.nats.port.client}"')
    expect(manifest("caddy")).toContain('"PB_ADDR": "${svc.pocketbase.host}:${svc.pocketbase.port.http}"')
    expect(manifest("caddy")).toContain('"deploy": { "public": "http" }')
  })
})
