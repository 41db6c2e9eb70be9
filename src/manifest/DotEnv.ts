/**
 * The `.env` file of a stack directory.
 *
 * Accepted lines: `KEY=VALUE`, `export KEY=VALUE`, blank lines and `#` comments. Values may be bare
 * (trimmed; ` #` starts a comment), single-quoted (taken literally) or double-quoted (`\n`, `\t`, `\"`, `\\`
 * escapes; may span lines). Keys are letters, digits and `_`, not starting with a digit. Anything else is
 * a problem reported with its line number; no variable interpolation is done.
 */
import { Either } from "effect"
import { PROTO_KEY_PROBLEM } from "./ManifestError.js"

/** A malformed line of a `.env` file. */
export interface DotEnvProblem {
  /** 1-based line number. */
  readonly line: number
  readonly message: string
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/

const unescapeDouble = (raw: string): string =>
  raw.replace(/\\(.)/gs, (_, c: string) => (c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c))

/** Index of the closing quote in `text` from `from`, skipping backslash escapes for `"`; -1 when none. */
const closingQuote = (text: string, from: number, quote: string): number => {
  for (let i = from; i < text.length; i++) {
    if (quote === '"' && text[i] === "\\") {
      i++
      continue
    }
    if (text[i] === quote) return i
  }
  return -1
}

/** Parses the text of a `.env` file: the variables, or every malformed line. Later keys win. */
export const parseDotEnv = (text: string): Either.Either<Record<string, string>, ReadonlyArray<DotEnvProblem>> => {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/)
  const vars: Record<string, string> = {}
  const problems: Array<DotEnvProblem> = []
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1
    const line = lines[index]!.trim()
    if (line === "" || line.startsWith("#")) continue
    const body = line.startsWith("export ") ? line.slice("export ".length).trimStart() : line
    const eq = body.indexOf("=")
    if (eq < 0) {
      problems.push({ line: lineNumber, message: `expected KEY=VALUE, got ${JSON.stringify(line)}` })
      continue
    }
    const key = body.slice(0, eq).trim()
    if (!KEY.test(key)) {
      problems.push({
        line: lineNumber,
        message: `invalid variable name ${JSON.stringify(key)} (letters, digits and '_', not starting with a digit)`
      })
      continue
    }
    if (key === "__proto__") {
      problems.push({ line: lineNumber, message: PROTO_KEY_PROBLEM })
      continue
    }
    const rest = body.slice(eq + 1).trimStart()
    const quote = rest[0]
    if (quote === '"' || quote === "'") {
      // A quoted value may continue on the following lines.
      let joined = rest
      let end = closingQuote(joined, 1, quote)
      let last = index
      while (end < 0 && last + 1 < lines.length) {
        last++
        joined += "\n" + lines[last]!
        end = closingQuote(joined, 1, quote)
      }
      if (end < 0) {
        problems.push({ line: lineNumber, message: `unterminated ${quote === '"' ? "double" : "single"} quote` })
        break
      }
      const after = joined.slice(end + 1).trim()
      if (after !== "" && !after.startsWith("#")) {
        problems.push({ line: last + 1, message: `unexpected text after the closing quote: ${JSON.stringify(after)}` })
      } else {
        const inner = joined.slice(1, end)
        vars[key] = quote === '"' ? unescapeDouble(inner) : inner
      }
      index = last
      continue
    }
    const comment = rest.startsWith("#") ? 0 : rest.search(/\s#/)
    vars[key] = (comment < 0 ? rest : rest.slice(0, comment)).trim()
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(vars)
}

/**
 * The environment with `.env` variables added underneath: a variable already in `env` (not `undefined`)
 * wins over the file.
 */
export const mergeDotEnv = (
  env: Readonly<Record<string, string | undefined>>,
  dotEnv: Readonly<Record<string, string>>
): Record<string, string | undefined> => {
  // defined, not assigned: a variable named __proto__ (Node's process.env can hold one) is a key like any other
  const merged: Record<string, string | undefined> = { ...dotEnv }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined)
      Object.defineProperty(merged, key, { value, writable: true, enumerable: true, configurable: true })
  }
  return merged
}
