/**
 * What a manifest, as written, needs from the place it is deployed to: the environment variables its
 * placeholders read (a `${env.X}` without a default is a secret), and whether it uses `${data}`.
 *
 * A deployment resolves placeholders inside the running image, not here, so generators read the manifest's
 * own strings rather than the values resolved on this machine.
 */

/** One `${...}` of a string: its body (the text between `${` and `}`). `$${...}` literals are not placeholders. */
export const placeholderBodies = (text: string): ReadonlyArray<string> => {
  const bodies: Array<string> = []
  let i = 0
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      i += 3
      continue
    }
    if (text.startsWith("${", i)) {
      const end = text.indexOf("}", i + 2)
      if (end < 0) break
      bodies.push(text.slice(i + 2, end))
      i = end + 1
      continue
    }
    i++
  }
  return bodies
}

/** An `${env.NAME}` or `${env.NAME:-default}` body, split; undefined for any other placeholder. */
export const envReference = (body: string): { readonly name: string; readonly fallback?: string } | undefined => {
  const match = /^env\.([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(body)
  if (match === null) return undefined
  return match[2] === undefined ? { name: match[1]! } : { name: match[1]!, fallback: match[2] }
}

/** Every string inside a JSON value (keys of objects are not values and are skipped). */
const stringsOf = (value: unknown, out: Array<string> = []): Array<string> => {
  if (typeof value === "string") out.push(value)
  else if (Array.isArray(value)) for (const item of value) stringsOf(item, out)
  else if (typeof value === "object" && value !== null) for (const item of Object.values(value)) stringsOf(item, out)
  return out
}

/** The environment a manifest reads through its placeholders. */
export interface EnvNeeds {
  /** Variables read without a default: secrets, sorted. Their values are never written by a generator. */
  readonly secrets: ReadonlyArray<string>
  /** Variables read with a default, and that default (the first one met, in document order), sorted by name. */
  readonly defaults: ReadonlyArray<readonly [name: string, fallback: string]>
  /** Whether any string uses `${data}`. */
  readonly usesData: boolean
}

/** What one manifest (any JSON value) reads: see `EnvNeeds`. A variable read both ways counts as a secret. */
export const envNeeds = (manifest: unknown): EnvNeeds => {
  const secrets = new Set<string>()
  const defaults = new Map<string, string>()
  let usesData = false
  for (const text of stringsOf(manifest)) {
    for (const body of placeholderBodies(text)) {
      if (body === "data") usesData = true
      const ref = envReference(body)
      if (ref === undefined) continue
      if (ref.fallback === undefined) secrets.add(ref.name)
      else if (!defaults.has(ref.name)) defaults.set(ref.name, ref.fallback)
    }
  }
  return {
    secrets: [...secrets].sort(),
    defaults: [...defaults].filter(([name]) => !secrets.has(name)).sort(([a], [b]) => (a < b ? -1 : 1)),
    usesData
  }
}
