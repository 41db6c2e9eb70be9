/**
 * The loader's checks over the whole stack (steps `dependencies`, `cycles`, `ports`), and what can still be
 * checked in a manifest that failed its schema. Pure: manifests in, located problems out.
 */
import { Either } from "effect"
import { findCycle } from "../stack/StackGraph.js"
import { formatPath, type Problem } from "./ManifestError.js"
import { type PlaceholderContext, resolvePlaceholders } from "./Placeholders.js"
import type { ManifestSource } from "./ServiceResolver.js"

/** A problem found by `step` in `file` at the JSON `path`. */
export const problem = (step: string, file: string, path: string, message: string): Problem => ({
  step,
  file,
  path,
  message
})

/** Names as a sorted, comma-separated list ("none" for no name). */
export const list = (names: Iterable<string>): string => {
  const sorted = [...names].sort()
  return sorted.length === 0 ? "none" : sorted.join(", ")
}

const dependencyNames = (source: ManifestSource): ReadonlyArray<string> =>
  Object.keys(source.manifest.process.compose?.depends_on ?? {})

/** "unknown service" at `depends_on.<dependency>` of `service`'s manifest. */
const unknownDependency = (file: string, service: string, dependency: string, known: ReadonlyArray<string>) =>
  problem(
    "dependencies",
    file,
    formatPath(["process", "compose", "depends_on", dependency]),
    `unknown service "${dependency}" (known: ${list(known.filter((name) => name !== service))})`
  )

/**
 * What can still be found in a manifest that failed its schema, so that one run reports it with the schema's
 * problems: `depends_on` names that are no service, and `${env.VAR}` placeholders (without a default) whose
 * variable is not set, wherever they are.
 */
export const checkRawManifest = (
  found: { readonly name: string; readonly dir: string; readonly file: string },
  json: unknown,
  known: ReadonlyArray<string>,
  ctx: Omit<PlaceholderContext, "serviceDir" | "ports">
): ReadonlyArray<Problem> => {
  const problems: Array<Problem> = []
  const at = (value: unknown, keys: ReadonlyArray<string>): unknown =>
    keys.reduce<unknown>(
      (v, k) => (typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined),
      value
    )
  const dependsOn = at(json, ["process", "compose", "depends_on"])
  if (typeof dependsOn === "object" && dependsOn !== null && !Array.isArray(dependsOn)) {
    for (const dependency of Object.keys(dependsOn)) {
      if (dependency === found.name || known.includes(dependency)) continue
      problems.push(unknownDependency(found.file, found.name, dependency, known))
    }
  }
  const placeholderCtx: PlaceholderContext = { ...ctx, serviceDir: found.dir, ports: {} }
  const walk = (value: unknown, path: ReadonlyArray<string | number>): void => {
    if (typeof value === "string") {
      if (!value.includes("${env.")) return
      const resolved = resolvePlaceholders(value, placeholderCtx)
      if (Either.isRight(resolved)) return
      for (const message of resolved.left) {
        if (message.startsWith("${env.")) problems.push(problem("placeholders", found.file, formatPath(path), message))
      }
    } else if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, [...path, i])
    } else if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, [...path, k])
    }
  }
  walk(json, [])
  return problems
}

/** Step `dependencies`: every `depends_on` names a service of the stack. */
export const checkDependencies = (sources: ReadonlyArray<ManifestSource>, known: ReadonlyArray<string>) =>
  sources.flatMap((source) =>
    dependencyNames(source)
      .filter((dependency) => dependency !== source.name && !known.includes(dependency))
      .map((dependency) => unknownDependency(source.file, source.name, dependency, known))
  )

/** Step `cycles`: the first dependency cycle, if any. */
export const checkCycles = (sources: ReadonlyArray<ManifestSource>): ReadonlyArray<Problem> => {
  const cycle = findCycle(
    sources.map((source) => ({ name: source.name, dependsOn: dependencyNames(source).map((name) => ({ name })) }))
  )
  if (cycle === undefined) return []
  const first = sources.find((source) => source.name === cycle[0])!
  return [
    problem(
      "cycles",
      first.file,
      formatPath(["process", "compose", "depends_on", cycle[1]!]),
      cycle.length === 2 ? `service "${cycle[0]}" depends on itself` : `dependency cycle: ${cycle.join(" -> ")}`
    )
  ]
}

/** Step `ports`: no port is declared by two enabled services (or twice by one). */
export const checkPortClashes = (
  sources: ReadonlyArray<ManifestSource>,
  ports: ReadonlyMap<string, Readonly<Record<string, number>>>
): ReadonlyArray<Problem> => {
  const owners = new Map<number, { service: string; port: string }>()
  const problems: Array<Problem> = []
  for (const source of sources) {
    if (source.manifest.process.compose?.disabled === true) continue
    for (const [portName, port] of Object.entries(ports.get(source.name)!).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const owner = owners.get(port)
      if (owner === undefined) {
        owners.set(port, { service: source.name, port: portName })
        continue
      }
      problems.push(
        problem(
          "ports",
          source.file,
          formatPath(["ports", portName]),
          `port ${port} is used twice: by service "${owner.service}" (ports.${owner.port}) and by service "${source.name}" (ports.${portName})`
        )
      )
    }
  }
  return problems
}
