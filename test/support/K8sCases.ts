/**
 * The stacks that the Kubernetes tests generate: the default stack (this repository's `services/`) and the
 * fixture stack of test/fixtures/k8s/stack (every probe kind, every dependency condition that maps), in
 * both modes, each into its own namespace so that one API server can hold them all.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Either } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { generateK8s, type K8sResult } from "../../src/deploy/K8sManifests.js"
import type { K8sOptions } from "../../src/deploy/K8sOptions.js"
import type { StackSpec } from "../../src/manifest/ServiceSpec.js"
import { loadStack } from "../../src/manifest/StackLoader.js"
import { repoRoot } from "./DefaultStackCopy.js"

export const k8sFixtures = join(repoRoot, "test", "fixtures", "k8s")
export const fixtureStack = join(k8sFixtures, "stack")

export interface K8sCase {
  readonly name: string
  readonly dir: string
  readonly options: K8sOptions
}

export const k8sCases: ReadonlyArray<K8sCase> = [
  {
    name: "default",
    dir: repoRoot,
    options: { namespace: "core", image: "core:latest", mode: "split", host: "core.example.com" }
  },
  {
    name: "default-pod",
    dir: repoRoot,
    options: { namespace: "core-pod", image: "core:latest", mode: "pod", host: "core.example.com" }
  },
  {
    name: "fixture-split",
    dir: fixtureStack,
    options: { namespace: "fixture-split", image: "core-fixture:1.0", mode: "split", host: "api.example.com" }
  },
  {
    name: "fixture-pod",
    dir: fixtureStack,
    options: { namespace: "fixture-pod", image: "core-fixture:1.0", mode: "pod", host: "api.example.com" }
  }
]

/** A fixed environment: generation must not depend on the caller's. */
export const plainEnv = { PATH: "/usr/bin:/bin" }

/** The stack in `dir` as `core deploy` loads it (portably). */
export const deployStack = (
  dir: string,
  env: Readonly<Record<string, string | undefined>> = plainEnv
): Promise<StackSpec> =>
  Effect.runPromise(loadStack(dir, { env, portable: true }).pipe(Effect.provide(NodeContext.layer)))

/** The files of one case; throws with the problems when it does not generate. */
export const generateCase = async (
  c: K8sCase,
  env: Readonly<Record<string, string | undefined>> = plainEnv
): Promise<K8sResult> => {
  const result = generateK8s(await deployStack(c.dir, env), c.options)
  if (Either.isLeft(result)) throw new Error(result.left.map((p) => `${p.file}: ${p.path}: ${p.message}`).join("\n"))
  return result.right
}

/**
 * Runs `core deploy k8s` (the built CLI) for `c` into `out`, adds a `secret.env` with made-up values when
 * the stack has secrets, and returns what `kubectl kustomize` makes of it (every object, one YAML stream).
 */
export const renderCase = (c: K8sCase, out: string): string => {
  execFileSync(
    process.execPath,
    [
      join(repoRoot, "dist", "core.cjs"),
      "deploy",
      "k8s",
      "--dir",
      c.dir,
      "--out",
      out,
      "--namespace",
      c.options.namespace,
      "--image",
      c.options.image,
      "--mode",
      c.options.mode,
      "--host",
      c.options.host
    ],
    { encoding: "utf8", env: { ...process.env, ...plainEnv } }
  )
  const example = join(out, "secret.env.example")
  if (existsSync(example)) {
    const names = readFileSync(example, "utf8")
      .split("\n")
      .filter((line) => /^[A-Za-z_][A-Za-z0-9_]*=$/.test(line))
    writeFileSync(
      join(out, "secret.env"),
      names.map((line) => `${line}made-up-${line.slice(0, -1).toLowerCase()}`).join("\n")
    )
  }
  return execFileSync("kubectl", ["kustomize", out], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })
}
