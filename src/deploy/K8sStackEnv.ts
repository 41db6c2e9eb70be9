/**
 * The stack's environment as Kubernetes provides it: the settings (read with a default every manifest agrees
 * on) in the ConfigMap, the secrets (read somewhere without a default) from the Secret, each container given
 * the secrets its service reads.
 */
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { envReferences } from "../manifest/EnvReferences.js"
import { secretName } from "./K8sOptions.js"
import { stackVariables } from "./StackVariables.js"

export interface StackEnv {
  /** The variables each service reads (secrets and settings alike), by service. */
  readonly reads: ReadonlyMap<string, ReadonlySet<string>>
  /** Read somewhere without a default: from the Secret. */
  readonly secrets: ReadonlyArray<string>
  /** Always read with a default that every manifest agrees on: the ConfigMap's own entries. */
  readonly defaults: ReadonlyArray<readonly [string, string]>
  readonly notes: ReadonlyArray<string>
}

export const stackEnv = (stack: StackSpec): StackEnv => {
  const variables = stackVariables(stack)
  return {
    reads: new Map(
      stack.services.map((service) => [
        service.name as string,
        new Set(envReferences(service.manifest).map((r) => r.name))
      ])
    ),
    secrets: variables.secrets.map((secret) => secret.name),
    defaults: variables.settings.flatMap((setting) =>
      setting.value === undefined ? [] : [[setting.name, setting.value] as const]
    ),
    notes: variables.settings
      .filter((setting) => setting.value === undefined)
      .map(
        (setting) =>
          `\${env.${setting.name}} has different defaults in different manifests: it is left out of the ConfigMap`
      )
  }
}

/** The `env` of a container: each secret of the stack, from the Secret when the service reads it, else empty. */
export const secretEnv = (env: StackEnv, service: string | undefined) => {
  const reads = service === undefined ? undefined : env.reads.get(service)
  return env.secrets.map((name) =>
    reads?.has(name) === true ? { name, valueFrom: { secretKeyRef: { name: secretName, key: name } } } : { name }
  )
}
