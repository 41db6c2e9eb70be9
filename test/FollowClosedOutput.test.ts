/**
 * `core stack process logs -f NAME | head -2` must end once `head` has: the follow itself never ends, and a
 * closed stdout must not end the supervisor (`ResilientOutput`), but a command that only prints has no one left
 * to print to. It used to go on following, and spinning, for good. Real stack, built CLI, no ports.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { join } from "node:path"
import { cli } from "./support/Cli.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

describe("logs --follow into a pipe that closes", () => {
  it("ends with exit 0 once the reader is gone, and the stack goes on", async () => {
    const dir = tempDir("core-follow-pipe-")
    fs.mkdirSync(join(dir, "services", "chat"), { recursive: true })
    fs.writeFileSync(
      join(dir, "services", "chat", "service.json"),
      JSON.stringify({
        process: { command: "sh", args: ["-c", 'i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.01; done', dir] }
      })
    )
    const core = (...args: Array<string>) =>
      spawnSync(process.execPath, [cli, "stack", ...args, "--dir", dir], { encoding: "utf8", timeout: 60_000 })
    let follower: ReturnType<typeof spawn> | undefined
    try {
      expect(core("up", "-d").status).toBe(0)
      follower = spawn(process.execPath, [cli, "stack", "process", "logs", "-f", "chat", "--dir", dir], {
        stdio: ["ignore", "pipe", "ignore"]
      })
      let code: number | null | undefined
      follower.once("exit", (c: number | null) => {
        code = c
      })
      // read until a line of the service has come, then close the reading end, as `head -2` does
      await new Promise<void>((resolve) => {
        let seen = ""
        follower!.stdout!.on("data", (chunk: Buffer) => {
          seen += chunk.toString()
          if (/line \d+\n/.test(seen)) resolve()
        })
      })
      follower.stdout!.destroy()
      expect(await eventually(() => code !== undefined)).toBe(true)
      expect(code).toBe(0)
      // the supervisor and its service are untouched
      const status = core("status", "--json")
      expect(JSON.parse(status.stdout).map((r: { state: string }) => r.state)).toEqual(["running"])
    } finally {
      if (follower?.exitCode === null && follower.signalCode === null) follower.kill("SIGKILL")
      core("down")
      expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
