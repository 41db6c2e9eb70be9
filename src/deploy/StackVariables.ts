/**
 * The environment variables a stack's manifests read, split the way deployments need them: secrets (read
 * somewhere without a default: their values come from the platform's secret store) and settings (always
 * read with a default: the default is what a deployment writes, never a value from `.env` or the
 * environment).
 */
import { envReferences } from "../manifest/EnvReferences.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { manifestFile } from "./PublicEntry.js"

/** Where a variable is read: the manifest file and the JSON path of the string. */
export interface VariableUse {
  readonly service: string
  readonly file: string
  readonly field: string
}

export interface StackVariable {
  readonly name: string
  readonly uses: ReadonlyArray<VariableUse>
}

export interface Setting extends StackVariable {
  /** The manifests' default; undefined when two uses give different defaults (then none is written). */
  readonly value: string | undefined
}

export interface StackVariables {
  /** Sorted by name. */
  readonly secrets: ReadonlyArray<StackVariable>
  /** Sorted by name. */
  readonly settings: ReadonlyArray<Setting>
}

/** The variables read by every service of `stack` (disabled ones too: the loader resolves them all). */
export const stackVariables = (stack: StackSpec): StackVariables => {
  const found = new Map<string, { uses: Array<VariableUse>; fallbacks: Set<string | undefined> }>()
  for (const service of stack.services) {
    for (const reference of envReferences(service.manifest)) {
      const entry = found.get(reference.name) ?? { uses: [], fallbacks: new Set() }
      entry.uses.push({ service: service.name, file: manifestFile(stack, service), field: reference.field })
      entry.fallbacks.add(reference.fallback)
      found.set(reference.name, entry)
    }
  }
  const names = [...found.keys()].sort()
  return {
    secrets: names
      .filter((name) => found.get(name)!.fallbacks.has(undefined))
      .map((name) => ({
        name,
        uses: found.get(name)!.uses
      })),
    settings: names
      .filter((name) => !found.get(name)!.fallbacks.has(undefined))
      .map((name) => {
        const { uses, fallbacks } = found.get(name)!
        return { name, uses, value: fallbacks.size === 1 ? [...fallbacks][0] : undefined }
      })
  }
}
