/**
 * What a manifest's placeholders refer to, read from the manifest as written: the environment variables
 * (`${env.VAR}`, `${env.VAR:-default}`) and the data directory. A variable read without a default anywhere is
 * a secret for the deployment generators: its value comes from the platform's secret store, never from a
 * generated file.
 */
import { formatPath } from "./ManifestError.js"
import { type EnvPlaceholder, parseEnvReference, placeholdersIn } from "./Placeholders.js"
import type { ServiceManifest } from "./ServiceManifest.js"

/** One `${env.VAR...}` in a manifest. */
export interface EnvReference extends EnvPlaceholder {
  /** JSON path of the string that holds it, e.g. `process.env.TOKEN`. */
  readonly field: string
}

/** Every string of a JSON value with its path, in document order. */
function* strings(value: unknown, path: ReadonlyArray<string | number> = []): Generator<[string, string]> {
  if (typeof value === "string") yield [formatPath(path), value]
  else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* strings(item, [...path, index])
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) yield* strings(item, [...path, key])
  }
}

/** Every `${env.*}` of one string, in order. */
export const envReferencesIn = (text: string): ReadonlyArray<EnvPlaceholder> =>
  placeholdersIn(text).flatMap((body) => {
    const reference = parseEnvReference(body)
    return reference === undefined ? [] : [reference]
  })

/** Every `${env.*}` of `manifest`, in document order. */
export const envReferences = (manifest: ServiceManifest): ReadonlyArray<EnvReference> =>
  [...strings(manifest)].flatMap(([field, text]) => envReferencesIn(text).map((reference) => ({ ...reference, field })))

/** Whether `manifest` uses `${data}` anywhere (its service keeps state in the data directory). */
export const usesDataDir = (manifest: ServiceManifest): boolean =>
  [...strings(manifest)].some(([, text]) => placeholdersIn(text).includes("data"))
