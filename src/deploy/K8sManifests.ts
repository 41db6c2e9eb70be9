/**
 * A stack as a kustomize base for Kubernetes (`core deploy k8s`): pure, the stack in, files out, the same
 * bytes for the same input.
 *
 * Every container runs the one image of the deployment (`ImageLayout`) with `core <service> run --no-deps`
 * (`K8sContainer`), so that placeholders resolve inside the pod: `${svc.NAME.host}` from `CORE_HOST_<NAME>`
 * (the other service's Service name), `${bind}` from `CORE_BIND` (all interfaces), `${data}` from
 * `CORE_DATA_DIR`, where the data volume is mounted.
 *
 * Two modes:
 * - `split` (default, `K8sSplitMode`): per service a Deployment, or a StatefulSet with a volume claim template
 *   when it uses `${data}`, and a ClusterIP Service with its named ports. A `process_healthy` dependency
 *   becomes an init container that runs `core stack wait DEP` (`K8sDependencies`).
 * - `pod` (`K8sPodMode`): the whole stack in one pod sharing localhost: the services others depend on are
 *   native sidecars (init containers with `restartPolicy: Always`) in dependency order, each gated by its
 *   startup probe; the services nothing depends on are the pod's containers.
 *
 * What does not map is reported: as a note when the deployment still behaves as the stack does (printed and
 * written as a comment), as a located problem when it cannot.
 */
import { Either } from "effect"
import type { Problem } from "../manifest/ManifestError.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { hostVariable } from "../manifest/Placeholders.js"
import type { GeneratedFile } from "./GeneratedFile.js"
import { ImageLayout } from "./ImageLayout.js"
import { configFile, kustomizationFile, namespaceFile, secretFiles } from "./K8sBaseFiles.js"
import type { K8sContext, K8sService } from "./K8sContext.js"
import { ingressObject, invalidServiceName } from "./K8sObjects.js"
import type { K8sOptions } from "./K8sOptions.js"
import { podModeFiles } from "./K8sPodMode.js"
import { splitModeFiles } from "./K8sSplitMode.js"
import { stackEnv } from "./K8sStackEnv.js"
import { yamlFile } from "./K8sYamlFile.js"
import { manifestFile, publicEntry } from "./PublicEntry.js"

export interface K8sResult {
  readonly files: ReadonlyArray<GeneratedFile>
  /** What maps only approximately, one sentence each, prefixed by the service's file. */
  readonly notes: ReadonlyArray<string>
  /** The secrets (names) the Secret must hold. */
  readonly secrets: ReadonlyArray<string>
}

/** The public entry: `[service, port name]`, or undefined when no manifest declares one (not an error here). */
const publicPortOf = (ctx: K8sContext, stack: StackSpec): readonly [string, string] | undefined => {
  if (!stack.services.some((service) => service.deploy.public !== undefined)) return undefined
  const entry = publicEntry(stack, "deploy-k8s")
  if (Either.isLeft(entry)) {
    ctx.problems.push(...entry.left)
    return undefined
  }
  return [entry.right.service.name, entry.right.portName]
}

/**
 * The kustomize base for `stack`, loaded portably (disabled services are left out). Fails with every problem
 * found, each naming its manifest and JSON path.
 */
export const generateK8s = (
  stack: StackSpec,
  options: K8sOptions
): Either.Either<K8sResult, ReadonlyArray<Problem>> => {
  const all: ReadonlyArray<K8sService> = stack.services.map((spec) => ({
    spec,
    manifest: spec.manifest,
    file: manifestFile(stack, spec)
  }))
  const services = all.filter((service) => !service.spec.disabled).sort((a, b) => (a.spec.name < b.spec.name ? -1 : 1))
  const env = stackEnv(stack)
  const podEnv: Record<string, string> = {
    CORE_BIND: "0.0.0.0",
    CORE_DATA_DIR: ImageLayout.dataDir,
    CORE_STATE_DIR: ImageLayout.stateDir
  }
  if (options.mode === "split")
    for (const service of services) podEnv[hostVariable(service.spec.name)] = service.spec.name
  const ctx: K8sContext = {
    options,
    env,
    byName: new Map(services.map((service) => [service.spec.name as string, service])),
    problems: [],
    podEnv
  }
  const notes: Array<string> = [...env.notes]
  for (const service of all) {
    if (service.spec.disabled) notes.push(`${service.file}: disabled, not deployed`)
  }
  for (const service of services) {
    const why = invalidServiceName(service.spec.name)
    if (why !== undefined) ctx.problems.push({ step: "deploy-k8s", file: service.file, path: "", message: why })
  }
  const entry = publicPortOf(ctx, stack)
  const serviceFiles =
    options.mode === "split" ? splitModeFiles(ctx, services, notes) : podModeFiles(ctx, services, entry, notes)
  if (entry === undefined)
    notes.push("no service declares deploy.public: no Ingress, nothing is reachable from outside the cluster")
  const ingress =
    entry === undefined ? [] : [yamlFile("ingress.yaml", [ingressObject(options.host, entry[0], entry[1])])]
  if (ctx.problems.length > 0) return Either.left(ctx.problems)
  const resources = [
    "namespace.yaml",
    "config.yaml",
    ...serviceFiles.map((file) => file.path),
    ...ingress.map((file) => file.path)
  ]
  const files = [
    kustomizationFile(ctx, resources),
    namespaceFile(ctx),
    configFile(ctx),
    ...serviceFiles,
    ...ingress,
    ...secretFiles(ctx)
  ]
  return Either.right({ files, notes, secrets: env.secrets })
}
