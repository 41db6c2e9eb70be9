/**
 * A sparkline as SVG path data: the line through the values and the area under it, broken where a value is
 * missing (no process then). Pure, for the page's bundle.
 */

export interface Sparkline {
  /** Path of the line (empty when no value is known). */
  readonly line: string
  /** Closed path of the area under the line. */
  readonly area: string
}

/**
 * `values` spread over `capacity` slots of `width` (the newest at the right edge), scaled so that the largest value
 * (at least `floor`) plus `headroom` touches the top of `height`.
 */
export const sparkline = (
  values: ReadonlyArray<number | null>,
  options: {
    readonly width: number
    readonly height: number
    readonly capacity: number
    readonly floor?: number
    /** Room above the largest value, as a fraction of it (0.2: the largest value at 1/1.2 of the height). */
    readonly headroom?: number
  }
): Sparkline => {
  const { width, height, capacity } = options
  const known = values.filter((v): v is number => v !== null)
  const max = Math.max(options.floor ?? 0, ...known) * (1 + (options.headroom ?? 0))
  const step = width / Math.max(1, capacity - 1)
  const offset = width - (values.length - 1) * step
  const pad = 1
  const y = (v: number) => (max <= 0 ? height - pad : height - pad - (v / max) * (height - 2 * pad))
  const runs: Array<Array<[number, number]>> = []
  let run: Array<[number, number]> = []
  values.forEach((v, i) => {
    if (v === null) {
      if (run.length > 0) runs.push(run)
      run = []
    } else run.push([offset + i * step, y(v)])
  })
  if (run.length > 0) runs.push(run)
  const fmt = (n: number) => n.toFixed(1)
  const line = runs
    .map((r) => (r.length === 1 ? [r[0]!, [r[0]![0] + 0.5, r[0]![1]] as [number, number]] : r))
    .map((r) => r.map(([x, yy], i) => `${i === 0 ? "M" : "L"}${fmt(x)},${fmt(yy)}`).join(""))
    .join("")
  const area = runs
    .filter((r) => r.length > 1)
    .map(
      (r) =>
        `M${fmt(r[0]![0])},${height}${r.map(([x, yy]) => `L${fmt(x)},${fmt(yy)}`).join("")}L${fmt(r.at(-1)![0])},${height}Z`
    )
    .join("")
  return { line, area }
}
