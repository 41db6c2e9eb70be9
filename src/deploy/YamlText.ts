/**
 * Block-style YAML text of plain data (objects, arrays, strings, finite numbers, booleans, null), written
 * directly: the process-compose file of a stack of 200 services took 75-99 ms through the `yaml` library's
 * document model (8-25 ms here), and writing it added ~6 MB to the supervisor's peak memory (issue 14).
 *
 * A string is written plain only when it reads back as that same string under YAML 1.1 and 1.2 (so Go's
 * yaml.v3, process-compose's parser, and the `yaml` library agree): printable ASCII, no surrounding space,
 * no leading indicator, no `: ` or ` #`, nothing a resolver could take for a number, a boolean, a null, a
 * timestamp or a merge key, no backslash. Every other string is double-quoted, with escapes that both versions
 * read the same way (`test/YamlText.test.ts` checks the round trip under both). A backslash is always written
 * as `\x5c`: process-compose runs the file's text through envsubst before it parses it, which turns `\\` into
 * `\` and `\/` into `/`, in quoted and plain text alike.
 */

/** Comments to write above some keys of a mapping, by the key's path from the top (`/processes/api`). */
export type KeyComments = ReadonlyMap<string, ReadonlyArray<string>>

/** What YAML 1.1 (or 1.2) resolves to something other than a string, in every case mix it accepts. */
const reserved =
  /^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|=|<<|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$/

/** Printable ASCII without the characters that need care anywhere in a plain scalar. */
const plainChars = /^[\x21-\x7e ]+$/
/** A first character that starts something else than a plain scalar. */
const indicatorStart = /^[!&*|>'"%@`#,[\]{}]/

const isPlain = (s: string): boolean => {
  if (s.length === 0 || !plainChars.test(s) || s.includes("\\")) return false
  if (s !== s.trim()) return false
  // a document marker, were it at the start of a line
  if (s.startsWith("---") || s.startsWith("...")) return false
  if (indicatorStart.test(s)) return false
  // `-`, `?` and `:` start a plain scalar only when a non-space follows
  if (/^[-?:]( |$)/.test(s)) return false
  if (s.includes(": ") || s.includes(" #") || s.endsWith(":")) return false
  if (reserved.test(s)) return false
  // numbers (1.1 also reads 1_000, 0x1f, 0b101, 190:20:30 and .5), timestamps: all start so
  // (a quantity such as 250m or 1Gi, digits then letters, is none of those)
  if (/^[-+]?\.?[0-9]/.test(s) && !/^[1-9][0-9]*[A-Za-z]+$/.test(s)) return false
  // nor anything made of a number's characters only: the `yaml` library's YAML 1.1 floats need no digit
  // ("e0", ".", "-.e1")
  if (/^[-+]?[0-9_.:]*([eE][-+]?[0-9]+)?$/.test(s)) return false
  return true
}

const escapes: Readonly<Record<string, string>> = {
  "\\": "\\x5c",
  '"': '\\"',
  "\n": "\\n",
  "\t": "\\t",
  "\r": "\\r",
  "\0": "\\0"
}

/** C0 and C1 controls but tab and newline, DEL, the line separators of YAML 1.1, the BOM, surrogates, non-characters. */
const unsafeCode = (code: number): boolean =>
  (code < 0x20 && code !== 0x09 && code !== 0x0a) ||
  (code >= 0x7f && code <= 0x9f) ||
  code === 0x2028 ||
  code === 0x2029 ||
  code === 0xfeff ||
  (code >= 0xd800 && code <= 0xdfff) ||
  code === 0xfffe ||
  code === 0xffff

/** Whether a string has anything `quoted` escapes (see `escapes` and `unsafeCode`). */
const needsEscape = /["\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]/

/** A double-quoted scalar: printable ASCII and printable non-ASCII as is, everything else escaped. */
const quoted = (s: string): string => {
  // most quoted strings need no escape (quoted for a `: ` or a leading digit): no character by character copy,
  // which allocated a string per character (the compose file of 200 services: ~8 MB for 230 KB of text)
  if (!needsEscape.test(s)) return `"${s}"`
  let out = '"'
  for (const ch of s) {
    const known = escapes[ch]
    if (known !== undefined) {
      out += known
      continue
    }
    const code = ch.codePointAt(0)!
    if (!unsafeCode(code)) out += ch
    else if (code <= 0xff) out += `\\x${code.toString(16).padStart(2, "0")}`
    else out += `\\u${code.toString(16).padStart(4, "0")}`
  }
  return `${out}"`
}

/**
 * Whether a string of several lines can be a literal block (`|`), as the `yaml` library writes a config file
 * held in a ConfigMap: only printable characters, tabs and newlines, and a first line that starts with neither
 * a space nor a newline (the block's indentation is read from it).
 */
const isBlock = (s: string): boolean => {
  if (!s.includes("\n") || s.startsWith(" ") || s.startsWith("\n") || s.startsWith("\t") || s.includes("\\"))
    return false
  for (const ch of s) if (unsafeCode(ch.codePointAt(0)!)) return false
  return true
}

/** The lines of a literal block for `s` at `indent`: its header (`|`, `|-` or `|+`) and its indented lines. */
const block = (s: string, indent: number): { readonly header: string; readonly lines: ReadonlyArray<string> } => {
  const body = s.replace(/\n+$/, "")
  const trailing = s.length - body.length
  const pad = " ".repeat(indent)
  const lines = body.split("\n").map((line) => (line === "" ? "" : pad + line))
  // clip keeps one final newline, strip none, keep all (the empty lines after the block are its own)
  if (trailing === 0) return { header: "|-", lines }
  if (trailing === 1) return { header: "|", lines }
  return { header: "|+", lines: [...lines, ...Array.from({ length: trailing - 1 }, () => "")] }
}

/** One scalar as YAML text. */
export const scalar = (value: unknown): string => {
  if (value === null || value === undefined) return "null"
  if (typeof value === "boolean") return value ? "true" : "false"
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`YamlText: ${value} is not a finite number`)
    return String(value)
  }
  if (typeof value === "string") return isPlain(value) ? value : quoted(value)
  throw new Error(`YamlText: cannot write a ${typeof value}`)
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const isCollection = (value: unknown): boolean => Array.isArray(value) || isRecord(value)

const isEmpty = (value: unknown): boolean =>
  Array.isArray(value) ? value.length === 0 : isRecord(value) && Object.keys(value).length === 0

const emptyText = (value: unknown): string => (Array.isArray(value) ? "[]" : "{}")

/** Implicit keys are limited to 1024 characters by YAML; a longer one is written as an explicit key (`? key`). */
const MAX_IMPLICIT_KEY = 1000

/** A comment as lines that each start with `#`: a line break inside it must not end the comment. */
const commentLines = (pad: string, comment: string): ReadonlyArray<string> =>
  comment.split(/\r\n|[\r\n\u0085\u2028\u2029]/).map((line) => `${pad}#${line}`)

/**
 * Appends a value after its key or dash: what follows on the same line (returned: `head`), and below it the
 * lines it needs, appended to `out`.
 */
const valueText = (out: Array<string>, item: unknown, indent: number, path: string, comments: KeyComments): string => {
  if (isCollection(item) && !isEmpty(item)) {
    writeCollection(out, item, indent, path, comments)
    return ""
  }
  if (typeof item === "string" && isBlock(item)) {
    const { header, lines } = block(item, indent)
    for (const line of lines) out.push(line)
    return ` ${header}`
  }
  return ` ${isCollection(item) ? emptyText(item) : scalar(item)}`
}

/**
 * Appends `value` (a mapping or a sequence) at `indent` spaces. `path` names the mapping for `comments`.
 * Sequences in a mapping are indented under their key, as the `yaml` library writes them. A key whose value
 * is `undefined` is left out, as JSON does.
 */
const writeCollection = (
  out: Array<string>,
  value: unknown,
  indent: number,
  path: string,
  comments: KeyComments
): void => {
  const pad = " ".repeat(indent)
  if (Array.isArray(value)) {
    for (const item of value) {
      const at = out.length
      if (isCollection(item) && !isEmpty(item)) {
        // the first line of the nested block goes after "- "
        writeCollection(out, item, indent + 2, `${path}/-`, comments)
        out[at] = `${pad}- ${out[at]!.slice(indent + 2)}`
      } else {
        out.push("")
        out[at] = `${pad}-${valueText(out, item, indent + 2, `${path}/-`, comments)}`
      }
    }
    return
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    writeEntry(out, pad, key, item, indent, path, comments)
  }
}

/** Appends one `key: value` of a mapping at `indent` (`pad`), its comments above it; nothing for `undefined`. */
const writeEntry = (
  out: Array<string>,
  pad: string,
  key: string,
  item: unknown,
  indent: number,
  path: string,
  comments: KeyComments
): void => {
  {
    if (item === undefined) return
    for (const comment of comments.get(`${path}/${key}`) ?? []) out.push(...commentLines(pad, comment))
    const k = scalar(key)
    // the key's line first, written once its value's head is known
    const at = out.length
    out.push("")
    if (k.length > MAX_IMPLICIT_KEY) out.push("")
    const head = valueText(out, item, indent + 2, `${path}/${key}`, comments)
    if (k.length <= MAX_IMPLICIT_KEY) out[at] = `${pad}${k}:${head}`
    else {
      out[at] = `${pad}? ${k}`
      out[at + 1] = `${pad}:${head}`
    }
  }
}

/**
 * The text of one entry `key: value` of a mapping at `indent` spaces, as `yamlText` writes it inside that
 * mapping (`path` names the mapping for `comments`), ending with a newline: a large mapping written one entry
 * at a time leaves its garbage young (the compose file of 200 services, written whole, raised the
 * supervisor's peak memory by ~5 MB).
 */
export const yamlEntry = (
  key: string,
  value: unknown,
  indent: number,
  path: string,
  comments: KeyComments = new Map()
): string => {
  const out: Array<string> = []
  writeEntry(out, " ".repeat(indent), key, value, indent, path, comments)
  return `${out.join("\n")}\n`
}

/**
 * The YAML text of a mapping, block style, keys in their order, ending with a newline. `header` lines are
 * written first as comments, then an empty line. `comments` puts comment lines above keys: its keys are the
 * path of a key from the top (`/processes/api`).
 */
export const yamlText = (
  value: Record<string, unknown>,
  options: { readonly header?: ReadonlyArray<string>; readonly comments?: KeyComments } = {}
): string => {
  const out: Array<string> = []
  if (options.header !== undefined && options.header.length > 0) {
    for (const line of options.header) out.push(...commentLines("", line))
    out.push("")
  }
  const before = out.length
  writeCollection(out, value, 0, "", options.comments ?? new Map())
  if (out.length === before) out.push("{}")
  return `${out.join("\n")}\n`
}
