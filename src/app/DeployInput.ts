/**
 * A stack loaded for a deployment generator: every service as loaded (checked, defaults applied) and as
 * written (its placeholders unresolved, since they resolve where it is deployed).
 *
 * The secrets (`${env.X}` without a default) need no value here: those not set in the environment or `.env`
 * are loaded as empty, and no generator writes a resolved value anyway.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect, Schema } from "effect"
import { envNeeds } from "../deploy/ManifestScan.js"
import { ServiceManifest } from "../manifest/ServiceManifest.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { loadEnvironment, loadStack } from "../manifest/StackLoader.js"

/** One service of a stack to deploy. */
export interface DeployService {
  readonly spec: StackSpec["services"][number]
  readonly manifest: ServiceManifest
  /** `services/<name>/service.json`. */
  readonly file: string
}

const decodeManifest = Schema.decodeUnknown(ServiceManifest, { onExcessProperty: "error" })

/** The manifests of `dir` as parsed JSON, by service folder; unreadable ones left out (the loader reports them). */
const rawManifests = (dir: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = yield* fs.readDirectory(path.join(dir, "services")).pipe(Effect.orElseSucceed(() => []))
    const found: Array<readonly [string, unknown]> = []
    for (const name of [...names].sort()) {
      const text = yield* fs
        .readFileString(path.join(dir, "services", name, "service.json"))
        .pipe(Effect.orElseSucceed(() => undefined))
      if (text === undefined) continue
      try {
        found.push([name, JSON.parse(text)])
      } catch {
        // the loader reports it, located
      }
    }
    return found
  })

/** Loads the stack in `dir` for a deployment: see the module comment. Fails as `loadStack` does. */
export const loadForDeploy = Effect.fn("DeployInput.loadForDeploy")(function* (
  dir: string,
  env: Readonly<Record<string, string | undefined>> = process.env
) {
  const raw = yield* rawManifests(dir)
  const known = yield* loadEnvironment(dir, env)
  const secrets = new Set(raw.flatMap(([, json]) => envNeeds(json).secrets))
  const withSecrets: Record<string, string | undefined> = { ...env }
  for (const name of secrets) if (known[name] === undefined) withSecrets[name] = ""
  const stack = yield* loadStack(dir, { env: withSecrets })
  const byName = new Map(raw)
  const services: Array<DeployService> = []
  for (const spec of stack.services) {
    const manifest = yield* decodeManifest(byName.get(spec.name)).pipe(Effect.orDie)
    services.push({ spec, manifest, file: `services/${spec.name}/service.json` })
  }
  return { stack, services }
})
