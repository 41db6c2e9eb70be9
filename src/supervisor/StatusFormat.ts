/**
 * How a status row's numbers read, in the `stack status` table and on the dashboard alike (pure: the page's
 * bundle imports it too).
 */

/** A duration as the table shows it: `45s`, `3m04s`, `2h05m`, `3d04h`. */
export const formatUptime = (ms: number): string => {
  const s = Math.max(0, Math.floor(ms / 1000))
  const pad = (n: number) => String(n).padStart(2, "0")
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`
}

/** CPU in percent of one core: `0.4%`, `12%`, `230%`; `-` when unknown. */
export const formatCpu = (cpu: number | null | undefined): string => {
  if (cpu === null || cpu === undefined) return "-"
  return cpu < 10 ? `${cpu.toFixed(1)}%` : `${Math.round(cpu)}%`
}

/** Bytes in binary units: `512K`, `23.4M`, `1.2G`; `-` when unknown. */
export const formatBytes = (bytes: number | null | undefined): string => {
  if (bytes === null || bytes === undefined) return "-"
  const units = ["B", "K", "M", "G", "T"]
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value}B` : `${value < 10 ? value.toFixed(1) : Math.round(value)}${units[unit]}`
}
