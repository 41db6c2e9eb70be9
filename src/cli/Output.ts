/**
 * Writing to the terminal: colours only for a TTY without NO_COLOR, and the foreground `name | line` prefix.
 * Colours come from `@effect/printer-ansi`, which @effect/cli bundles anyway (measured: the bundle grows by
 * under 1 KB). It has no faint style, so the supervisor's own lines are bright black (grey).
 */
import * as Ansi from "@effect/printer-ansi/Ansi"
import * as AnsiDoc from "@effect/printer-ansi/AnsiDoc"
import * as Doc from "@effect/printer/Doc"

/** Whether stdout wants colour: a TTY, and neither NO_COLOR nor TERM=dumb. */
export const useColour = (stream: NodeJS.WriteStream = process.stdout): boolean =>
  stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== "dumb"

const palette = [
  Ansi.cyan,
  Ansi.yellow,
  Ansi.magenta,
  Ansi.green,
  Ansi.blue,
  Ansi.redBright,
  Ansi.cyanBright,
  Ansi.yellowBright,
  Ansi.magentaBright,
  Ansi.greenBright,
  Ansi.blueBright
]

const painted = (text: string, colour: Ansi.Ansi): string =>
  Doc.text(text).pipe(Doc.annotate(colour), AnsiDoc.render({ style: "pretty" }))

/** A prefixer for `name | text` lines, names padded to a common width, one colour per service. */
export const linePrefixer = (names: ReadonlyArray<string>, colour: boolean) => {
  const width = Math.max(4, ...names.map((n) => n.length))
  const prefixes = new Map(
    names.map((name, i) => {
      const label = `${name.padEnd(width)} |`
      return [name, `${colour ? painted(label, palette[i % palette.length]!) : label} `] as const
    })
  )
  return (name: string) => prefixes.get(name) ?? `${name.padEnd(width)} | `
}

/** Muted text for the supervisor's own lines. */
export const dim = (text: string, colour: boolean) => (colour ? painted(text, Ansi.blackBright) : text)

/** A batcher of output text: `push` queues, `flush` writes whatever is queued in one call. */
export interface LineBatcher {
  readonly push: (text: string) => void
  readonly flush: () => void
}

/**
 * Joins the text pushed within one turn of the event loop into one `write`, so that a flood of lines costs a few
 * large writes instead of a system call per line (stdout is written synchronously when it is a file, as for the
 * background supervisor's `supervisor.log`). Order is kept. Writes at once when `maxChars` are queued; call
 * `flush` before the process exits.
 */
export const lineBatcher = (write: (text: string) => void, maxChars = 64 * 1024): LineBatcher => {
  let parts: Array<string> = []
  let size = 0
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    if (parts.length === 0) return
    const text = parts.join("")
    parts = []
    size = 0
    write(text)
  }
  return {
    push: (text) => {
      parts.push(text)
      size += text.length
      if (size >= maxChars) flush()
      else if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
    flush
  }
}
