/**
 * `npm run bench -- --quick` on a tiny stack: the benchmark runs end to end and prints its table, with a figure
 * for every row, and leaves no process behind. No timing is asserted (benchmarks are not tests). Runs the same
 * command as `npm run bench` after its build step (`npm test` has just built dist/). process-compose takes part
 * when it is built (CI builds it), else the bench runs core alone.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const repo = join(import.meta.dirname, "..")
const havePc = existsSync(process.env.PROCESS_COMPOSE_BIN ?? join(repo, ".dep", "tools", "process-compose"))

const runBench = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(repo, "test", "bench", "bench.ts"), ...args],
      { cwd: repo, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error.code as number | undefined) ?? 1) : 0, stdout, stderr })
    )
  })

describe("npm run bench -- --quick", () => {
  it("prints the table with every row, core and the floor measured, and leaves nothing running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "core-bench-smoke-"))
    try {
      const json = join(dir, "samples.json")
      const markdown = join(dir, "table.md")
      const svg = join(dir, "curve.svg")
      const { code, stdout, stderr } = await runBench([
        "--quick",
        "--runs",
        "1",
        "--scale",
        "4",
        "--lines",
        "20000",
        "--idle",
        "1",
        "--repeats",
        "1",
        "--json",
        json,
        "--markdown",
        markdown,
        "--curve",
        "2,3",
        "--curve-idle",
        "1",
        "--svg",
        svg,
        ...(havePc ? [] : ["--no-pc"])
      ])
      expect(stderr, stderr).not.toContain("left behind")
      expect(code, `${stdout}\n${stderr}`).toBe(0)

      const lines = stdout.trim().split("\n")
      expect(lines[0]).toBe("1 run(s); median (min–max); core/pc is the ratio of the medians")
      expect(lines[1]).toMatch(/^row\s+core\s+process-compose\s+core\/pc\s+floor\s+target\s+met$/)
      const rows = lines.slice(2)
      const expected = [
        /^0\. up -d to ready, one service/,
        /^1\. ready, 3-level chain/,
        /^2\. scale: 4 services ready/,
        /^2\. scale: supervisor peak RSS/,
        /^2\. scale: supervisor CPU, 1 s idle/,
        /^3\. shutdown: down of 4, all exited/,
        /^2b\. 4 services that only run/,
        /^2b\. only run: all 4 running, polled every 20 ms/,
        /^2b\. only run: supervisor peak RSS/,
        /^2b\. only run: down of 4/,
        /^4\. CLI round trip/,
        /^5\. logs: 20000 lines \(1 MB\) in the file/,
        /^5\. logs: lines lost\s+0\s/,
        /^5\. logs: supervisor CPU time meanwhile/,
        /^6\. restart after SIGKILL/,
        ...["ready", "supervisor peak RSS", "idle CPU", "down, all exited"].flatMap((figure) => [
          new RegExp(`^7\\. curve: 2 services, ${figure}`),
          new RegExp(`^7\\. curve: 3 services, ${figure}`),
          new RegExp(`^7\\. curve: ${figure}.*, per added service \\(slope\\)`)
        ]),
        /^8\. sampling: 4 process groups, CPU at the 2 s interval/
      ]
      expect(rows.length, stdout).toBe(expected.length)
      for (const [i, row] of rows.entries()) expect(row, stdout).toMatch(expected[i]!)
      // every row has a core figure; process-compose's too when it ran (sampling is core's alone)
      for (const row of rows) {
        const cells = row.split(/\s{2,}/)
        expect(cells[1], stdout).toMatch(/^-?\d/)
        // row 0 is core's detached start against its own foreground start, row 8 core's sampler: no process-compose figure
        // nor, for a down, when every run of process-compose's sat out its services' grace period (left out)
        const pcLeftOut = /at its 5 s timeout left out/.test(row) && cells[2] === "-"
        if (havePc && !row.startsWith("0.") && !row.startsWith("8.") && !pcLeftOut)
          expect(cells[2], stdout).toMatch(/^-?\d/)
      }

      const samples = JSON.parse(readFileSync(json, "utf8")).samples as Record<string, { core: Array<number> }>
      expect(samples["logs.lost"]?.core).toEqual([0])
      for (const [figure, s] of Object.entries(samples)) {
        expect(s.core.length, figure).toBeGreaterThan(0)
        for (const x of s.core) expect(Number.isFinite(x), figure).toBe(true)
      }
      // one line per orchestrator in each of the four panels; none for process-compose's downs when fewer
      // than two of its curve's downs have a figure (the others sat out their grace period: left out, as in the
      // rows), since a line needs two points
      const pcCurveDownsLeftOut =
        rows
          .filter((row) => /^7\. curve: \d+ services, down/.test(row))
          .filter((row) => !(/at its 5 s timeout left out/.test(row) && row.split(/\s{2,}/)[2] === "-")).length < 2
      const plot = readFileSync(svg, "utf8")
      expect(plot.match(/<polyline /g)?.length, stdout).toBe(havePc ? (pcCurveDownsLeftOut ? 7 : 8) : 4)
      expect(readFileSync(markdown, "utf8")).toContain(
        "| row | core | process-compose | core/pc | floor | target | met |"
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 300_000)
})
