/**
 * The pure half of the benchmarks: samples to a median and a spread, rows to the printed table.
 */

/** Median and spread of a set of samples. */
export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

/** The median (mean of the two middle values for an even count) and the range of `samples`; undefined when empty. */
export const summarize = (samples: ReadonlyArray<number>): Summary | undefined => {
  const sorted = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  const n = sorted.length
  if (n === 0) return undefined
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
  return { median, min: sorted[0]!, max: sorted[n - 1]!, n }
}

/** How a measured value is printed and compared. */
export interface Unit {
  /** Suffix, e.g. "ms", "MB", "%". */
  readonly suffix: string
  /** Decimals shown. */
  readonly decimals: number
}

export const ms: Unit = { suffix: "ms", decimals: 0 }
export const mb: Unit = { suffix: "MB", decimals: 1 }
export const percent: Unit = { suffix: "%", decimals: 2 }
export const count: Unit = { suffix: "", decimals: 0 }

/** A target: the core median must be below `limit` (computed from the row's own figures, e.g. a floor). */
export interface Target {
  /** How the target reads, e.g. "< floor + 250 ms". */
  readonly text: string
  /** The limit the core median must stay under (or at, for `atMost`). */
  readonly limit: (row: {
    readonly core?: Summary
    readonly pc?: Summary
    readonly floor?: Summary
  }) => number | undefined
  /** The median may equal the limit (counts such as lost lines: 0 is met). */
  readonly atMost?: boolean
}

/** One row of the table. */
export interface Row {
  readonly name: string
  readonly unit: Unit
  readonly core?: Summary
  readonly pc?: Summary
  readonly floor?: Summary
  /** What the floor is, e.g. "node -e 0". */
  readonly floorText?: string
  readonly target?: Target
}

/** A summary as `median (min–max)`, or `-` when there is none. */
export const formatSummary = (s: Summary | undefined, unit: Unit): string => {
  if (s === undefined) return "-"
  const f = (x: number) => x.toFixed(unit.decimals)
  const value = `${f(s.median)}${unit.suffix === "" ? "" : ` ${unit.suffix}`}`
  return s.n > 1 && s.min !== s.max ? `${value} (${f(s.min)}–${f(s.max)})` : value
}

/** core / process-compose, as `0.42x`, or `-`. */
export const formatRatio = (core: Summary | undefined, pc: Summary | undefined): string => {
  if (core === undefined || pc === undefined) return "-"
  if (pc.median === 0) return core.median === 0 ? "1.00x" : "-"
  return `${(core.median / pc.median).toFixed(2)}x`
}

/** Whether the core median meets the row's target: "yes", "NO", or "" without target or figures. */
export const verdict = (row: Row): string => {
  if (row.target === undefined || row.core === undefined) return ""
  const limit = row.target.limit(row)
  if (limit === undefined) return ""
  const ok = row.target.atMost ? row.core.median <= limit : row.core.median < limit
  return ok ? "yes" : "NO"
}

const HEADER = ["row", "core", "process-compose", "core/pc", "floor", "target", "met"] as const

/** The cells of a row, in `HEADER` order. */
export const cells = (row: Row): ReadonlyArray<string> => [
  row.name,
  formatSummary(row.core, row.unit),
  formatSummary(row.pc, row.unit),
  formatRatio(row.core, row.pc),
  row.floor === undefined
    ? (row.floorText ?? "")
    : `${formatSummary(row.floor, row.unit)} ${row.floorText ?? ""}`.trim(),
  row.target?.text ?? "",
  verdict(row)
]

/** The table as aligned plain text. */
export const renderText = (rows: ReadonlyArray<Row>): string => {
  const table = [[...HEADER], ...rows.map((r) => [...cells(r)])]
  const widths = HEADER.map((_, i) => Math.max(...table.map((line) => line[i]!.length)))
  return table
    .map((line) =>
      line
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

/** The table as Markdown. */
export const renderMarkdown = (rows: ReadonlyArray<Row>): string => {
  const escapeCell = (cell: string) => cell.replaceAll("|", "\\|")
  const lines = [
    `| ${HEADER.join(" | ")} |`,
    `|${HEADER.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${cells(r).map(escapeCell).join(" | ")} |`)
  ]
  return lines.join("\n")
}
