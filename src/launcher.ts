/**
 * The `core` command as installed (`dist/core.cjs`): loads the CLI bundle (`dist/core-main.cjs`, built from
 * `bin.ts`) through V8's code cache. Parsing and compiling the 1.2 MB bundle is about 100 ms of every CLI start
 * (a third of `core stack status`); with the cache it is a few ms. The cache is written once, at the exit of a
 * run that found none or found it stale, so it holds every function that run compiled.
 *
 * A code cache is code: V8 checks it against the source's length only, so whoever can write the cache file
 * chooses what runs. It is therefore read and written only where no other user can write: beside the bundle
 * when that folder belongs to this user (or root) and is writable by no one else, otherwise in this user's own
 * cache folder (`$XDG_CACHE_HOME/core` or `~/.cache/core`, 0700, checked to be ours). Never the shared temp
 * directory. A cache file that another user owns, or that others can write, is ignored.
 *
 * The key binds the cache to the SHA-256 of the exact bytes compiled (0.9 ms for the 1.2 MB bundle, which is
 * read anyway), the Node version, the architecture and the V8 flags; each set of flags (the background
 * supervisor runs with others) has a file of its own, so they do not rewrite each other's cache. A missing,
 * stale, untrusted or unwritable cache costs only the plain compile.
 *
 * Plain Node on purpose: nothing here may cost start-up time.
 */
import type * as crypto from "node:crypto"
import * as fs from "node:fs"
import Module from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as vm from "node:vm"
import { earlyDetachedUp } from "./app/SupervisorSpawn.js"
import { quickDetachedUp } from "./cli/QuickUp.js"
import { quickDown } from "./cli/QuickDown.js"
import { quickVerb } from "./cli/QuickVerbs.js"
import { ours } from "./state/Ownership.js"
import * as Trace from "./trace/Trace.js"

const bundle = path.join(__dirname, "core-main.cjs")
const uid = process.geteuid?.() ?? -1

/**
 * `node:crypto` is loaded here, on first use, and not with the bundle: loading it is 2-4 ms of a start, and the
 * quick paths (`up -d`, `status`, `down`) hash nothing. (This file is only ever bundled as CommonJS.)
 */
const sha256 = (data: crypto.BinaryLike): string =>
  (require("node:crypto") as typeof crypto).createHash("sha256").update(data).digest("hex")

/** This user's cache folder, created 0700 when missing; undefined when it is not safely ours. */
const userCacheDir = (): string | undefined => {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache")
  const dir = path.join(base, "core")
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const stat = fs.lstatSync(dir)
    return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o077) === 0 ? dir : undefined
  } catch {
    return undefined
  }
}

/** The one file that may hold the cache for this bundle and these V8 flags. */
const cacheFile = (flags: string): string | undefined => {
  const name = `core-main${flags === "" ? "" : `.${sha256(flags).slice(0, 12)}`}.v8-cache`
  try {
    if (ours(fs.statSync(path.dirname(bundle)))) return path.join(path.dirname(bundle), name)
  } catch {
    // no stat of the folder: fall through to the user's cache
  }
  const dir = userCacheDir()
  return dir === undefined ? undefined : path.join(dir, `${sha256(bundle).slice(0, 16)}-${name}`)
}

const readCache = (file: string, key: string): Buffer | undefined => {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    if (!ours(fs.fstatSync(fd))) return undefined
    const data = fs.readFileSync(fd)
    return data.subarray(0, key.length).toString() === key ? data.subarray(key.length) : undefined
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

const writeCache = (file: string, key: string, data: Buffer): void => {
  const tmp = `${file}.${process.pid}.tmp`
  try {
    fs.writeFileSync(tmp, Buffer.concat([Buffer.from(key), data]), { mode: 0o600, flag: "wx" })
    fs.renameSync(tmp, file)
  } catch {
    fs.rmSync(tmp, { force: true })
  }
}

const load = (): void => {
  const bytes = fs.readFileSync(bundle)
  const flags = process.execArgv.join(" ")
  const key = `${sha256(bytes)}:${process.version}:${process.arch}:${flags}\n`
  const file = cacheFile(flags)
  const cachedData = file === undefined ? undefined : readCache(file, key)
  const source = bytes.toString("utf8").replace(/^#!.*/, "")
  const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData })
  Trace.mark(
    `bundle compiled (code cache ${cachedData === undefined ? "absent" : script.cachedDataRejected ? "rejected" : "used"})`
  )
  if (file !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) {
    process.once("exit", () => writeCache(file, key, script.createCachedData()))
  }
  const main = new Module(bundle, module)
  main.filename = bundle
  main.paths = (Module as unknown as { _nodeModulePaths: (dir: string) => Array<string> })._nodeModulePaths(
    path.dirname(bundle)
  )
  const run = script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void
  run.call(main.exports, main.exports, (id: string) => main.require(id), main, bundle, path.dirname(bundle))
}

/**
 * The quick paths (plain Node, no bundle): `stack status`, `stack process list` and `stack down` served here, and the wait
 * of an `up -d` whose supervisor was started here. Each serves only the plain, successful case and otherwise
 * resolves false before it prints anything; then the CLI runs the command as it always did.
 * `CORE_QUICK=0` turns them off (the tests compare both paths on the same stack).
 */
const quick = (argv: ReadonlyArray<string>): Promise<boolean> | undefined => {
  if (process.env.CORE_QUICK === "0") return undefined
  return quickVerb(argv, process.env, process.cwd()) ?? quickDown(argv, process.env, process.cwd()) ?? quickDetachedUp()
}

const start = (): void => {
  Trace.mark("node started, launcher running")
  const argv = process.argv.slice(2)
  earlyDetachedUp(argv)
  const served = quick(argv)
  if (served === undefined) load()
  else
    void served.then(
      (done) => done || load(),
      () => load()
    )
}

start()
