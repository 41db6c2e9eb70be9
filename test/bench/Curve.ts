/**
 * The pure half of the scaling curve: the cost per added service (the slope of a least-squares line through
 * the medians) and the plot, an SVG of one panel per figure with a line per orchestrator.
 */

/** One figure of the curve, for one orchestrator: its median at each stack size. */
export interface Series {
  readonly label: string
  readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>
}

/** The least-squares line through `points`: `y = intercept + slope * x`; undefined with fewer than two sizes. */
export const fitLine = (
  points: ReadonlyArray<{ readonly x: number; readonly y: number }>
): { readonly slope: number; readonly intercept: number } | undefined => {
  const finite = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
  const n = finite.length
  if (n < 2) return undefined
  const mx = finite.reduce((a, p) => a + p.x, 0) / n
  const my = finite.reduce((a, p) => a + p.y, 0) / n
  const sxx = finite.reduce((a, p) => a + (p.x - mx) ** 2, 0)
  if (sxx === 0) return undefined
  const slope = finite.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0) / sxx
  return { slope, intercept: my - slope * mx }
}

/** One panel of the plot. */
export interface Panel {
  readonly title: string
  /** Unit of the y axis, e.g. "ms". */
  readonly unit: string
  readonly series: ReadonlyArray<Series>
}

const COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df"] as const

const escapeXml = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;")

/** A round step for about `ticks` ticks up to `max`. */
const niceStep = (max: number, ticks: number): number => {
  const raw = max / ticks
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const scaled = raw / magnitude
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * magnitude
}

const formatTick = (v: number): string =>
  Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k` : `${Number(v.toFixed(2))}`

/** The panels side by side as one SVG document (linear axes from 0, a legend per panel). */
export const renderSvg = (panels: ReadonlyArray<Panel>, caption: string): string => {
  const width = 340
  const height = 260
  const margin = { left: 56, right: 14, top: 30, bottom: 40 }
  const columns = Math.min(2, panels.length)
  const rows = Math.ceil(panels.length / columns)
  const out: Array<string> = []
  const totalW = columns * width
  const totalH = rows * height + 28
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${totalH}" viewBox="0 0 ${totalW} ${totalH}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="${totalH - 10}" fill="#555">${escapeXml(caption)}</text>`
  )
  panels.forEach((panel, i) => {
    const ox = (i % columns) * width
    const oy = Math.floor(i / columns) * height
    const plotW = width - margin.left - margin.right
    const plotH = height - margin.top - margin.bottom
    const xs = panel.series.flatMap((s) => s.points.map((p) => p.x))
    const ys = panel.series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite)
    const xMax = Math.max(1, ...xs)
    const yStep = niceStep(Math.max(Number.EPSILON, ...ys, 0) || 1, 4)
    const yMax = Math.max(yStep, Math.ceil(Math.max(0, ...ys) / yStep) * yStep)
    const px = (x: number) => ox + margin.left + (x / xMax) * plotW
    const py = (y: number) => oy + margin.top + plotH - (y / yMax) * plotH
    out.push(
      `<text x="${ox + margin.left}" y="${oy + 18}" font-weight="bold">${escapeXml(`${panel.title} (${panel.unit})`)}</text>`
    )
    for (let y = 0; y <= yMax + yStep / 2; y += yStep) {
      out.push(
        `<line x1="${px(0)}" y1="${py(y)}" x2="${px(xMax)}" y2="${py(y)}" stroke="#ddd"/>`,
        `<text x="${px(0) - 4}" y="${py(y) + 4}" text-anchor="end" fill="#555">${formatTick(y)}</text>`
      )
    }
    for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
      out.push(`<text x="${px(x)}" y="${py(0) + 14}" text-anchor="middle" fill="#555">${x}</text>`)
    }
    out.push(
      `<text x="${ox + margin.left + plotW / 2}" y="${py(0) + 28}" text-anchor="middle" fill="#555">services</text>`
    )
    panel.series.forEach((series, j) => {
      const colour = COLOURS[j % COLOURS.length]
      const pts = series.points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x)
      if (pts.length > 0) {
        out.push(
          `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")}"/>`,
          ...pts.map((p) => `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${colour}"/>`)
        )
      }
      out.push(
        `<rect x="${ox + margin.left + 8}" y="${oy + margin.top + 4 + j * 14}" width="10" height="3" fill="${colour}"/>`,
        `<text x="${ox + margin.left + 22}" y="${oy + margin.top + 9 + j * 14}">${escapeXml(series.label)}</text>`
      )
    })
  })
  out.push("</svg>")
  return `${out.join("\n")}\n`
}
