/**
 * The names of a service's ports in Kubernetes: a container port and a Service port are selected by name, and
 * a name must be an IANA service name, unique in its pod.
 */
import type { K8sService } from "./K8sContext.js"

const PORT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/

/** Why `name` cannot name a container port (IANA service name), or undefined. */
export const invalidPortName = (name: string): string | undefined =>
  PORT_NAME.test(name) && name.length <= 15 && /[a-z]/.test(name) && !name.includes("--")
    ? undefined
    : `port name "${name}" cannot name a Kubernetes port: at most 15 lowercase letters, digits and '-', with a letter, no '--', not starting or ending with '-'`

/**
 * The names the container gives its ports: the manifest's, or in a pod of several services a name unique in
 * the pod (a Service selects a port by name across the whole pod): `<service>-<port>` where a name is taken
 * twice, or none (then probes and Services use the number) when that is not a valid port name.
 */
export type PortNames = Readonly<Record<string, string | undefined>>

/** The port names of a container alone in its pod: the manifest's own. */
export const ownPortNames = (service: K8sService): PortNames =>
  Object.fromEntries(Object.keys(service.manifest.ports ?? {}).map((name) => [name, name]))

/** The port names of each container of one pod of `services`, by service name. */
export const podPortNames = (services: ReadonlyArray<K8sService>): ReadonlyMap<string, PortNames> => {
  const count = new Map<string, number>()
  for (const service of services) {
    for (const name of Object.keys(service.manifest.ports ?? {})) count.set(name, (count.get(name) ?? 0) + 1)
  }
  return new Map(
    services.map((service) => [
      service.spec.name as string,
      Object.fromEntries(
        Object.keys(service.manifest.ports ?? {}).map((name) => {
          if (count.get(name) === 1) return [name, name]
          const unique = `${service.spec.name}-${name}`
          return [name, invalidPortName(unique) === undefined ? unique : undefined]
        })
      )
    ])
  )
}

/** The named ports of a container, by the names it gives them (unnamed ones left out). */
export const namedPorts = (service: K8sService, names: PortNames): Record<string, number> =>
  Object.fromEntries(
    Object.entries(service.manifest.ports ?? {}).flatMap(([name, port]) =>
      names[name] === undefined ? [] : [[names[name]!, port] as const]
    )
  )
