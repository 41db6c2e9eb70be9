/**
 * Samples the CPU and memory of every service's whole process group (leader and descendants) from `/proc`
 * every few seconds, and keeps the last 15 minutes in memory. One sweep reads `/proc/<pid>/stat` of every
 * process of the machine once (a group's members are found by their group id, so a grandchild that was
 * reparented still counts); `npm run bench` measures what that costs. On a system without `/proc` every value
 * is null.
 */
import { Effect, PubSub, Schedule, type Scope, Stream } from "effect"
import * as fs from "node:fs"
import { performance } from "node:perf_hooks"
import { type ProcStat, parseProcStat } from "../process/ProcTable.js"
import { type GroupUsage, groupUsage, type Reading } from "./GroupUsage.js"

/** Default time between two sweeps. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 2_000

/** How much history is kept. */
export const HISTORY_MS = 15 * 60_000

/** Linux's USER_HZ, the unit of the tick counts in `/proc/<pid>/stat`, fixed at 100 for user space. */
const CLOCK_TICKS = 100

/** The current use of one service; null where it has no process or nothing was measured yet. */
export interface ServiceUsage {
  readonly name: string
  /** Percent of one core over the last interval. */
  readonly cpu: number | null
  /** Resident memory of its process group, bytes. */
  readonly rss: number | null
}

/** One sweep: the use of every service at `time` (epoch ms). */
export interface UsageSample {
  readonly time: number
  readonly services: ReadonlyArray<ServiceUsage>
}

/** The kept history: one time axis, and per service one value per time (null: no process then). */
export interface UsageHistory {
  readonly intervalMs: number
  readonly times: ReadonlyArray<number>
  readonly services: ReadonlyArray<{
    readonly name: string
    readonly cpu: ReadonlyArray<number | null>
    readonly rss: ReadonlyArray<number | null>
  }>
}

export interface ResourceSampler {
  readonly intervalMs: number
  /** The latest use of every service, by name. */
  readonly latest: Effect.Effect<ReadonlyMap<string, ServiceUsage>>
  /** The history, or only the samples taken after `since` (epoch ms). */
  readonly history: (since?: number) => Effect.Effect<UsageHistory>
  /** Every new sample, from the moment of subscription. */
  readonly samples: Stream.Stream<UsageSample>
}

/** A service and the process group it runs in now (its pid), or null. */
export interface Watched {
  readonly name: string
  readonly pid: number | null
}

const pageSize = (): number => {
  try {
    const residentPages = Number(fs.readFileSync("/proc/self/statm", "utf8").split(" ")[1])
    const ratio = process.memoryUsage().rss / residentPages
    // the two readings are a moment apart: the nearest power of two is the page size
    return 2 ** Math.round(Math.log2(ratio))
  } catch {
    return 4096
  }
}

/** Sweeps between two full scans of `/proc` (see `procScanner`). */
const FULL_SCAN_EVERY = 30

/**
 * Reads `/proc/<pid>/stat` of the processes whose group is in the set asked for. A process found outside those
 * groups is not read again while it lives, unless the set gains a group or every `FULL_SCAN_EVERY` sweeps (a pid
 * reused for one of our processes, or a process that joined a group, is counted again within that many sweeps).
 * The cost then grows with the processes of the watched groups, not with every process of the machine.
 */
export const procScanner = (fullScanEvery = FULL_SCAN_EVERY) => {
  let foreign = new Set<number>()
  let known = new Set<number>()
  let sweeps = 0
  return (groups: ReadonlySet<number>): ReadonlyArray<ProcStat> => {
    const found: Array<ProcStat> = []
    if (groups.size === 0) return found
    let entries: ReadonlyArray<string>
    try {
      entries = fs.readdirSync("/proc")
    } catch {
      return found
    }
    const full = sweeps++ % fullScanEvery === 0 || [...groups].some((g) => !known.has(g))
    if (full) foreign = new Set()
    known = new Set(groups)
    const stillForeign = new Set<number>()
    for (const entry of entries) {
      const c = entry.charCodeAt(0)
      if (c < 48 || c > 57) continue
      const pid = Number(entry)
      if (foreign.has(pid)) {
        stillForeign.add(pid)
        continue
      }
      let text: string
      try {
        text = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
      } catch {
        continue // ended since readdir
      }
      const stat = parseProcStat(text)
      if (stat === undefined) continue
      if (groups.has(stat.pgid)) found.push(stat)
      else stillForeign.add(pid)
    }
    foreign = stillForeign
    return found
  }
}

const round = (x: number, digits: number) => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/**
 * Starts sampling the services that `watched` lists (read at each sweep, so restarts and new pids are followed)
 * every `intervalMs`, until the scope closes.
 */
export const makeResourceSampler = (
  watched: Effect.Effect<ReadonlyArray<Watched>>,
  options: {
    readonly intervalMs?: number
    /** How much history to keep (default 15 minutes). */
    readonly historyMs?: number
  } = {}
): Effect.Effect<ResourceSampler, never, Scope.Scope> =>
  Effect.gen(function* () {
    const intervalMs = options.intervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS
    const capacity = Math.max(2, Math.ceil((options.historyMs ?? HISTORY_MS) / intervalMs))
    const units = { clockTicks: CLOCK_TICKS, pageSize: pageSize() }
    const hub = yield* PubSub.sliding<UsageSample>(16)
    const scan = procScanner()

    // a ring of `capacity` sweeps: one time axis, one cpu and one rss column per service (NaN: no value)
    const times = new Float64Array(capacity)
    const columns = new Map<string, { cpu: Float64Array; rss: Float64Array }>()
    let count = 0
    let previous: Reading | undefined
    let latest: ReadonlyMap<string, ServiceUsage> = new Map()

    const columnOf = (name: string) => {
      let column = columns.get(name)
      if (column === undefined) {
        column = { cpu: new Float64Array(capacity).fill(Number.NaN), rss: new Float64Array(capacity).fill(Number.NaN) }
        columns.set(name, column)
      }
      return column
    }

    const sweep = Effect.gen(function* () {
      const services = yield* watched
      const groups = new Set(services.flatMap((s) => (s.pid === null ? [] : [s.pid])))
      const reading: Reading = { at: performance.now(), processes: scan(groups) }
      const usage = groupUsage(previous, reading, groups, units)
      previous = reading
      const time = Date.now()
      const slot = count % capacity
      times[slot] = time
      const now = new Map<string, ServiceUsage>()
      for (const service of services) {
        const group: GroupUsage | undefined = service.pid === null ? undefined : usage.get(service.pid)
        const alive = group !== undefined && group.processes > 0
        const cpu = alive && group.cpu !== null ? round(group.cpu, 2) : null
        const rss = alive ? group.rss : null
        const column = columnOf(service.name)
        column.cpu[slot] = cpu ?? Number.NaN
        column.rss[slot] = rss ?? Number.NaN
        now.set(service.name, { name: service.name, cpu, rss })
      }
      for (const [name, column] of columns) {
        if (!now.has(name)) column.cpu[slot] = column.rss[slot] = Number.NaN
      }
      count++
      latest = now
      yield* PubSub.publish(hub, { time, services: [...now.values()] })
    })

    yield* sweep.pipe(Effect.repeat(Schedule.spaced(intervalMs)), Effect.forkScoped)

    const history = (since = Number.NEGATIVE_INFINITY): Effect.Effect<UsageHistory> =>
      Effect.sync(() => {
        const n = Math.min(count, capacity)
        const slots: Array<number> = []
        for (let i = count - n; i < count; i++) {
          const slot = i % capacity
          if (times[slot]! > since) slots.push(slot)
        }
        const value = (column: Float64Array, slot: number) => (Number.isNaN(column[slot]!) ? null : column[slot]!)
        return {
          intervalMs,
          times: slots.map((slot) => times[slot]!),
          services: [...columns].map(([name, column]) => ({
            name,
            cpu: slots.map((slot) => value(column.cpu, slot)),
            rss: slots.map((slot) => value(column.rss, slot))
          }))
        }
      })

    return {
      intervalMs,
      latest: Effect.sync(() => latest),
      history,
      samples: Stream.fromPubSub(hub)
    }
  })
