/**
 * Every malformed stack of the shared table, through the real CLI: `core stack up --dir <tmp>` exits
 * non-zero with a located message, prints no stack trace, and starts nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { dirname, join, resolve } from "node:path"
import { malformedStacks } from "./fixtures/malformed.js"
import { processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const cli = resolve(import.meta.dirname, "../dist/core.cjs")

const occupy = () =>
  new Promise<{ server: Server; port: number }>((resolvePort) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resolvePort({ server, port: typeof address === "object" && address ? address.port : 0 })
    })
  })

describe("core stack up on malformed stacks", () => {
  it("the table has at least 15 cases", () => {
    expect(malformedStacks.length).toBeGreaterThanOrEqual(15)
  })

  for (const stack of malformedStacks) {
    it(stack.name, async () => {
      const dir = tempDir("core-bad-")
      const held = stack.occupyPort ? await occupy() : undefined
      const fill = (text: string) => (held ? text.replaceAll("{{PORT}}", String(held.port)) : text)
      try {
        for (const [file, text] of Object.entries(stack.files)) {
          mkdirSync(dirname(join(dir, file)), { recursive: true })
          writeFileSync(join(dir, file), fill(text))
        }
        for (const [file, target] of Object.entries(stack.links ?? {})) {
          mkdirSync(dirname(join(dir, file)), { recursive: true })
          symlinkSync(target, join(dir, file))
        }
        // spawnSync would block the event loop that keeps the occupied port open: it listens in the kernel, fine
        const result = spawnSync(process.execPath, [cli, "stack", "up", "--dir", dir], {
          env: { ...process.env, NO_COLOR: "1", ...stack.env },
          encoding: "utf8",
          timeout: 30_000
        })
        const output = result.stdout + result.stderr
        expect(result.status, output).not.toBe(0)
        expect(result.status, output).not.toBeNull()
        for (const line of stack.expect) expect(output).toContain(fill(line))
        expect(output).not.toMatch(/\n\s+at .*:\d+:\d+/)
        expect(output).not.toContain("internal error")
        expect(processesMentioning(dir)).toEqual([])
      } finally {
        held?.server.close()
      }
    })
  }
})
