/**
 * The one error of loading a stack directory: every problem found, each naming its file, the JSON path
 * and what was expected, printed one per line.
 *
 * Also the helpers that turn Schema's parse issues and `JSON.parse` errors into such problems, condensed
 * for people: the alternatives of a union become one "expected one of ..." line, a union alternative that
 * failed deeper hides the shallow ones, an unknown key lists the allowed keys.
 */
import { Data, Option, ParseResult, SchemaAST } from "effect"

/** One thing wrong with a stack directory. */
export interface Problem {
  /** The loading step that found it (`discover`, `parse`, `schema`, `placeholders`, `ports-free`, ...). */
  readonly step: string
  /** The file, relative to the stack directory (e.g. `services/api/service.json`); empty for the stack itself. */
  readonly file: string
  /** JSON path inside the file (e.g. `process.compose.depends_on.db`); empty for the whole file. */
  readonly path: string
  readonly message: string
}

/** Renders one problem as `file: path: message`, leaving out the parts that are empty. */
export const formatProblem = (problem: Problem): string =>
  [problem.file, problem.path, problem.message].filter((part) => part !== "").join(": ")

/** A stack directory that cannot be run, with every problem found in it. */
export class ManifestError extends Data.TaggedError("ManifestError")<{
  readonly problems: ReadonlyArray<Problem>
}> {
  /** Every problem, one per line. */
  override get message(): string {
    return this.problems.map(formatProblem).join("\n")
  }

  /** A heading naming the stack directory and the count, then every problem indented, one per line. */
  format(dir: string): string {
    const count = this.problems.length
    return [
      `stack ${dir}: ${count} problem${count === 1 ? "" : "s"}`,
      ...this.problems.map((problem) => `  ${formatProblem(problem)}`)
    ].join("\n")
  }
}

// ---------------------------------------------------------------------------------------------
// JSON paths

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]*$/

/** `["process", "args", 0, "a.b"]` as `process.args[0]["a.b"]`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path
    .map((key, index) =>
      typeof key === "number"
        ? `[${key}]`
        : typeof key === "string" && IDENTIFIER.test(key)
          ? (index === 0 ? "" : ".") + key
          : `[${JSON.stringify(String(key))}]`
    )
    .join("")

// ---------------------------------------------------------------------------------------------
// JSON.parse errors

/**
 * Where a JSON text first breaks, and why: a small scanner, because `JSON.parse` on Node 20 omits the position
 * for an unexpected token (`{"a":tru}`, `[1,]`), and the kept `yaml` parser accepts what JSON refuses
 * (trailing commas, comments, single quotes), so neither can locate a JSON error.
 */
export const locateJsonError = (text: string): { readonly offset: number; readonly reason: string } | undefined => {
  let i = 0
  const fail = (reason: string): never => {
    throw { offset: i, reason }
  }
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++
  }
  const found = () => (i < text.length ? `unexpected ${JSON.stringify(text[i])}` : "unexpected end of input")
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length
    else fail(`unexpected ${JSON.stringify(text.slice(i, i + word.length))}, expected ${word}`)
  }
  const string = () => {
    i++
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i)
      if (c < 0x20) fail("control character in string (escape it)")
      if (text[i] === "\\") {
        i++
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail("invalid \\u escape in string")
          i += 4
        } else if (i >= text.length || !'"\\/bfnrt'.includes(text[i]!)) fail("invalid escape in string")
      }
      i++
    }
    if (i >= text.length) fail("unterminated string")
    i++
  }
  const number = () => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))
    if (match === null || match[0] === "" || match[0] === "-") fail(`${found()}, expected a value`)
    i += match![0].length
  }
  /** An object or array body: items separated by commas up to `close`, no trailing comma. */
  const sequence = (close: "}" | "]", item: () => void) => {
    i++
    space()
    if (text[i] === close) {
      i++
      return
    }
    for (;;) {
      space()
      if (text[i] === close) fail(`trailing comma before '${close}'`)
      item()
      space()
      if (text[i] === ",") {
        i++
        continue
      }
      if (text[i] === close) {
        i++
        return
      }
      fail(`${found()}, expected ',' or '${close}' after a value`)
    }
  }
  const member = () => {
    if (text[i] !== '"') fail(`${found()}, expected a quoted key`)
    string()
    space()
    if (text[i] !== ":") fail(`${found()}, expected ':' after the key`)
    i++
    value()
  }
  const value = (): void => {
    space()
    const c = text[i]
    if (c === "{") sequence("}", member)
    else if (c === "[") sequence("]", value)
    else if (c === '"') string()
    else if (c === "t") literal("true")
    else if (c === "f") literal("false")
    else if (c === "n") literal("null")
    else number()
  }
  try {
    value()
    space()
    if (i < text.length) fail(`${found()} after the end of the JSON value`)
    return undefined
  } catch (error) {
    return error as { offset: number; reason: string }
  }
}

/** Why a text is not JSON, with line and column (1-based): `invalid JSON at line 3, column 5: ...`. */
export const describeJsonError = (text: string, error: unknown): string => {
  const located = locateJsonError(text)
  if (located === undefined) return `invalid JSON: ${error instanceof Error ? error.message : String(error)}`
  const before = text.slice(0, located.offset)
  const line = before.split("\n").length
  const column = located.offset - before.lastIndexOf("\n")
  return `invalid JSON at line ${line}, column ${column}: ${located.reason}`
}

/** A UTF-16 surrogate that is not half of a pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * The strings (keys and values) of a parsed JSON value that hold a lone surrogate, each with its JSON path and
 * the first such code unit (`\uD800`). A UTF-8 file cannot hold one, so it comes from a JSON escape; no UTF-8
 * text can carry it on: Node hands a process U+FFFD in its place, and YAML readers refuse it.
 */
export const loneSurrogates = (
  json: unknown,
  at: ReadonlyArray<PropertyKey> = []
): ReadonlyArray<{ readonly path: ReadonlyArray<PropertyKey>; readonly unit: string }> => {
  const unitIn = (text: string): string | undefined => {
    const found = LONE_SURROGATE.exec(text)
    return found === null ? undefined : `\\u${found[0].charCodeAt(0).toString(16).toUpperCase()}`
  }
  if (typeof json === "string") {
    const unit = unitIn(json)
    return unit === undefined ? [] : [{ path: at, unit }]
  }
  if (Array.isArray(json)) return json.flatMap((item, index) => loneSurrogates(item, [...at, index]))
  if (typeof json !== "object" || json === null) return []
  return Object.entries(json).flatMap(([key, value]) => {
    const unit = unitIn(key)
    return unit === undefined ? loneSurrogates(value, [...at, key]) : [{ path: [...at, key], unit }]
  })
}

/**
 * What a `"__proto__"` key (of a manifest or a `.env` file) is told. `JSON.parse` keeps such a key, but every
 * object the manifest is decoded into assigns it, which sets no key: a port, variable or header of that name
 * would vanish without a word.
 */
export const PROTO_KEY_PROBLEM = `"__proto__" cannot be a name: it is reserved in JavaScript objects`

/** The JSON paths of the `"__proto__"` keys of a parsed JSON value (see `PROTO_KEY_PROBLEM`). */
export const protoKeys = (
  json: unknown,
  at: ReadonlyArray<PropertyKey> = []
): ReadonlyArray<ReadonlyArray<PropertyKey>> => {
  if (Array.isArray(json)) return json.flatMap((item, index) => protoKeys(item, [...at, index]))
  if (typeof json !== "object" || json === null) return []
  return Object.entries(json).flatMap(([key, value]) =>
    key === "__proto__" ? [[...at, key]] : protoKeys(value, [...at, key])
  )
}

// ---------------------------------------------------------------------------------------------
// Schema parse issues

/** One condensed schema problem: where and what. */
export interface IssueLine {
  readonly path: string
  readonly message: string
}

const show = (actual: unknown): string => {
  if (actual === undefined) return "nothing"
  const text = JSON.stringify(actual) ?? String(actual)
  return text.length > 60 ? text.slice(0, 57) + "..." : text
}

/** A short human description of what a schema accepts ("a string", "one of \"a\", \"b\"", "an object"). */
export const describeAst = (ast: SchemaAST.AST): string => {
  switch (ast._tag) {
    case "Literal":
      return JSON.stringify(ast.literal)
    case "Union": {
      if (ast.types.every((member) => member._tag === "Literal")) {
        return `one of ${ast.types.map(describeAst).join(", ")}`
      }
      return ast.types.map(describeAst).join(" or ")
    }
    case "TypeLiteral":
      return ast.propertySignatures.length === 0 ? "an object (a map of names to values)" : "an object"
    case "TupleType":
      return ast.elements.length === 0 && ast.rest.length === 1
        ? `an array of ${plural(ast.rest[0]!.type)}`
        : "an array"
    case "Transformation":
      return describeAst(ast.to)
    case "Suspend":
      return describeAst(ast.f())
    case "TemplateLiteral":
      return `a string like ${ast.head}...`
    default:
      return Option.getOrElse(SchemaAST.getDescriptionAnnotation(ast), () => String(ast))
  }
}

const plural = (ast: SchemaAST.AST): string => {
  const one = describeAst(ast)
  return one === "a string" ? "strings" : one === "a number" ? "numbers" : one
}

/** The keys a struct accepts, for "unknown key" messages: declared names, then `x-*` style patterns. */
const allowedKeys = (ast: SchemaAST.TypeLiteral): string => {
  const names = ast.propertySignatures.map((signature) => String(signature.name))
  const patterns = ast.indexSignatures.map((signature) =>
    signature.parameter._tag === "TemplateLiteral" && signature.parameter.spans.length === 1
      ? `${signature.parameter.head}*`
      : "any name"
  )
  return [...names, ...patterns].join(", ")
}

const leafMessage = (issue: ParseResult.ParseIssue): string => {
  const formatted = ParseResult.ArrayFormatter.formatIssueSync(issue)[0]?.message ?? ""
  return formatted.replace(/^Expected /, "expected ")
}

const walk = (
  issue: ParseResult.ParseIssue,
  path: ReadonlyArray<PropertyKey>,
  parent: SchemaAST.TypeLiteral | undefined
): Array<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }> => {
  switch (issue._tag) {
    case "Pointer": {
      const keys = Array.isArray(issue.path) ? issue.path : [issue.path]
      return walk(issue.issue, [...path, ...keys], parent)
    }
    case "Composite": {
      const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues]
      if (issue.ast._tag === "Union") {
        const found = issues.flatMap((member) => walk(member, path, undefined))
        const deeper = found.filter((line) => line.path.length > path.length)
        if (deeper.length > 0) return deeper
        return [{ path, message: `expected ${describeAst(issue.ast)}, actual ${show(issue.actual)}` }]
      }
      const next = issue.ast._tag === "TypeLiteral" ? issue.ast : undefined
      return issues.flatMap((member) => walk(member, path, next))
    }
    case "Refinement": {
      if (issue.kind === "From") return walk(issue.issue, path, parent)
      const custom = SchemaAST.getMessageAnnotation(issue.ast)
      const expected = Option.isSome(custom)
        ? leafMessage(issue)
        : Option.getOrElse(SchemaAST.getDescriptionAnnotation(issue.ast), () => leafMessage(issue))
      return [{ path, message: `expected ${expected.replace(/^expected /, "")}, actual ${show(issue.actual)}` }]
    }
    case "Transformation":
      return walk(issue.issue, path, parent)
    case "Type":
      return [{ path, message: `expected ${describeAst(issue.ast)}, actual ${show(issue.actual)}` }]
    case "Missing": {
      // For a struct key this is the property signature; its `type` is what the value must be.
      const signature = issue.ast as SchemaAST.AST | SchemaAST.PropertySignature
      const ast = signature instanceof SchemaAST.PropertySignature ? signature.type : signature
      return [{ path, message: `is missing (expected ${describeAst(ast)})` }]
    }
    case "Unexpected": {
      const names = parent?.indexSignatures.find((signature) => signature.parameter._tag === "Refinement")
      if (names !== undefined)
        return [{ path, message: `is not a valid name: expected ${describeAst(names.parameter)}` }]
      const allowed = parent !== undefined ? ` (allowed: ${allowedKeys(parent)})` : ""
      return [{ path, message: `is unexpected: unknown key${allowed}` }]
    }
    case "Forbidden":
      return [{ path, message: leafMessage(issue) }]
  }
}

/**
 * A parse issue from `effect/Schema` as condensed lines, one per distinct problem, in the order found.
 * Union alternatives are merged ("expected one of ..."); alternatives that failed at the union's own
 * path are dropped when another got further.
 */
export const describeParseIssue = (issue: ParseResult.ParseIssue): ReadonlyArray<IssueLine> => {
  const seen = new Set<string>()
  const lines: Array<IssueLine> = []
  for (const line of walk(issue, [], undefined)) {
    const entry = { path: formatPath(line.path), message: line.message }
    const key = `${entry.path}\u0000${entry.message}`
    if (!seen.has(key)) {
      seen.add(key)
      lines.push(entry)
    }
  }
  return lines
}
