/**
 * The supervisor snapshot's warm-up (`SnapshotWarmUp`) runs a real stack at build time; whatever it leaves in
 * the process is in every supervisor started from the snapshot. Here it runs in a Node of its own with Node's
 * internals exposed, as the build runs it, and Node's timer lists are read once its event loop has run dry
 * (when the build takes the snapshot).
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { WARM_UP_MARK } from "../src/SnapshotWarmUp.js"
import { processesMentioning } from "./support/Processes.js"

const script = `
import * as timers from "internal/timers"
import { warmUp } from ${JSON.stringify(join(import.meta.dirname, "..", "src", "SnapshotWarmUp.ts"))}
process.on("beforeExit", () => {
  const lists = timers.timerListMap ?? timers.default?.timerListMap
  process.stdout.write(JSON.stringify(Object.keys(lists)))
})
await warmUp()
`

describe("the supervisor snapshot's warm-up", () => {
  it("runs a stack up and down and leaves no timer list or process behind (the warm-up itself fails on a handle or listener left)", () => {
    const run = spawnSync(
      process.execPath,
      ["--expose-internals", "--import", "tsx", "--input-type=module", "-e", script],
      {
        encoding: "utf8",
        timeout: 60_000,
        env: { PATH: process.env.PATH, HOME: process.env.HOME }
      }
    )
    expect(run.status, run.stderr).toBe(0)
    // an unref'd timer cleared during the run left its list: Node then never set a later timer of the snapshot's
    // supervisor (SnapshotWarmUp's header)
    expect(JSON.parse(run.stdout)).toEqual([])
    expect(processesMentioning(WARM_UP_MARK)).toEqual([])
  })
})
