/**
 * The process's own output survives a full disk: the text is dropped and counted, a note says so once writing
 * works again, and a supervisor whose stdout and stderr are /dev/full (ENOSPC on every write) keeps its stack
 * and says in `status` how much of its output it dropped.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import { closeSync, mkdirSync, openSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { ResilientWriter } from "../src/logs/ResilientOutput.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const cli = resolve(import.meta.dirname, "../dist/core.cjs")

const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })

describe("ResilientWriter", () => {
  it("drops and counts what a full disk refuses, then notes it once and writes again", () => {
    const written: Array<string> = []
    let full = true
    const writer = new ResilientWriter(1, (_fd, bytes, offset, length) => {
      if (full) throw enospc()
      written.push(Buffer.from(bytes.subarray(offset, offset + length)).toString())
      return length
    })
    writer.write(Buffer.from("lost one\n"))
    writer.write(Buffer.from("lost two\n"))
    expect(writer.droppedBytes).toBe(18)
    expect(written).toEqual([])
    full = false
    writer.write(Buffer.from("kept\n"))
    writer.write(Buffer.from("kept too\n"))
    expect(written).toEqual([
      "core: 18 bytes of output were dropped (no space left on device); writing again\n",
      "kept\n",
      "kept too\n"
    ])
    expect(writer.droppedBytes).toBe(18)
  })

  it("counts the rest of a write that stopped half way", () => {
    let calls = 0
    const writer = new ResilientWriter(1, (_fd, _bytes, _offset, length) => {
      if (++calls === 1) return Math.floor(length / 2)
      throw enospc()
    })
    writer.write(Buffer.from("0123456789"))
    expect(writer.droppedBytes).toBe(5)
  })
})

describe("a supervisor on a full disk", () => {
  it("keeps running with its stdout and stderr on /dev/full, and stops on down", async () => {
    const dir = tempDir("core-full-")
    mkdirSync(join(dir, "services", "chatty"), { recursive: true })
    writeFileSync(
      join(dir, "services", "chatty", "service.json"),
      JSON.stringify({ process: { command: "sh", args: ["-c", "while true; do echo hello; sleep 0.05; done"] } })
    )
    const full = openSync("/dev/full", "w")
    const supervisor = spawn(process.execPath, [cli, "stack", "up", "--dir", dir], {
      stdio: ["ignore", full, full],
      env: { ...process.env, NO_COLOR: "1" }
    })
    closeSync(full)
    let exitCode: number | null | undefined
    supervisor.on("exit", (code) => {
      exitCode = code
    })
    const status = () =>
      spawnSync(process.execPath, [cli, "stack", "status", "--dir", dir, "--json"], { encoding: "utf8" })
    try {
      expect(await eventually(() => status().stdout.includes('"running"'), 30_000)).toBe(true)
      // it has written (and dropped) many lines by now; it is still there and still answers
      expect(await eventually(() => exitCode !== undefined, 1_000)).toBe(false)
      // `status` says how much of the supervisor's own output was lost (and `hello` carries the count)
      const table = spawnSync(process.execPath, [cli, "stack", "status", "--dir", dir], { encoding: "utf8" })
      expect(table.status, table.stderr).toBe(0)
      expect(table.stdout).toMatch(/supervisor output not written \(disk full\?\): [1-9]\d* bytes/)
      const down = spawnSync(process.execPath, [cli, "stack", "down", "--dir", dir], { encoding: "utf8" })
      expect(down.status, down.stdout + down.stderr).toBe(0)
      expect(await eventually(() => exitCode !== undefined, 10_000)).toBe(true)
      expect(await eventually(() => processesMentioning(dir).length === 0, 5_000)).toBe(true)
    } finally {
      if (exitCode === undefined) supervisor.kill("SIGKILL")
    }
  }, 60_000)
})
