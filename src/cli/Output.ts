/**
 * Writing to the terminal: colours only for a TTY without NO_COLOR, and the foreground `name | line` prefix.
 */

/** Whether stdout wants colour: a TTY, and neither NO_COLOR nor TERM=dumb. */
export const useColour = (stream: NodeJS.WriteStream = process.stdout): boolean =>
  stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== "dumb"

const palette = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92, 94]

/** A prefixer for `name | text` lines, names padded to a common width, one colour per service. */
export const linePrefixer = (names: ReadonlyArray<string>, colour: boolean) => {
  const width = Math.max(4, ...names.map((n) => n.length))
  const prefixes = new Map(
    names.map((name, i) => {
      const padded = name.padEnd(width)
      return [name, colour ? `\x1b[${palette[i % palette.length]}m${padded} |\x1b[0m ` : `${padded} | `] as const
    })
  )
  return (name: string) => prefixes.get(name) ?? `${name.padEnd(width)} | `
}

/** Dim text for the supervisor's own lines. */
export const dim = (text: string, colour: boolean) => (colour ? `\x1b[2m${text}\x1b[0m` : text)
