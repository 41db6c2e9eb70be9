/**
 * Builds the background supervisor's V8 startup snapshot (`npm run build`): bundles `SupervisorSnapshot.ts`
 * into `dist/core-supervisor.cjs`, runs it under `node --build-snapshot` with the supervisor's Node flags, and
 * writes `dist/core-supervisor.blob` with its key beside it (`.key`: Node version, architecture, flags and the
 * digest and size of `dist/core-main.cjs`, built before it; checked by `SupervisorSpawn` before it uses the blob; Node
 * itself refuses a blob of another V8 or flags).
 *
 * Node 20 cannot snapshot every built-in module: `http`, `https` and `tls` hold native state that does not
 * serialize (and a few others are "not verified"). The bundle therefore gets those modules (and three the
 * supervisor loads late or never) as proxies that load the real module on first use, after deserialization;
 * `net` and `child_process` are loaded at the build, whose warm-up starts and stops a stack (SnapshotWarmUp:
 * Node warns that `child_process` is not verified in a snapshot, and every process and socket of that run is
 * closed before the snapshot is taken). Their export names are listed at build time so
 * that `import * as` works without loading them. `ws` (the WebSocket server behind `@effect/platform-node`'s
 * HTTP upgrade, which the supervisor never serves) reads `http` at load and is replaced by a stub that throws.
 * So are four packages that nothing in `core` calls but that their importers load anyway: `yaml` and `toml`
 * (`@effect/cli`'s file options, which no command uses), `fast-check` (`effect/Schema`'s arbitraries) and
 * `mime` (`@effect/platform-node`'s file responses; the control API and the dashboard answer with text, JSON,
 * HTML and streams). Left in, their module state was 0.6 MB of the blob, and the supervisor's peak RSS ~1.5 MB
 * higher with one service and 3-4 MB with 200 (4 runs each: 100.0-100.2 MB without the first three, 96.5-99.3
 * without mime, 95.9-96.4 with all four left out).
 *
 * A failure leaves no blob: the supervisor then starts the usual way (launcher and CLI bundle).
 */
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import * as esbuild from "esbuild"
import { SUPERVISOR_NODE_FLAGS, snapshotKey } from "./app/SupervisorSpawn.js"

const dist = path.resolve(process.argv[2] ?? "dist")
const bundle = path.join(dist, "core-supervisor.cjs")
const blob = path.join(dist, "core-supervisor.blob")
const keyFile = `${blob}.key`

/** Built-in modules loaded on first use instead of at build time. */
const LAZY = ["http", "https", "tls", "readline", "perf_hooks", "zlib"]

const builtin = createRequire(import.meta.url)

const lazyModule = (name: string): string => {
  const keys = Object.getOwnPropertyNames(builtin(`node:${name}`))
  return `"use strict";
const load = require;
let mod;
const get = () => (mod ??= load("node:${name}"));
const keys = ${JSON.stringify(keys)};
module.exports = new Proxy({}, {
  get: (_t, k) => get()[k],
  has: (_t, k) => k in get(),
  ownKeys: () => keys,
  getOwnPropertyDescriptor: (_t, k) => keys.includes(k) ? { configurable: true, enumerable: true, get: () => get()[k] } : undefined
});`
}

const wsStub = `"use strict";
class Unsupported { constructor() { throw new Error("WebSockets are not served by the core supervisor") } }
module.exports = { WebSocketServer: Unsupported, WebSocket: Unsupported, Server: Unsupported };`

/**
 * A package the supervisor never calls: its export names are there (listed at build time, so that esbuild's
 * `import * as` copies them), and calling or reading any of them throws, saying why.
 */
const unusedStub = (name: string): string => {
  const keys = Object.keys(builtin(name)).filter((k) => k !== "__esModule")
  return `"use strict";
const fail = () => { throw new Error("${name} is not part of the core supervisor's startup snapshot") };
const keys = ${JSON.stringify(keys)};
module.exports = new Proxy({}, {
  get: (_t, k) => (k === "__esModule" ? false : fail),
  ownKeys: () => keys,
  getOwnPropertyDescriptor: (_t, k) => keys.includes(k) ? { configurable: true, enumerable: true, value: fail } : undefined
});`
}

/** Packages left out of the snapshot (see the header). */
const UNUSED = ["yaml", "toml", "fast-check", "mime"]

const snapshotSafe: esbuild.Plugin = {
  name: "snapshot-safe",
  setup(build) {
    const lazy = new RegExp(`^(node:)?(${LAZY.join("|")})$`)
    build.onResolve({ filter: lazy }, (args) => ({ path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" }))
    build.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) => ({
      contents: lazyModule(args.path),
      loader: "js"
    }))
    build.onResolve({ filter: new RegExp(`^(${UNUSED.join("|")})$`) }, (args) => ({
      path: args.path,
      namespace: "unused-stub"
    }))
    build.onLoad({ filter: /.*/, namespace: "unused-stub" }, (args) => ({
      contents: unusedStub(args.path),
      loader: "js"
    }))
    build.onResolve({ filter: /^ws$/ }, () => ({ path: "ws", namespace: "ws-stub" }))
    build.onLoad({ filter: /.*/, namespace: "ws-stub" }, () => ({ contents: wsStub, loader: "js" }))
  }
}

const removeBlob = (): void => {
  fs.rmSync(blob, { force: true })
  fs.rmSync(keyFile, { force: true })
}

const main = async (): Promise<void> => {
  removeBlob()
  await esbuild.build({
    entryPoints: [path.resolve(import.meta.dirname, "SupervisorSnapshot.ts")],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minify: true,
    logLevel: "warning",
    outfile: bundle,
    plugins: [snapshotSafe]
  })
  const tmp = `${blob}.${process.pid}.tmp`
  const built = spawnSync(
    process.execPath,
    [...SUPERVISOR_NODE_FLAGS, "--snapshot-blob", tmp, "--build-snapshot", bundle],
    // no NODE_OPTIONS: its V8 flags would be built into the blob, and V8 refuses a blob started with other
    // flags (the supervisor is never started from it with NODE_OPTIONS set). No CORE_* variable either: the
    // warm-up's stack must not take a state or data folder of the builder's (CORE_STATE_DIR, CORE_DATA_DIR).
    // A warm-up that hangs ends the build's snapshot, not the build
    {
      encoding: "utf8",
      timeout: 120_000,
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("CORE_"))),
        NODE_OPTIONS: ""
      }
    }
  )
  if (built.status !== 0 || !fs.existsSync(tmp)) {
    fs.rmSync(tmp, { force: true })
    process.stderr.write(
      `core build: no supervisor snapshot (the supervisor will start from its bundle): node --build-snapshot ${built.error ? `failed: ${built.error.message}` : `exited ${built.status ?? built.signal}`}\n${built.stderr}`
    )
    return
  }
  // writable by its owner alone whatever the umask: `supervisorSnapshot` uses no blob or key that others may change
  fs.chmodSync(tmp, 0o644)
  fs.renameSync(tmp, blob)
  const cli = fs.readFileSync(path.join(dist, "core-main.cjs"))
  fs.writeFileSync(keyFile, snapshotKey(createHash("sha256").update(cli).digest("hex"), cli.length), { mode: 0o644 })
  fs.chmodSync(keyFile, 0o644)
}

await main()
