/**
 * Builds the supervisor's spawner helper (`src/spawner`, Go, no dependencies) into `dist/core-spawner`
 * (`npm run build`). Without Go on the machine it says so and builds nothing: the supervisor then spawns with
 * Node (`process/Spawner.ts`). Go's build cache makes a rebuild of an unchanged helper ~0.3 s.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const dist = path.resolve(process.argv[2] ?? "dist")
const source = path.resolve(import.meta.dirname, "spawner")
const output = path.join(dist, "core-spawner")

const go = spawnSync("go", ["version"], { stdio: "ignore" })
if (go.error !== undefined || go.status !== 0) {
  console.warn("core: no Go on this machine: dist/core-spawner not built, the supervisor spawns with Node")
  fs.rmSync(output, { force: true })
} else {
  const built = spawnSync("go", ["build", "-trimpath", "-ldflags", "-s -w", "-o", output, "."], {
    cwd: source,
    stdio: "inherit",
    env: { ...process.env, CGO_ENABLED: "0", GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" }
  })
  if (built.status !== 0) process.exit(built.status ?? 1)
}
