/**
 * `up -d` starts its background supervisor from a V8 startup snapshot (`dist/core-supervisor.blob`, built by
 * `npm run build`) when one was built for this Node and flags and nobody else can change it; otherwise from the
 * CLI bundle as before. Runs a copy of the built files in a temp directory (`npm test` builds them first), on
 * real stacks: the snapshot's supervisor must read its own environment, serve the control API, stop its
 * services and leave nothing behind.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { join } from "node:path"
import { eventually, parentOf, processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

const dist = join(import.meta.dirname, "..", "dist")
const FILES = ["core.cjs", "core-main.cjs", "core-supervisor.blob", "core-supervisor.blob.key"]

/**
 * A copy of the built CLI with its snapshot (and the spawner helper when `withSpawner`), and a stack of one
 * service that runs until stopped.
 */
const setUp = (extraEnv: Record<string, string> = {}, withSpawner = false) => {
  const root = tempDir("core-snapshot-test-")
  const bin = join(root, "bin")
  fs.mkdirSync(bin, { mode: 0o755 })
  for (const file of withSpawner ? [...FILES, "core-spawner"] : FILES)
    fs.copyFileSync(join(dist, file), join(bin, file))
  const stack = join(root, "stack")
  fs.mkdirSync(join(stack, "services", "svc"), { recursive: true })
  fs.writeFileSync(
    join(stack, "services", "svc", "service.json"),
    // what the service inherits goes to env.txt ($0 is the root: processesMentioning finds it)
    JSON.stringify({ process: { command: "sh", args: ["-c", 'env > "$0/env.txt"; sleep 300; :', root] } })
  )
  const setup = {
    root,
    bin,
    stack,
    /** The command as run: the copy's launcher, or a symlink to it (as npm installs `core`). */
    script: join(bin, "core.cjs"),
    core: (...args: Array<string>) =>
      spawnSync(process.execPath, [setup.script, ...args, "--dir", stack], {
        encoding: "utf8",
        timeout: 60_000,
        env: {
          PATH: process.env.PATH,
          NO_COLOR: "1",
          CORE_TRACE: "1",
          XDG_CACHE_HOME: join(root, "cache"),
          ...extraEnv
        }
      })
  }
  return setup
}

/** `up -d`, `status` and `down` of the stack; what the supervisor's command line and trace said of its start. */
const upStatusDown = async ({ root, stack, core }: ReturnType<typeof setUp>, ...upOptions: Array<string>) => {
  try {
    const up = core("stack", "up", "-d", ...upOptions)
    expect(up.status, up.stderr).toBe(0)
    const pid = Number(/supervisor pid (\d+)/.exec(up.stdout)?.[1])
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    // the environment the supervisor started with (what glibc read), and what its service inherited
    const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")
    expect(
      await eventually(() => fs.existsSync(join(root, "env.txt")) && fs.statSync(join(root, "env.txt")).size > 0)
    ).toBe(true)
    const serviceEnv = fs.readFileSync(join(root, "env.txt"), "utf8").split("\n")
    const status = core("stack", "status", "--json")
    expect(status.status, status.stderr).toBe(0)
    const rows: ReadonlyArray<{ name: string; state: string; pid: number }> = JSON.parse(status.stdout)
    expect(rows.map((r) => [r.name, r.state])).toEqual([["svc", "running"]])
    // the program that started the service: the spawner helper, or the supervisor itself (Node's spawn)
    const serviceParent = fs.readlinkSync(`/proc/${parentOf(rows[0]!.pid).ppid}/exe`)
    const down = core("stack", "down")
    expect(down.status, down.stderr).toBe(0)
    // every finalizer ran before the supervisor's exit (a snapshot whose timers were stale from its build ended
    // by its event loop running dry, before the lock's release: the pid file stayed)
    expect(
      fs.readdirSync(join(stack, ".core-stack")).filter((f) => f === "supervisor.pid" || f === "control.sock")
    ).toEqual([])
    expect(fs.readdirSync(join(stack, ".core-stack", "pids"))).toEqual([])
    const log = fs.readFileSync(join(stack, ".core-stack", "supervisor.log"), "utf8")
    return { cmdline, log, environ, serviceEnv, serviceParent }
  } finally {
    core("stack", "down")
    expect(await eventually(() => processesMentioning(root).length === 0)).toBe(true)
    fs.rmSync(root, { recursive: true, force: true })
  }
}

describe("the background supervisor's startup snapshot", () => {
  it("is built by npm run build for this Node and the supervisor's flags", () => {
    const cli = fs.readFileSync(join(dist, "core-main.cjs"))
    const digest = createHash("sha256").update(cli).digest("hex")
    expect(fs.readFileSync(join(dist, "core-supervisor.blob.key"), "utf8")).toBe(
      `${process.version} ${process.arch} --max-semi-space-size=1 --v8-pool-size=1 --heap-growing-percent=100 ${digest} ${cli.length}\n`
    )
    expect(fs.statSync(join(dist, "core-supervisor.blob")).size).toBeGreaterThan(1_000_000)
    // the launcher carries that digest from its build, and so neither reads the CLI bundle nor hashes it
    expect(fs.readFileSync(join(dist, "core.cjs"), "utf8")).toContain(digest)
  })

  it("holds the supervisor's program and no CLI: any other command line is refused, and up -d never starts one from it", () => {
    // the bundle it is built from has no CLI command (the CLI bundle has them all, with their descriptions)
    const description = "Start the stack, or the named services and their dependencies"
    expect(fs.readFileSync(join(dist, "core-main.cjs"), "utf8")).toContain(description)
    const bundle = fs.readFileSync(join(dist, "core-supervisor.cjs"), "utf8")
    expect(bundle).not.toContain(description)
    expect(bundle).toContain("node started from the supervisor snapshot")
    const flags = ["--max-semi-space-size=1", "--v8-pool-size=1", "--heap-growing-percent=100"]
    const run = (...args: Array<string>) =>
      spawnSync(
        process.execPath,
        [...flags, "--snapshot-blob", join(dist, "core-supervisor.blob"), join(dist, "core.cjs"), ...args],
        {
          encoding: "utf8",
          timeout: 60_000,
          env: { PATH: process.env.PATH, CORE_SUPERVISOR: "1" }
        }
      )
    for (const args of [
      ["stack", "status"],
      ["stack", "up", "--dir", "relative"],
      ["stack", "up", "--dir", "/tmp", "--detach"]
    ]) {
      const refused = run(...args)
      expect(refused.status, refused.stderr).toBe(2)
      expect(refused.stderr).toContain("the supervisor's snapshot runs only `stack up --dir ROOT [SERVICE...]`")
    }
  })

  it("starts the supervisor of an up -d that the launcher leaves to the CLI (which hashes the CLI bundle itself)", async () => {
    const copy = setUp()
    // `--data` is not a command line the launcher's quick path reads: the CLI bundle spawns the supervisor
    const { cmdline, log, environ } = await upStatusDown(copy, "--data", join(copy.root, "data"))
    expect(cmdline).toContain("--snapshot-blob")
    expect(log).toMatch(/supervisor +node started from the supervisor snapshot/)
    expect(environ).toContain(`CORE_DATA_DIR=${join(copy.root, "data")}`)
  })

  it("starts the supervisor with glibc's arena limit, which its services do not inherit; the user's own value they do", async () => {
    const ours = await upStatusDown(setUp())
    expect(ours.environ).toContain("MALLOC_ARENA_MAX=1")
    expect(ours.serviceEnv.filter((line) => /MALLOC_ARENA_MAX|CORE_UNSET/.test(line))).toEqual([])
    const theirs = await upStatusDown(setUp({ MALLOC_ARENA_MAX: "2" }))
    expect(theirs.environ).toContain("MALLOC_ARENA_MAX=2")
    expect(theirs.serviceEnv).toContain("MALLOC_ARENA_MAX=2")
  })

  it("starts the supervisor without NODE_EXTRA_CA_CERTS, which Node reads before any code runs; its services get it back", async () => {
    const ca = join(import.meta.dirname, "fixtures", "tls", "ca.pem")
    const { environ, serviceEnv } = await upStatusDown(setUp({ NODE_EXTRA_CA_CERTS: ca }))
    expect(environ.filter((line) => line.startsWith("NODE_EXTRA_CA_CERTS="))).toEqual([])
    expect(environ).toContain(`CORE_DEFERRED_NODE_EXTRA_CA_CERTS=${ca}`)
    expect(serviceEnv).toContain(`NODE_EXTRA_CA_CERTS=${ca}`)
    expect(serviceEnv.filter((line) => line.startsWith("CORE_DEFERRED_NODE_EXTRA_CA_CERTS"))).toEqual([])
  })

  it("is found beside the real file when the command is a symlink to it, as npm installs it", async () => {
    const copy = setUp()
    fs.mkdirSync(join(copy.root, "node_modules", ".bin"), { recursive: true })
    copy.script = join(copy.root, "node_modules", ".bin", "core")
    fs.symlinkSync(join(copy.bin, "core.cjs"), copy.script)
    const { cmdline } = await upStatusDown(copy)
    expect(cmdline).toContain("--snapshot-blob")
  })

  it("runs its services through the spawner helper beside the command it was started by, not the build's", async () => {
    // the snapshot holds the build's __dirname (dist/): a copy used that folder's helper, or none once it was gone
    const copy = setUp({}, true)
    fs.mkdirSync(join(copy.root, "node_modules", ".bin"), { recursive: true })
    copy.script = join(copy.root, "node_modules", ".bin", "core")
    fs.symlinkSync(join(copy.bin, "core.cjs"), copy.script)
    const { cmdline, serviceParent } = await upStatusDown(copy)
    expect(cmdline).toContain("--snapshot-blob")
    expect(serviceParent).toBe(join(copy.bin, "core-spawner"))
  })

  it("runs the timers it sets late in its life: its down of 200 services ends after every finalizer", async () => {
    // the build's warm-up sets and clears timers; Node kept that state, and a supervisor whose first timer came
    // late (its guardian's release, at the end of a down of 200) never had it set: its event loop ran dry and it
    // exited before the lock's release, leaving its pid file (4-7 of 8 downs, before the fix)
    const copy = setUp({}, true)
    for (let i = 0; i < 200; i++) {
      fs.mkdirSync(join(copy.stack, "services", `s${i}`), { recursive: true })
      fs.writeFileSync(
        join(copy.stack, "services", `s${i}`, "service.json"),
        JSON.stringify({ process: { command: "sh", args: ["-c", "sleep 300; :", copy.root] } })
      )
    }
    try {
      for (let round = 0; round < 2; round++) {
        const up = copy.core("stack", "up", "-d")
        expect(up.status, up.stderr).toBe(0)
        const down = copy.core("stack", "down")
        expect(down.status, down.stderr).toBe(0)
        expect(fs.readdirSync(join(copy.stack, ".core-stack")).filter((f) => f === "supervisor.pid")).toEqual([])
      }
    } finally {
      copy.core("stack", "down")
      expect(await eventually(() => processesMentioning(copy.root).length === 0)).toBe(true)
      fs.rmSync(copy.root, { recursive: true, force: true })
    }
  })

  it("built with NODE_OPTIONS set, still starts a supervisor that has none (the build does not pass them on)", async () => {
    const copy = setUp()
    const build = spawnSync(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "..", "src", "SupervisorSnapshotBuild.ts"), copy.bin],
      { encoding: "utf8", timeout: 120_000, env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=4096" } }
    )
    expect(build.status, build.stderr).toBe(0)
    const { cmdline, log } = await upStatusDown(copy)
    expect(cmdline).toContain("--snapshot-blob")
    expect(log).toMatch(/from the supervisor snapshot/)
  })

  it("is not used when another user could have changed it, or it was built for something else", async () => {
    const writable = setUp()
    fs.chmodSync(join(writable.bin, "core-supervisor.blob"), 0o666)
    const stale = setUp()
    fs.writeFileSync(join(stale.bin, "core-supervisor.blob.key"), "v0.0.0 x64 --max-semi-space-size=1\n")
    const folder = setUp()
    fs.chmodSync(folder.bin, 0o777)
    // a bundle other than the one the blob was built with (an older blob left beside newer files)
    const older = setUp()
    fs.appendFileSync(join(older.bin, "core-main.cjs"), "\n// changed\n")
    // V8 flags the supervisor would inherit: V8 refuses a snapshot built without them (exit 14)
    const nodeOptions = setUp({ NODE_OPTIONS: "--max-old-space-size=4096" })
    for (const copy of [writable, stale, folder, older, nodeOptions]) {
      const { cmdline, log } = await upStatusDown(copy)
      expect(cmdline).not.toContain("--snapshot-blob")
      expect(log).toMatch(/supervisor +bundle evaluated/)
      expect(log).not.toMatch(/from the supervisor snapshot/)
    }
    // a bundle of the same size with other bytes, on the CLI's path (`--data`), which hashes the bundle (the
    // launcher has the digest from its build, and checks the size only)
    const sameSize = setUp()
    const cli = join(sameSize.bin, "core-main.cjs")
    const text = fs.readFileSync(cli, "utf8")
    const description = "Start the stack, or the named services"
    expect(text).toContain(description)
    fs.writeFileSync(cli, text.replace(description, description.toLowerCase()))
    const { cmdline, log } = await upStatusDown(sameSize, "--data", join(sameSize.root, "data"))
    expect(cmdline).not.toContain("--snapshot-blob")
    expect(log).toMatch(/supervisor +bundle evaluated/)
  })
})
