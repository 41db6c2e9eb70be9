/**
 * Typed layers for the default stack's services. Each starts its service on the shared default `Stack` (the
 * stack directory of this package, or `CORE_DIR`), after the dependencies its manifest names:
 * `layer(PocketBase.layer)` starts NATS first.
 */
import { Config, Context, Effect, Layer } from "effect"
import { existsSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type ServiceHandle, Stack, serviceLayer } from "./Stack.js"

/** The package root, found upwards from this file; the current directory when there is none. */
const packageRoot = (): string => {
  let dir = typeof __dirname === "string" ? __dirname : dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, "services", "nats", "service.json"))) {
    const parent = dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
  return dir
}

/** The directory holding the default stack: config `CORE_DIR` (as the CLI's `--dir` falls back to), else the package root. */
export const defaultStackDir = Config.string("CORE_DIR").pipe(
  Config.withDefault(""),
  Config.map((dir) => (dir === "" ? packageRoot() : resolve(dir)))
)

/** The default stack, nothing started until a service layer asks; shared by the typed layers (built once). */
export const DefaultStack = Layer.unwrapEffect(Effect.map(defaultStackDir, (dir) => Stack.layer({ dir, services: [] })))

export interface NatsHandle extends ServiceHandle {
  /** `nats://127.0.0.1:<client port>` */
  readonly natsUrl: string
  /** The monitoring endpoint, `http://127.0.0.1:<monitor port>`. */
  readonly monitorUrl: string
}

export interface PocketBaseHandle extends ServiceHandle {
  /** PocketBase's own HTTP address, `http://127.0.0.1:<http port>`. */
  readonly httpUrl: string
}

export interface CaddyHandle extends ServiceHandle {
  /** The front door: `http://127.0.0.1:<http port>` (proxies `/api/` and `/_/` to PocketBase). */
  readonly httpUrl: string
}

/** A typed service layer on the shared default stack. */
const handleLayer = <I, H extends ServiceHandle>(
  tag: Context.Tag<I, H>,
  name: string,
  extend: (handle: ServiceHandle) => H
) => serviceLayer(tag, name, extend).pipe(Layer.provide(DefaultStack))

export class Nats extends Context.Tag("core/Nats")<Nats, NatsHandle>() {
  static readonly layer = handleLayer(Nats, "nats", (h) => ({
    ...h,
    natsUrl: `nats://127.0.0.1:${h.ports.client}`,
    monitorUrl: h.url("monitor")
  }))
}

export class PocketBase extends Context.Tag("core/PocketBase")<PocketBase, PocketBaseHandle>() {
  static readonly layer = handleLayer(PocketBase, "pocketbase", (h) => ({ ...h, httpUrl: h.url("http") }))
}

export class Caddy extends Context.Tag("core/Caddy")<Caddy, CaddyHandle>() {
  static readonly layer = handleLayer(Caddy, "caddy", (h) => ({ ...h, httpUrl: h.url("http") }))
}

export { Stack }
