/**
 * The library API: a fixture stack as an Effect layer, composed with @effect/vitest's `layer(...)`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import { cpSync } from "node:fs"
import { join, resolve } from "node:path"
import { Stack, serviceLayer, type ServiceHandle } from "../src/index.js"
import { processesMentioning } from "./support/Processes.js"
import { freshPort, tempDir } from "./support/Specs.js"

/** A copy of the fixture stack (`<tmp>/stack`, its scripts in `<tmp>/bin`) on fresh ports. */
const fixtureCopy = () => {
  const root = tempDir("core-layer-")
  const dir = join(root, "stack")
  cpSync(resolve(import.meta.dirname, "fixtures/stack/services"), join(dir, "services"), { recursive: true })
  cpSync(resolve(import.meta.dirname, "fixtures/bin"), join(root, "bin"), { recursive: true })
  process.env.CORE_PORT_DB_HTTP = String(freshPort())
  process.env.CORE_PORT_API_HTTP = String(freshPort())
  process.env.CORE_PORT_WEB_HTTP = String(freshPort())
  return dir
}

const get = (url: string) => Effect.promise(() => fetch(url).then((r) => r.status))

const dir = fixtureCopy()

layer(Stack.layer({ dir, services: ["api"] }).pipe(Layer.provide(NodeContext.layer)), { timeout: 60_000 })(
  "Stack.layer with a subset",
  (it) => {
    it.effect("starts the named service and its dependencies, not the others", () =>
      Effect.gen(function* () {
        const api = yield* Stack.service("api")
        const db = yield* Stack.service("db")
        const web = yield* Stack.service("web")
        expect((yield* api.status).state).toBe("ready")
        expect((yield* db.status).state).toBe("ready")
        expect((yield* web.status).state).toBe("pending")
        // api is ready once it accepts connections (a tcp probe); it answers 503 for its first 100 ms
        expect([200, 503]).toContain(yield* get(api.url("http")))
        expect(yield* get(db.url())).toBe(200)
        // a name every object inherits is no port of it
        expect(() => api.url("toString")).toThrow("service api has no port toString")
        expect(api.ports.http).toBe(Number(process.env.CORE_PORT_API_HTTP))
        expect(typeof (yield* api.pid)).toBe("number")
      })
    )

    it.effect("gives each service's logs and restarts it", () =>
      Effect.gen(function* () {
        const db = yield* Stack.service("db")
        const before = yield* db.pid
        const lines = yield* db.logs(10)
        expect(lines.some((l) => l.text.startsWith("listening on"))).toBe(true)
        yield* db.restart
        expect(yield* db.pid).not.toBe(before)
        expect((yield* db.status).restarts).toBe(1)
        const again = yield* db.follow(50).pipe(
          Stream.filter((l) => l.text.startsWith("listening on")),
          Stream.take(2),
          Stream.runCollect
        )
        expect(again.length).toBe(2)
      })
    )
  }
)

class Web extends Context.Tag("test/Web")<Web, ServiceHandle>() {}

describe("serviceLayer", () => {
  it.live("starts a service with its dependencies as the manifests say, and stops everything on release", () =>
    Effect.gen(function* () {
      const stackDir = fixtureCopy()
      const WebLive = serviceLayer(Web, "web").pipe(
        Layer.provide(Stack.layer({ dir: stackDir, services: [] })),
        Layer.provide(NodeContext.layer)
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(WebLive, scope)
      const web = Context.get(context, Web)
      expect((yield* web.status).state).toBe("ready")
      expect(processesMentioning(stackDir)).toHaveLength(3)
      yield* Scope.close(scope, Exit.void)
      expect(processesMentioning(stackDir)).toEqual([])
    })
  )
})

describe("after the layer", () => {
  it("leaves no process of the shared-layer suite", () => {
    // runs after the layer(...) suite above has released its stack
    expect(processesMentioning(dir)).toEqual([])
  })
})
