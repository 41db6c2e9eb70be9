/**
 * `npm run bench [-- options]`: core against the real process-compose, side by side, on the same manifests
 * and the same service program. Prints one table (median and range of every figure, the ratio, the floor,
 * the target); progress goes to stderr. See docs/BENCHMARKS.md.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { core, type Orchestrator, processCompose } from "./Orchestrators.js"
import { runOk } from "./Proc.js"
import {
  CHAIN_DELAYS,
  Cleanup,
  chainFloor,
  chainRun,
  chainStack,
  bareNodeRunning,
  curveStack,
  detachedRun,
  detachStack,
  foregroundRun,
  logFloor,
  logRun,
  logStack,
  plainStack,
  nodeFloor,
  RESTART_DELAY,
  restartFloor,
  restartRun,
  restartStack,
  samplingRun,
  type Settings,
  scaleFloor,
  scaleRun,
  scaleStack
} from "./Scenarios.js"
import { fitLine, type Panel, renderSvg } from "./Curve.js"
import { ensureBenchService, repoRoot, SHUTDOWN_TIMEOUT_MS, type StackDir } from "./Stacks.js"
import { count, mb, ms, percent, type Row, renderMarkdown, renderText, type Summary, summarize } from "./Table.js"

const SCENARIOS = ["detach", "chain", "cli", "scale", "plain", "logs", "restart", "curve", "sampling"] as const
type Scenario = (typeof SCENARIOS)[number]

const USAGE = `usage: npm run bench -- [options]
  --quick          a short pass: 2 runs, 20 services, 200000 log lines, 3 s idle window
  --runs N         runs of every scenario (default 5)
  --scale N        services of the scale scenario, process groups sampled (default 200)
  --lines N        lines of the log scenario (default 2000000, about 100 MB)
  --idle S         seconds of the idle CPU window (default 10)
  --repeats N      CLI calls and kills per run (default 3)
  --curve LIST     stack sizes of the scaling curve (default 10,50,200,500; --quick: 10,50)
  --curve-idle S   seconds of the curve's idle CPU window (default 5; --quick: 2)
  --svg FILE       also write the scaling curve as an SVG plot
  --only LIST      scenarios, comma-separated: ${SCENARIOS.join(",")}
  --no-pc          core alone (process-compose is otherwise built when missing)
  --markdown FILE  also write the machine and the table as Markdown
  --json FILE      also write every raw sample as JSON`

interface Options {
  readonly settings: Omit<Settings, "binary">
  readonly only: ReadonlySet<Scenario>
  readonly pc: boolean
  readonly markdown: string | undefined
  readonly json: string | undefined
  readonly svg: string | undefined
  /** Stack sizes of the scaling curve. */
  readonly curve: ReadonlyArray<number>
  readonly curveIdleSeconds: number
}

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const quick = argv.includes("--quick")
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag)
    if (i < 0) return undefined
    const v = argv[i + 1]
    if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`)
    return v
  }
  const int = (flag: string, fallback: number, min: number): number => {
    const v = value(flag)
    if (v === undefined) return fallback
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} wants an integer of at least ${min}\n${USAGE}`)
    return n
  }
  const known = new Set([
    "--quick",
    "--no-pc",
    "--runs",
    "--scale",
    "--lines",
    "--idle",
    "--repeats",
    "--only",
    "--markdown",
    "--json",
    "--svg",
    "--curve",
    "--curve-idle"
  ])
  for (const [i, arg] of argv.entries()) {
    const prev = argv[i - 1]
    const isValue = prev !== undefined && known.has(prev) && !["--quick", "--no-pc"].includes(prev)
    if (!isValue && !known.has(arg)) throw new Error(`unknown argument ${arg}\n${USAGE}`)
  }
  const only = value("--only")
  const selected = only === undefined ? SCENARIOS : only.split(",").map((s) => s.trim())
  for (const s of selected) {
    if (!(SCENARIOS as ReadonlyArray<string>).includes(s)) throw new Error(`unknown scenario ${s}\n${USAGE}`)
  }
  const curve = (value("--curve") ?? (quick ? "10,50" : "10,50,200,500")).split(",").map((s) => Number(s.trim()))
  if (curve.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`--curve wants sizes such as 10,50,200\n${USAGE}`)
  return {
    curve,
    curveIdleSeconds: int("--curve-idle", quick ? 2 : 5, 1),
    svg: value("--svg"),
    settings: {
      runs: int("--runs", quick ? 2 : 5, 1),
      scale: int("--scale", quick ? 20 : 200, 1),
      lines: int("--lines", quick ? 200_000 : 2_000_000, 1),
      idleSeconds: int("--idle", quick ? 3 : 10, 1),
      repeats: int("--repeats", 3, 1)
    },
    only: new Set(selected as ReadonlyArray<Scenario>),
    pc: !argv.includes("--no-pc"),
    markdown: value("--markdown"),
    json: value("--json")
  }
}

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`)

const versionOf = (command: string, args: ReadonlyArray<string>, pattern: RegExp): string => {
  try {
    const out = execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"] }).toString()
    return pattern.exec(out)?.[1] ?? out.trim().split("\n")[0]!
  } catch {
    return "unknown"
  }
}

/** The machine, in one Markdown list. */
const machine = (pcBinary: string | undefined): ReadonlyArray<string> => {
  const cpus = os.cpus()
  return [
    `cores: ${cpus.length} (${cpus[0]?.model.trim() ?? "unknown"})`,
    `memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `kernel: ${os.type()} ${os.release()}`,
    `load average at the end (1, 5, 15 min): ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(", ")} (other work on the machine skews the figures)`,
    `node: ${process.version}; go: ${versionOf("go", ["version"], /go version (\S+)/)}`,
    `process-compose: ${pcBinary === undefined ? "not run" : versionOf(pcBinary, ["version"], /Version:\s*(\S+)/)}`,
    `core: ${JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")).version} (${versionOf("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"], /(\S+)/)})`
  ]
}

/** Samples per figure and orchestrator. */
type Samples = Record<string, { core: Array<number>; pc: Array<number>; floor: Array<number> }>

const main = async () => {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const options = parseOptions(process.argv.slice(2))
  const binary = await ensureBenchService()
  const settings: Settings = { ...options.settings, binary }
  let pcBinary: string | undefined
  if (options.pc) {
    pcBinary = process.env.PROCESS_COMPOSE_BIN ?? path.join(repoRoot, ".dep", "tools", "process-compose")
    if (!fs.existsSync(pcBinary) && process.env.PROCESS_COMPOSE_BIN === undefined) {
      progress("building process-compose (once) with test/fixtures/compose/build-process-compose.sh")
      await runOk("bash", [path.join(repoRoot, "test", "fixtures", "compose", "build-process-compose.sh")], {
        timeoutMs: 900_000
      })
    }
  }
  const pc = pcBinary === undefined ? undefined : processCompose(pcBinary)
  if (options.pc && pc === undefined) throw new Error(`process-compose is missing: ${pcBinary}`)
  const orchestrators: ReadonlyArray<Orchestrator> = pc === undefined ? [core] : [core, pc]

  const samples: Samples = {}
  const add = (figure: string, who: "core" | "pc" | "floor", ...values: ReadonlyArray<number>) => {
    samples[figure] ??= { core: [], pc: [], floor: [] }
    samples[figure][who].push(...values)
  }
  const key = (o: Orchestrator): "core" | "pc" => (o.name === "core" ? "core" : "pc")
  /**
   * A `down`: one of process-compose's that took its services' whole grace period (it then stopped them at
   * their timeout, a wait of its own, not the cost of a shutdown) is counted aside, not in its figure, which
   * would otherwise make any ratio meaningless (in 7 of 10 runs here at times).
   */
  const timedOutDowns: Record<string, number> = {}
  const addDown = (figure: string, o: Orchestrator, ms: number) => {
    if (key(o) === "pc" && ms >= SHUTDOWN_TIMEOUT_MS) timedOutDowns[figure] = (timedOutDowns[figure] ?? 0) + 1
    else add(figure, key(o), ms)
  }
  /** A down row's name, saying how many of process-compose's runs of `figures` were left out. */
  const downName = (name: string, ...figures: ReadonlyArray<string>) => {
    const n = figures.reduce((sum, figure) => sum + (timedOutDowns[figure] ?? 0), 0)
    return n === 0
      ? name
      : `${name} (pc: ${n} run${n === 1 ? "" : "s"} at its ${SHUTDOWN_TIMEOUT_MS / 1000} s timeout left out)`
  }

  const cleanup = new Cleanup()
  const interrupted = () => {
    void cleanup.finish().then(() => process.exit(130))
  }
  process.once("SIGINT", interrupted)
  process.once("SIGTERM", interrupted)

  const { runs } = settings
  try {
    const chain = await chainStack(cleanup, binary)
    const scale = options.only.has("scale") ? await scaleStack(cleanup, settings) : undefined
    const logs = logStack(cleanup, settings)
    const restart = await restartStack(cleanup, settings)
    const detach = options.only.has("detach") ? await detachStack(cleanup, settings) : undefined
    const plain = options.only.has("plain") ? await plainStack(cleanup, settings) : undefined
    const curve = new Map<number, StackDir>()
    if (options.only.has("curve")) for (const n of options.curve) curve.set(n, await curveStack(cleanup, settings, n))
    for (let r = 1; r <= runs; r++) {
      // alternate who goes first, so that neither always runs on a warmer machine
      const order = r % 2 === 1 ? orchestrators : [...orchestrators].reverse()
      if (detach !== undefined) {
        // the foreground `up` is this row's floor: process-compose has no detached mode to compare with
        const foreground = await foregroundRun(cleanup, detach)
        const detached = await detachedRun(cleanup, core, detach)
        add("detach", "floor", foreground)
        add("detach", "core", detached)
        progress(
          `run ${r}/${runs} detach core: up -d ready in ${detached.toFixed(0)} ms, foreground up in ${foreground.toFixed(0)} ms`
        )
      }
      if (options.only.has("chain") || options.only.has("cli")) {
        add("chain", "floor", await chainFloor(cleanup, settings, chain))
        for (let i = 0; i < settings.repeats; i++) add("cli", "floor", await nodeFloor())
        for (const o of order) {
          const { readyMs, cliMs } = await chainRun(cleanup, settings, o, chain)
          add("chain", key(o), readyMs)
          add("cli", key(o), ...cliMs)
          progress(
            `run ${r}/${runs} chain ${o.name}: ready in ${readyMs.toFixed(0)} ms, CLI ${cliMs.map((x) => x.toFixed(0)).join("/")} ms`
          )
        }
      }
      if (scale !== undefined) {
        const floor = await scaleFloor(cleanup, settings, scale)
        add("scale.ready", "floor", floor.readyMs)
        add("scale.down", "floor", floor.downMs)
        for (const o of order) {
          const s = await scaleRun(cleanup, settings, o, scale)
          add("scale.ready", key(o), s.readyMs)
          add("scale.rss", key(o), s.peakRssMb)
          add("scale.cpu", key(o), s.idleCpuPercent)
          addDown("scale.down", o, s.downMs)
          progress(
            `run ${r}/${runs} scale ${o.name}: ${settings.scale} ready in ${s.readyMs.toFixed(0)} ms, peak RSS ${s.peakRssMb.toFixed(1)} MB, idle CPU ${s.idleCpuPercent.toFixed(2)} %, down in ${s.downMs.toFixed(0)} ms`
          )
        }
      }
      for (const [n, stack] of curve) {
        for (const o of order) {
          const s = await scaleRun(cleanup, settings, o, stack, options.curveIdleSeconds)
          add(`curve.${n}.ready`, key(o), s.readyMs)
          add(`curve.${n}.rss`, key(o), s.peakRssMb)
          add(`curve.${n}.cpu`, key(o), s.idleCpuPercent)
          addDown(`curve.${n}.down`, o, s.downMs)
          progress(
            `run ${r}/${runs} curve ${o.name}: ${n} ready in ${s.readyMs.toFixed(0)} ms, peak RSS ${s.peakRssMb.toFixed(1)} MB, idle CPU ${s.idleCpuPercent.toFixed(2)} %, down in ${s.downMs.toFixed(0)} ms`
          )
        }
      }
      if (plain !== undefined) {
        add("plain.running", "floor", await bareNodeRunning(cleanup, plain))
        for (const o of order) {
          // core's `up -d` is timed alone: the bench polling its API every 20 ms is work its supervisor does
          // during the start that no user asks for. "All running" is timed in a second start, with that poll
          // (process-compose has no other signal: its one start has it)
          const polled =
            o.name === "core" ? (await scaleRun(cleanup, settings, o, plain, 0, true)).allRunningMs : undefined
          const s = await scaleRun(cleanup, settings, o, plain, 1, o.name !== "core")
          add("plain.ready", key(o), s.readyMs)
          const allRunningMs = polled ?? s.allRunningMs
          if (allRunningMs !== undefined) add("plain.running", key(o), allRunningMs)
          add("plain.rss", key(o), s.peakRssMb)
          addDown("plain.down", o, s.downMs)
          progress(
            `run ${r}/${runs} plain ${o.name}: ${settings.scale} running in ${s.readyMs.toFixed(0)} ms, peak RSS ${s.peakRssMb.toFixed(1)} MB, down in ${s.downMs.toFixed(0)} ms`
          )
        }
      }
      if (options.only.has("logs")) {
        add("logs.ms", "floor", await logFloor(settings, logs.dir))
        for (const o of order) {
          const s = await logRun(cleanup, settings, o, logs)
          add("logs.ms", key(o), s.ms)
          add("logs.lost", key(o), s.lost)
          add("logs.cpu", key(o), s.cpuMs)
          progress(
            `run ${r}/${runs} logs ${o.name}: ${settings.lines} lines in ${s.ms.toFixed(0)} ms, lost ${s.lost}, supervisor CPU ${s.cpuMs.toFixed(0)} ms`
          )
        }
      }
      if (options.only.has("restart")) {
        for (let i = 0; i < settings.repeats; i++)
          add("restart", "floor", await restartFloor(cleanup, settings, restart))
        for (const o of order) {
          const s = await restartRun(cleanup, settings, o, restart)
          add("restart", key(o), ...s)
          progress(`run ${r}/${runs} restart ${o.name}: ${s.map((x) => x.toFixed(0)).join("/")} ms`)
        }
      }
      if (options.only.has("sampling")) {
        const s = await samplingRun(cleanup, settings)
        add("sampling", "core", s.percent)
        progress(
          `run ${r}/${runs} sampling: ${settings.scale} groups, ${s.sweepMs.toFixed(2)} ms of CPU per sweep, ${s.percent.toFixed(3)} % of a core`
        )
      }
    }
  } finally {
    const left = await cleanup.finish()
    if (left.length > 0) {
      process.exitCode = 1
      progress(`processes left behind (now killed): ${left.join(", ")}`)
    }
  }

  const fig = (name: string, who: "core" | "pc" | "floor"): Summary | undefined => summarize(samples[name]?.[who] ?? [])
  const row = (name: string, figure: string, unit: Row["unit"], extra: Partial<Row> = {}): Row => ({
    name,
    unit,
    ...(fig(figure, "core") ? { core: fig(figure, "core")! } : {}),
    ...(fig(figure, "pc") ? { pc: fig(figure, "pc")! } : {}),
    ...(fig(figure, "floor") ? { floor: fig(figure, "floor")! } : {}),
    ...extra
  })
  const has = (figure: string) => samples[figure] !== undefined
  const rows: Array<Row> = []
  if (has("detach")) {
    rows.push(
      row("0. up -d to ready, one service", "detach", ms, {
        floorText: "foreground up",
        target: {
          text: "< floor + 60 ms",
          limit: (r) => (r.floor === undefined ? undefined : r.floor.median + 60)
        }
      })
    )
  }
  if (has("chain")) {
    rows.push(
      row(`1. ready, 3-level chain (${CHAIN_DELAYS.join("+")} ms)`, "chain", ms, {
        floorText: "in sequence, polled 5 ms",
        // issue 14's target (round 1 had floor + 150 ms)
        target: {
          text: "< floor + 250 ms and < pc",
          limit: (r) =>
            r.floor === undefined ? undefined : Math.min(r.floor.median + 250, r.pc?.median ?? Number.POSITIVE_INFINITY)
        }
      })
    )
  }
  if (has("scale.ready")) {
    const n = settings.scale
    rows.push(
      row(`2. scale: ${n} services ready`, "scale.ready", ms, {
        floorText: "started directly",
        // issue 14's targets (round 1 had < 3000 ms and < 150 MB)
        target: { text: "< 1.0 x pc", limit: (r) => (r.pc === undefined ? undefined : r.pc.median) }
      }),
      row("2. scale: supervisor peak RSS", "scale.rss", mb, { target: { text: "< 100 MB", limit: () => 100 } }),
      row(`2. scale: supervisor CPU, ${settings.idleSeconds} s idle`, "scale.cpu", percent, {
        target: { text: "< 2 % of a core", limit: () => 2 }
      }),
      row(downName(`3. shutdown: down of ${n}, all exited`, "scale.down"), "scale.down", ms, {
        floorText: "SIGTERM to each",
        target: { text: "< 2 x pc", limit: (r) => (r.pc === undefined ? undefined : r.pc.median * 2) }
      })
    )
  }
  if (has("plain.ready")) {
    const n = settings.scale
    rows.push(
      row(`2b. ${n} services that only run (no probes), up -d`, "plain.ready", ms, {
        target: { text: "< 1.5 x pc", limit: (r) => (r.pc === undefined ? undefined : r.pc.median * 1.5) }
      }),
      row(`2b. only run: all ${n} running, polled every 20 ms`, "plain.running", ms, {
        floorText: "bare Node supervisor, no polling",
        target: { text: "< 1.5 x pc", limit: (r) => (r.pc === undefined ? undefined : r.pc.median * 1.5) }
      }),
      row("2b. only run: supervisor peak RSS", "plain.rss", mb),
      row(downName(`2b. only run: down of ${n}, all exited`, "plain.down"), "plain.down", ms)
    )
  }
  if (has("cli")) {
    rows.push(
      row("4. CLI round trip (status / process list)", "cli", ms, {
        floorText: "node -e 0",
        // issue 14's target (round 1 had 2.5x)
        target: { text: "< 1.8 x node -e 0", limit: (r) => (r.floor === undefined ? undefined : r.floor.median * 1.8) }
      })
    )
  }
  if (has("logs.ms")) {
    const mbytes = ((settings.lines * 50) / 1e6).toFixed(0)
    rows.push(
      row(`5. logs: ${settings.lines} lines (${mbytes} MB) in the file`, "logs.ms", ms, {
        floorText: "writer into a file",
        target: { text: "< 5000 ms", limit: () => 5000 }
      }),
      row("5. logs: lines lost", "logs.lost", count, { target: { text: "0", limit: () => 0, atMost: true } }),
      row("5. logs: supervisor CPU time meanwhile", "logs.cpu", ms)
    )
  }
  if (has("restart")) {
    rows.push(
      row(`6. restart after SIGKILL (service ready after ${RESTART_DELAY} ms)`, "restart", ms, {
        floorText: "service start",
        target: {
          text: "< floor + 300 ms",
          limit: (r) => (r.floor === undefined ? undefined : r.floor.median + 300)
        }
      })
    )
  }

  const panels: Array<Panel> = []
  if (options.curve.some((n) => samples[`curve.${n}.ready`] !== undefined)) {
    const figures = [
      { id: "ready", title: "ready", unit: ms, plotUnit: "ms" },
      { id: "rss", title: "supervisor peak RSS", unit: mb, plotUnit: "MB" },
      { id: "cpu", title: `idle CPU, liveness probes every 1 s`, unit: percent, plotUnit: "% of a core" },
      { id: "down", title: "down, all exited", unit: ms, plotUnit: "ms" }
    ] as const
    for (const f of figures) {
      for (const n of options.curve) {
        const name = `7. curve: ${n} services, ${f.title}`
        rows.push(row(f.id === "down" ? downName(name, `curve.${n}.down`) : name, `curve.${n}.${f.id}`, f.unit))
      }
      const series = (who: "core" | "pc") =>
        options.curve.map((n) => ({ x: n, y: fig(`curve.${n}.${f.id}`, who)?.median ?? Number.NaN }))
      const slope = (who: "core" | "pc") => {
        const line = fitLine(series(who))
        return line === undefined ? undefined : { median: line.slope, min: line.slope, max: line.slope, n: 1 }
      }
      const core = slope("core")
      const pc = slope("pc")
      const slopeName = `7. curve: ${f.title}, per added service (slope)`
      rows.push({
        name: f.id === "down" ? downName(slopeName, ...options.curve.map((n) => `curve.${n}.down`)) : slopeName,
        unit: { suffix: f.unit.suffix, decimals: f.unit.decimals + 2 },
        ...(core ? { core } : {}),
        ...(pc ? { pc } : {})
      })
      panels.push({
        title: f.title,
        unit: f.plotUnit,
        series: [
          { label: "core", points: series("core") },
          ...(pc ? [{ label: "process-compose", points: series("pc") }] : [])
        ]
      })
    }
  }

  if (has("sampling")) {
    rows.push(
      row(`8. sampling: ${settings.scale} process groups, CPU at the 2 s interval`, "sampling", percent, {
        target: { text: "< 1 % of a core", limit: () => 1 }
      })
    )
  }

  const header = `${runs} run(s); median (min–max); core/pc is the ratio of the medians`
  process.stdout.write(`${header}\n${renderText(rows)}\n`)
  const info = machine(pcBinary)
  if (options.markdown !== undefined) {
    const command = `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim()
    fs.writeFileSync(
      options.markdown,
      `${info.map((l) => `- ${l}`).join("\n")}\n- command: \`${command}\`; ${header}\n\n${renderMarkdown(rows)}\n`
    )
  }
  if (options.svg !== undefined && panels.length > 0) {
    fs.writeFileSync(options.svg, renderSvg(panels, `npm run bench, ${runs} run(s), medians; ${info[0]}; ${info[3]}`))
  }
  if (options.json !== undefined) {
    fs.writeFileSync(options.json, `${JSON.stringify({ machine: info, settings, samples }, null, 2)}\n`)
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (process.env.BENCH_DEBUG ? e.stack : e.message) : String(e)}\n`)
  process.exitCode = 1
})
