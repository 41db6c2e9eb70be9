/**
 * What the builders of `core deploy k8s` share while they run: the services to deploy, the options, the
 * stack's environment, and the problems found so far (every builder adds to them, so that one run reports all).
 */
import type { Problem } from "../manifest/ManifestError.js"
import type { Deploy, ServiceManifest } from "../manifest/ServiceManifest.js"
import type { ServiceSpec } from "../manifest/ServiceSpec.js"
import type { PlaceholderContext } from "../manifest/Placeholders.js"
import { ImageLayout } from "./ImageLayout.js"
import type { K8sOptions } from "./K8sOptions.js"
import type { StackEnv } from "./K8sStackEnv.js"

/** One service to deploy: as loaded (defaults applied) and as written. */
export interface K8sService {
  readonly spec: ServiceSpec
  readonly manifest: ServiceManifest
  /** Its manifest, relative to the stack directory (`services/<name>/service.json`), for problems. */
  readonly file: string
}

export interface K8sContext {
  readonly options: K8sOptions
  readonly env: StackEnv
  readonly byName: ReadonlyMap<string, K8sService>
  readonly problems: Array<Problem>
  /** The environment the pods get from the ConfigMap (for placeholders resolved here). */
  readonly podEnv: Readonly<Record<string, string>>
}

/** Something built for a service, with what did not map exactly (one sentence each). */
export interface Built<A> {
  readonly value: A
  readonly notes: ReadonlyArray<string>
}

/** The manifest's deployment hints (`deploy`), none when it gives none. */
export const hintsOf = (manifest: ServiceManifest): Deploy => manifest.deploy ?? {}

/** Placeholders as the image resolves them for `service`: its paths, and the pods' environment only. */
export const placeholderContext = (ctx: K8sContext, service: K8sService): PlaceholderContext => {
  const appDir = ImageLayout.appDir
  const manifests = [...ctx.byName.values()]
  return {
    dataDir: ImageLayout.dataDir,
    bind: ctx.podEnv["CORE_BIND"],
    depDir: `${appDir}/.dep`,
    serviceDir: `${appDir}/services/${service.spec.name}`,
    env: ctx.podEnv,
    ports: service.manifest.ports ?? {},
    servicePorts: Object.fromEntries(manifests.map((other) => [other.spec.name, other.manifest.ports ?? {}])),
    binaries: new Set(manifests.flatMap((other) => Object.keys(other.manifest.binaries ?? {})))
  }
}
