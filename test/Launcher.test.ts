/**
 * The installed command (`dist/core.cjs`, from src/launcher.ts) loads the CLI bundle through V8's code cache:
 * the first run writes the cache beside the bundle, later runs use it, and a changed bundle gets a new one.
 * Runs a copy of the built files in a temp directory (`npm test` builds them first).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const dist = join(import.meta.dirname, "..", "dist")

const keyOf = (file: string) => readFileSync(file).subarray(0, 200).toString("latin1").split("\n")[0]!

describe("launcher (dist/core.cjs)", () => {
  it("writes the code cache on the first run, keeps it on the next, rewrites it for a changed bundle", () => {
    const dir = mkdtempSync(join(tmpdir(), "core-launcher-"))
    try {
      copyFileSync(join(dist, "core.cjs"), join(dir, "core.cjs"))
      copyFileSync(join(dist, "core-main.cjs"), join(dir, "core-main.cjs"))
      const cache = join(dir, "core-main.cjs.v8-cache")
      const version = () =>
        execFileSync(process.execPath, [join(dir, "core.cjs"), "--version"])
          .toString()
          .trim()

      const first = version()
      expect(first).toMatch(/^\d+\.\d+\.\d+$/)
      expect(existsSync(cache)).toBe(true)
      const bundleSize = statSync(join(dir, "core-main.cjs")).size
      expect(keyOf(cache)).toBe(
        `${bundleSize}:${statSync(join(dir, "core-main.cjs")).mtimeMs}:${process.version}:${process.arch}`
      )
      const written = statSync(cache).mtimeMs

      expect(version()).toBe(first)
      expect(statSync(cache).mtimeMs).toBe(written) // accepted: not written again

      appendFileSync(join(dir, "core-main.cjs"), "\n// changed\n")
      expect(version()).toBe(first)
      expect(keyOf(cache).startsWith(`${statSync(join(dir, "core-main.cjs")).size}:`)).toBe(true)
      expect(statSync(join(dir, "core-main.cjs")).size).not.toBe(bundleSize)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
