/**
 * Placeholders in manifest strings, resolved before anything runs.
 *
 * | placeholder                          | value                                                     |
 * |--------------------------------------|-----------------------------------------------------------|
 * | `${dep.NAME}`                        | absolute path of provisioned binary NAME (`.dep/NAME`)    |
 * | `${data}`                            | absolute data directory: `--data`, `CORE_DATA_DIR`, `.data` |
 * | `${env.VAR}` / `${env.VAR:-default}` | environment (after `.env`); unset without default = error |
 * | `${port.NAME}`                       | this service's port NAME                                  |
 * | `${svc.SERVICE.port.NAME}`           | another service's port                                    |
 * | `${svc.SERVICE.host}`                | where SERVICE is reached: `CORE_HOST_<SERVICE>`, else `127.0.0.1` |
 * | `${bind}`                            | the address this service listens on (see `bindAddress`)   |
 * | `${dir}`                             | this service's folder (`services/<name>`)                 |
 * | `$${...}`                            | a literal `${...}`                                        |
 *
 * `${env.VAR:-default}` uses the default when VAR is unset or empty, as the shell does. The default is
 * taken literally (no nested placeholders). A `$` not followed by `{` is kept as it is.
 */
import { Either } from "effect"

/** What a placeholder may refer to, for one service of one stack. */
export interface PlaceholderContext {
  /** Absolute data directory of the stack (`.data` unless moved). */
  readonly dataDir: string
  /** The address this service listens on (`${bind}`), from `bindAddress`; default `127.0.0.1`. */
  readonly bind?: string
  /** An `${env.VAR}` without a value stays `${env.VAR}` instead of being an error (portable loading). */
  readonly keepUnsetEnv?: boolean
  /** Absolute `.dep` directory of the stack. */
  readonly depDir: string
  /** Absolute folder of this service. */
  readonly serviceDir: string
  /** The environment, `.env` included. */
  readonly env: Readonly<Record<string, string | undefined>>
  /** This service's ports (after overrides). */
  readonly ports: Readonly<Record<string, number>>
  /** Every service's ports, by service name (this one included). */
  readonly servicePorts: Readonly<Record<string, Readonly<Record<string, number>>>>
  /** Names of the binaries declared by any service of the stack. */
  readonly binaries: ReadonlySet<string>
  /** Services that exist but whose ports are unknown (their manifest is invalid); not "unknown service". */
  readonly unavailable?: ReadonlySet<string>
}

/** The kinds a placeholder may have, for error messages. */
export const placeholderKinds = [
  "dep.NAME",
  "data",
  "env.VAR",
  "env.VAR:-default",
  "port.NAME",
  "svc.SERVICE.port.NAME",
  "svc.SERVICE.host",
  "bind",
  "dir"
] as const

/** Where services are reached and listen when nothing else is said: this machine. */
export const LOOPBACK = "127.0.0.1"

/**
 * `record[key]` when `record` has that key itself, else undefined: a name from a manifest (`toString`,
 * `constructor`) must not find what every object inherits.
 */
export const ownValue = <A>(record: Readonly<Record<string, A>>, key: string): A | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined

const setting = (env: Readonly<Record<string, string | undefined>>, name: string): string | undefined => {
  const value = ownValue(env, name)?.trim()
  return value === undefined || value === "" ? undefined : value
}

/** The variable that says where service `name` is reached: `CORE_HOST_<NAME>`, upper-cased, other characters `_`. */
export const hostVariable = (name: string): string => `CORE_HOST_${name}`.toUpperCase().replace(/[^A-Z0-9]/g, "_")

/** `${svc.NAME.host}`: `CORE_HOST_<NAME>` when set, else `127.0.0.1`. */
export const serviceHost = (env: Readonly<Record<string, string | undefined>>, name: string): string =>
  setting(env, hostVariable(name)) ?? LOOPBACK

/**
 * `${bind}`: for the service that declares the stack's public entry (`deploy.public`), `CORE_PUBLIC_BIND`, else
 * `CORE_BIND`, else `127.0.0.1`; for every other service, `CORE_BIND`, else `127.0.0.1`.
 */
export const bindAddress = (env: Readonly<Record<string, string | undefined>>, isPublicEntry: boolean): string =>
  (isPublicEntry ? setting(env, "CORE_PUBLIC_BIND") : undefined) ?? setting(env, "CORE_BIND") ?? LOOPBACK

const known = (names: Iterable<string>): string => {
  const list = [...names].sort()
  return list.length === 0 ? "none" : list.join(", ")
}

/** One `${env.VAR}` or `${env.VAR:-default}`: the variable and its default. */
export interface EnvPlaceholder {
  readonly name: string
  /** The default after `:-`, when there is one. */
  readonly fallback: string | undefined
}

const ENV_PLACEHOLDER = /^env\.([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/

/**
 * A placeholder body (`env.NAME` or `env.NAME:-default`) as a variable and its default; undefined for any other
 * body, and for an `env.` body whose name is not a variable name.
 */
export const parseEnvReference = (body: string): EnvPlaceholder | undefined => {
  const match = ENV_PLACEHOLDER.exec(body)
  return match === null ? undefined : { name: match[1]!, fallback: match[2] }
}

/** The value of one placeholder body (the text between `${` and `}`), or why it has none. */
const resolveOne = (body: string, ctx: PlaceholderContext): Either.Either<string, string> => {
  const shown = "${" + body + "}"
  if (body === "data") return Either.right(ctx.dataDir)
  if (body === "bind") return Either.right(ctx.bind ?? LOOPBACK)
  if (body === "dir") return Either.right(ctx.serviceDir)
  if (body.startsWith("env.")) {
    const reference = parseEnvReference(body)
    if (reference === undefined) return Either.left(`invalid variable name in ${shown}`)
    const { name, fallback } = reference
    const value = ownValue(ctx.env, name)
    if (fallback !== undefined) return Either.right(value === undefined || value === "" ? fallback : value)
    if (value === undefined && ctx.keepUnsetEnv === true) return Either.right(shown)
    if (value === undefined) {
      return Either.left(`${shown}: environment variable ${name} is not set (give a default: \${env.${name}:-value})`)
    }
    return Either.right(value)
  }
  if (body.startsWith("dep.")) {
    const name = body.slice("dep.".length)
    if (!ctx.binaries.has(name)) {
      return Either.left(`${shown}: no service declares a binary "${name}" (declared: ${known(ctx.binaries)})`)
    }
    return Either.right(`${ctx.depDir}/${name}`)
  }
  if (body.startsWith("port.")) {
    const name = body.slice("port.".length)
    const port = ownValue(ctx.ports, name)
    if (port === undefined) {
      return Either.left(`${shown}: this service has no port "${name}" (ports: ${known(Object.keys(ctx.ports))})`)
    }
    return Either.right(String(port))
  }
  if (body.startsWith("svc.")) {
    const host = /^svc\.([^.]+)\.host$/.exec(body)
    const match = /^svc\.([^.]+)\.port\.([^.]+)$/.exec(body)
    const service = host?.[1] ?? match?.[1]
    if (service === undefined)
      return Either.left(`${shown}: expected \${svc.SERVICE.port.NAME} or \${svc.SERVICE.host}`)
    const ports = ownValue(ctx.servicePorts, service)
    if (host !== null && (ports !== undefined || ctx.unavailable?.has(service))) {
      return Either.right(serviceHost(ctx.env, service))
    }
    if (ports === undefined && ctx.unavailable?.has(service)) {
      return Either.left(`${shown}: the manifest of service "${service}" is invalid, its ports are unknown`)
    }
    if (ports === undefined) {
      return Either.left(`${shown}: unknown service "${service}" (known: ${known(Object.keys(ctx.servicePorts))})`)
    }
    const name = match![2]!
    const port = ownValue(ports, name)
    if (port === undefined) {
      return Either.left(`${shown}: service "${service}" has no port "${name}" (ports: ${known(Object.keys(ports))})`)
    }
    return Either.right(String(port))
  }
  return Either.left(
    `unknown placeholder ${shown} (known: ${placeholderKinds.map((k) => "${" + k + "}").join(", ")}; write $\${...} for a literal \${...})`
  )
}

/** One piece of a manifest string: literal text, a `$${` escape, a placeholder's body, or an unterminated `${`. */
type Piece =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Escape" }
  | { readonly _tag: "Placeholder"; readonly body: string }
  | { readonly _tag: "Unterminated"; readonly text: string }

/** `text` cut into its pieces, in order: the one reader of the placeholder syntax. An unterminated `${` ends it. */
function* piecesOf(text: string): Generator<Piece> {
  let start = 0
  let i = 0
  while (i < text.length) {
    const escaped = text.startsWith("$${", i)
    if (!escaped && !text.startsWith("${", i)) {
      i++
      continue
    }
    if (i > start) yield { _tag: "Text", text: text.slice(start, i) }
    if (escaped) {
      yield { _tag: "Escape" }
      i += 3
    } else {
      const end = text.indexOf("}", i + 2)
      if (end < 0) {
        yield { _tag: "Unterminated", text: text.slice(i) }
        return
      }
      yield { _tag: "Placeholder", body: text.slice(i + 2, end) }
      i = end + 1
    }
    start = i
  }
  if (start < text.length) yield { _tag: "Text", text: text.slice(start) }
}

/**
 * Resolves every placeholder of `text`. Returns the resolved string, or every problem found in it
 * (each message names the placeholder).
 */
export const resolvePlaceholders = (
  text: string,
  ctx: PlaceholderContext
): Either.Either<string, ReadonlyArray<string>> => {
  let out = ""
  const problems: Array<string> = []
  for (const piece of piecesOf(text)) {
    if (piece._tag === "Text") out += piece.text
    else if (piece._tag === "Escape") out += "${"
    else if (piece._tag === "Unterminated")
      problems.push(`unterminated placeholder ${JSON.stringify(piece.text)} (missing "}")`)
    else {
      const resolved = resolveOne(piece.body, ctx)
      if (Either.isRight(resolved)) out += resolved.right
      else problems.push(resolved.left)
    }
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(out)
}

/** The bodies of the placeholders in `text` (`port.http` for `${port.http}`), in order; `$${...}` is no placeholder. */
export const placeholdersIn = (text: string): ReadonlyArray<string> =>
  [...piecesOf(text)].flatMap((piece) => (piece._tag === "Placeholder" ? [piece.body] : []))

/**
 * `text` with each placeholder for which `replace` gives a text replaced by it; everything else, `$${` escapes
 * included, kept as written.
 */
export const replacePlaceholders = (text: string, replace: (body: string) => string | undefined): string =>
  [...piecesOf(text)]
    .map((piece) => {
      if (piece._tag === "Escape") return "$${"
      if (piece._tag === "Placeholder") return replace(piece.body) ?? "${" + piece.body + "}"
      return piece.text
    })
    .join("")
