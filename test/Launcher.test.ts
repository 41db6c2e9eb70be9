/**
 * The installed command (`dist/core.cjs`, from src/launcher.ts) loads the CLI bundle through V8's code cache:
 * the first run writes the cache, later runs use it, a changed bundle gets a new one, and a cache that another
 * user could have planted is never used (V8 checks a cache against the source's length only, so a planted cache
 * is code execution). Runs a copy of the built files in a temp directory (`npm test` builds them first).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import Module from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as vm from "node:vm"
import { eventually, processesMentioning } from "./support/Processes.js"

const dist = join(import.meta.dirname, "..", "dist")

const keyOf = (file: string) => fs.readFileSync(file).subarray(0, 400).toString("latin1").split("\n")[0]!
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** A copy of the built CLI in a fresh folder, with its own user cache folder; removed by `use`'s end. */
const withCopy = (use: (dir: string, run: (...nodeFlags: Array<string>) => string, env: NodeJS.ProcessEnv) => void) => {
  const dir = fs.mkdtempSync(join(tmpdir(), "core-launcher-"))
  const env = { ...process.env, XDG_CACHE_HOME: join(dir, "user-cache") }
  try {
    const bin = join(dir, "bin")
    fs.mkdirSync(bin, { mode: 0o755 })
    fs.copyFileSync(join(dist, "core.cjs"), join(bin, "core.cjs"))
    fs.copyFileSync(join(dist, "core-main.cjs"), join(bin, "core-main.cjs"))
    const run = (...nodeFlags: Array<string>) =>
      execFileSync(process.execPath, [...nodeFlags, join(bin, "core.cjs"), "--version"], { env })
        .toString()
        .trim()
    use(bin, run, env)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A code cache compiled from other code of exactly the bundle's length: what an attacker would plant. The
 * other code prints PWNED when it runs as the bundle.
 */
const hostileCache = (bundle: string): Buffer => {
  const source = fs.readFileSync(bundle, "utf8").replace(/^#!.*/, "")
  const payload = `if (__filename.endsWith("core-main.cjs")) process.stdout.write("PWNED\\n");`
  const padded = `${payload}/*${" ".repeat(source.length - payload.length - 4)}*/`
  expect(padded.length).toBe(source.length)
  const script = new vm.Script(Module.wrap(padded), { filename: bundle })
  ;(script.runInThisContext() as (...args: Array<unknown>) => void)({}, () => ({}), {}, "elsewhere", "")
  return script.createCachedData()
}

describe("launcher (dist/core.cjs)", () => {
  it("writes the code cache on the first run, keeps it on the next, rewrites it for a changed bundle", () => {
    withCopy((bin, run) => {
      const bundle = join(bin, "core-main.cjs")
      const cache = join(bin, "core-main.v8-cache")
      const first = run()
      expect(first).toMatch(/^\d+\.\d+\.\d+$/)
      expect(fs.existsSync(cache)).toBe(true)
      expect(fs.statSync(cache).mode & 0o077).toBe(0)
      expect(keyOf(cache)).toBe(`${sha256(bundle)}:${process.version}:${process.arch}:`)
      const written = fs.statSync(cache).mtimeMs

      expect(run()).toBe(first)
      expect(fs.statSync(cache).mtimeMs).toBe(written) // accepted: not written again

      fs.appendFileSync(bundle, "\n// changed\n")
      expect(run()).toBe(first)
      expect(keyOf(cache).startsWith(`${sha256(bundle)}:`)).toBe(true)
    })
  })

  it("keeps one cache per set of V8 flags, so the client and the background supervisor do not rewrite each other's", () => {
    withCopy((bin, run) => {
      run()
      run("--max-semi-space-size=1")
      const files = () =>
        fs
          .readdirSync(bin)
          .filter((f) => f.endsWith(".v8-cache"))
          .sort()
      expect(files()).toHaveLength(2)
      const stamps = files().map((f) => fs.statSync(join(bin, f)).mtimeMs)
      run()
      run("--max-semi-space-size=1")
      run()
      expect(files().map((f) => fs.statSync(join(bin, f)).mtimeMs)).toEqual(stamps)
    })
  })

  it("never runs a cache planted where another user can write it", () => {
    withCopy((bin, run, env) => {
      const bundle = join(bin, "core-main.cjs")
      const planted = hostileCache(bundle)
      const stat = fs.statSync(bundle)
      // the key the launcher trusted before: size, mtime, Node version and architecture, all public
      const oldKey = Buffer.from(`${stat.size}:${stat.mtimeMs}:${process.version}:${process.arch}\n`)
      const newKey = Buffer.from(`${sha256(bundle)}:${process.version}:${process.arch}:\n`)
      // the shared temp directory, where the launcher used to look when no cache sat beside the bundle
      const tmpCache = join(tmpdir(), `core-main-${Buffer.from(bundle).toString("base64url").slice(-40)}.v8-cache`)
      fs.writeFileSync(tmpCache, Buffer.concat([oldKey, planted]))
      try {
        expect(run()).not.toContain("PWNED")

        // beside the bundle, in a folder that others can write: not trusted, the user's own cache is used
        fs.rmSync(join(bin, "core-main.v8-cache"), { force: true })
        fs.chmodSync(bin, 0o777)
        fs.writeFileSync(join(bin, "core-main.v8-cache"), Buffer.concat([newKey, planted]))
        expect(run()).not.toContain("PWNED")
        expect(fs.readdirSync(join(env.XDG_CACHE_HOME!, "core")).some((f) => f.endsWith(".v8-cache"))).toBe(true)

        // a cache file that another user owns, in a trusted folder: ignored and replaced
        fs.chmodSync(bin, 0o755)
        fs.chownSync(join(bin, "core-main.v8-cache"), 65534, 65534)
        expect(run()).not.toContain("PWNED")
        expect(fs.statSync(join(bin, "core-main.v8-cache")).uid).toBe(process.geteuid!())

        // the same planted bytes with the right key, owned by us: V8 would run them; proves the payload is live
        fs.writeFileSync(join(bin, "core-main.v8-cache"), Buffer.concat([newKey, planted]), { mode: 0o600 })
        expect(run()).toContain("PWNED")
      } finally {
        fs.rmSync(tmpCache, { force: true })
      }
    })
  })

  it("run as a program, starts Node without NODE_EXTRA_CA_CERTS, which Node reads as it starts, and gives it back to what it runs", async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), "core-launcher-ca-"))
    const bin = join(dir, "bin")
    fs.mkdirSync(bin, { mode: 0o755 })
    for (const file of ["core.cjs", "core-main.cjs"]) fs.copyFileSync(join(dist, file), join(bin, file))
    const stack = join(dir, "stack")
    fs.mkdirSync(join(stack, "services", "svc"), { recursive: true })
    // what the service inherits goes to env.txt ($0 is the folder: processesMentioning finds it)
    const service = { command: "sh", args: ["-c", 'env > "$0/env.tmp"; mv "$0/env.tmp" "$0/env.txt"; sleep 300', dir] }
    fs.writeFileSync(join(stack, "services", "svc", "service.json"), JSON.stringify({ process: service }))
    // a file Node cannot read: Node warns when it reads the variable, before any code of ours runs
    const env = {
      ...process.env,
      NO_COLOR: "1",
      XDG_CACHE_HOME: join(dir, "cache"),
      NODE_EXTRA_CA_CERTS: join(dir, "none.pem")
    }
    const warning = /Ignoring extra certs from/
    try {
      expect(
        spawnSync(process.execPath, [join(bin, "core.cjs"), "--version"], { env, encoding: "utf8" }).stderr
      ).toMatch(warning)
      const asProgram = spawnSync(join(bin, "core.cjs"), ["--version"], { env, encoding: "utf8" })
      expect(asProgram.status, asProgram.stderr).toBe(0)
      expect(asProgram.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
      expect(asProgram.stderr).not.toMatch(warning)

      // a service of the foreground `run` gets the variable as it was, and nothing of how it was carried
      const run = spawn(join(bin, "core.cjs"), ["svc", "run", "--dir", stack], {
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stderr = ""
      run.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString()
      })
      run.stdout.resume()
      const exited = new Promise((resolve) => run.once("exit", resolve))
      expect(await eventually(() => fs.existsSync(join(dir, "env.txt")))).toBe(true)
      const serviceEnv = fs.readFileSync(join(dir, "env.txt"), "utf8").split("\n")
      expect(serviceEnv).toContain(`NODE_EXTRA_CA_CERTS=${env.NODE_EXTRA_CA_CERTS}`)
      expect(serviceEnv.filter((line) => line.startsWith("CORE_DEFERRED_NODE_EXTRA_CA_CERTS"))).toEqual([])
      run.kill("SIGINT")
      expect(await exited).toBe(0)
      expect(stderr).not.toMatch(warning)
      expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
