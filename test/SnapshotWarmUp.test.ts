/**
 * The supervisor snapshot's warm-up (`SnapshotWarmUp`) runs a real stack at build time; whatever it leaves in
 * the process is in every supervisor started from the snapshot. Here it runs in a Node of its own with Node's
 * internals exposed, as the build runs it, and Node's timer lists are read once its event loop has run dry
 * (when the build takes the snapshot).
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { join } from "node:path"
import { eventually, processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const script = `
import { createRequire } from "node:module"
import { warmUp } from ${JSON.stringify(join(import.meta.dirname, "..", "src", "SnapshotWarmUp.ts"))}
const { timerListMap } = createRequire(import.meta.url)("internal/timers")
process.on("beforeExit", () => process.stdout.write(JSON.stringify(Object.keys(timerListMap))))
await warmUp()
`

describe("the supervisor snapshot's warm-up", () => {
  it("runs a stack up and down and leaves no timer list or process behind (it fails itself on a handle or listener left)", async () => {
    // its own temporary folder: the services' command lines hold their data folder, inside it
    const tmp = tempDir("core-warm-up-test-")
    try {
      const run = spawnSync(
        process.execPath,
        ["--expose-internals", "--import", "tsx", "--input-type=module", "-e", script],
        { encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH, TMPDIR: tmp } }
      )
      expect(run.status, run.stderr).toBe(0)
      // an unref'd timer cleared during the run left its list: Node then never set a later timer of the
      // snapshot's supervisor (SnapshotWarmUp's header)
      expect(JSON.parse(run.stdout)).toEqual([])
      expect(processesMentioning(tmp)).toEqual([])
    } finally {
      expect(await eventually(() => processesMentioning(tmp).length === 0)).toBe(true)
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })
})
