/**
 * The stack's public entry: the one port, declared by `deploy.public` in one manifest, that a deployment
 * exposes. Everything else stays private.
 */
import { Either } from "effect"
import type { Problem } from "../manifest/ManifestError.js"
import type { ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"

/** The service and port a deployment exposes. */
export interface PublicEntry {
  readonly service: ServiceSpec
  /** The port's name in the manifest's `ports`. */
  readonly portName: string
  /** The port number (after `CORE_PORT_*` overrides). */
  readonly port: number
}

/** A service's manifest file, relative to the stack directory, for problems. */
export const manifestFile = (stack: StackSpec, service: ServiceSpec): string =>
  service.manifestPath.startsWith(`${stack.dir}/`)
    ? service.manifestPath.slice(stack.dir.length + 1)
    : service.manifestPath

/**
 * The public entry of `stack`, or why there is none: no manifest declares one, more than one does, or the one
 * that does is disabled. `step` names the command in the problems (`deploy-fly`, `deploy-k8s`).
 */
export const publicEntry = (stack: StackSpec, step: string): Either.Either<PublicEntry, ReadonlyArray<Problem>> => {
  const declaring = stack.services.filter((service) => service.deploy.public !== undefined)
  if (declaring.length === 0) {
    const names = stack.services.map((service) => service.name).join(", ")
    return Either.left([
      {
        step,
        file: "services/",
        path: "",
        message: `no public entry: one service must declare which of its ports the deployment exposes, e.g. "deploy": { "public": "http" } (services: ${names})`
      }
    ])
  }
  if (declaring.length > 1) {
    const all = declaring.map((service) => `${service.name} (${service.deploy.public})`).join(", ")
    return Either.left(
      declaring.map((service) => ({
        step,
        file: manifestFile(stack, service),
        path: "deploy.public",
        message: `a stack has one public entry, found ${declaring.length}: ${all}`
      }))
    )
  }
  const service = declaring[0]!
  const portName = service.deploy.public!
  if (service.disabled) {
    return Either.left([
      {
        step,
        file: manifestFile(stack, service),
        path: "deploy.public",
        message: `the public entry's service "${service.name}" is disabled`
      }
    ])
  }
  return Either.right({ service, portName, port: service.ports[portName]! })
}
