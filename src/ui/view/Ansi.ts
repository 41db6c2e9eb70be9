/**
 * ANSI colour escapes in a line of output, as styled segments for the log panel. SGR sequences (`ESC[...m`)
 * set the style: bold, dim, italic, underline, the 16 colours, 256 colours and 24-bit colours, for text and
 * background; every other escape sequence is dropped. Pure, for the page's bundle.
 */

/** A segment's look; colours as CSS hex. Absent: the panel's default. */
export interface AnsiStyle {
  readonly fg?: string
  readonly bg?: string
  readonly bold?: boolean
  readonly dim?: boolean
  readonly italic?: boolean
  readonly underline?: boolean
}

export interface AnsiSegment {
  readonly text: string
  readonly style: AnsiStyle
}

/** The 16 basic colours, tuned to read on the panel's dark background. */
export const BASIC_COLOURS: ReadonlyArray<string> = [
  "#4b5263",
  "#ef6b73",
  "#8fd18b",
  "#e5c07b",
  "#61afef",
  "#c678dd",
  "#56b6c2",
  "#d7dae0",
  "#7f848e",
  "#ff8b92",
  "#a9e3a5",
  "#f0d197",
  "#8cc8ff",
  "#dca0ee",
  "#7fd3dc",
  "#ffffff"
]

const hex = (n: number) => n.toString(16).padStart(2, "0")

/** One of xterm's 256 colours. */
export const colour256 = (n: number): string => {
  if (n < 16) return BASIC_COLOURS[n]!
  if (n < 232) {
    const i = n - 16
    const level = (v: number) => (v === 0 ? 0 : 55 + v * 40)
    return `#${hex(level(Math.floor(i / 36)))}${hex(level(Math.floor(i / 6) % 6))}${hex(level(i % 6))}`
  }
  const grey = 8 + (n - 232) * 10
  return `#${hex(grey)}${hex(grey)}${hex(grey)}`
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** Applies one SGR parameter list to `style`. */
const applySgr = (style: Mutable<AnsiStyle>, params: ReadonlyArray<number>): Mutable<AnsiStyle> => {
  let next: Mutable<AnsiStyle> = { ...style }
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!
    if (p === 0) next = {}
    else if (p === 1) next.bold = true
    else if (p === 2) next.dim = true
    else if (p === 3) next.italic = true
    else if (p === 4) next.underline = true
    else if (p === 22) {
      delete next.bold
      delete next.dim
    } else if (p === 23) delete next.italic
    else if (p === 24) delete next.underline
    else if (p >= 30 && p <= 37) next.fg = BASIC_COLOURS[p - 30]!
    else if (p >= 90 && p <= 97) next.fg = BASIC_COLOURS[p - 90 + 8]!
    else if (p === 39) delete next.fg
    else if (p >= 40 && p <= 47) next.bg = BASIC_COLOURS[p - 40]!
    else if (p >= 100 && p <= 107) next.bg = BASIC_COLOURS[p - 100 + 8]!
    else if (p === 49) delete next.bg
    else if (p === 38 || p === 48) {
      const key = p === 38 ? "fg" : "bg"
      if (params[i + 1] === 5 && params[i + 2] !== undefined) {
        next[key] = colour256(params[i + 2]! & 255)
        i += 2
      } else if (params[i + 1] === 2 && params[i + 4] !== undefined) {
        next[key] = `#${hex(params[i + 2]! & 255)}${hex(params[i + 3]! & 255)}${hex(params[i + 4]! & 255)}`
        i += 4
      }
    }
  }
  return next
}

// CSI sequences (ESC [ params final), OSC sequences (ESC ] ... BEL or ESC \), other two-byte escapes
const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?/g

/** Splits `line` into styled segments; `start` is the style carried over from earlier lines. */
export const parseAnsi = (line: string, start: AnsiStyle = {}): { segments: Array<AnsiSegment>; end: AnsiStyle } => {
  const segments: Array<AnsiSegment> = []
  let style: Mutable<AnsiStyle> = { ...start }
  let last = 0
  const push = (text: string) => {
    if (text.length > 0) segments.push({ text, style })
  }
  for (const match of line.matchAll(ESCAPES)) {
    push(line.slice(last, match.index))
    last = match.index + match[0].length
    if (match[2] === "m") {
      const params = match[1] === "" ? [0] : match[1]!.split(/[;:]/).map((x) => (x === "" ? 0 : Number(x)))
      style = applySgr(style, params)
    }
  }
  push(line.slice(last))
  return { segments, end: style }
}

/** The text of a line without its escapes (what the filter matches). */
export const stripAnsi = (line: string): string => line.replace(ESCAPES, "")
