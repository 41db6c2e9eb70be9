/**
 * The start of a background supervisor (`core stack up -d`): the same command run again as `stack up` (the
 * foreground mode) in its own session, its output appended to `.core-stack/supervisor.log`.
 *
 * Plain Node, no Effect: the launcher (`launcher.ts`) starts the supervisor with this before it loads the CLI
 * bundle, so that the supervisor's own Node start and bundle load overlap the CLI's instead of following them
 * (`earlyDetachedUp`); `StackUpDetached` then adopts that supervisor (`adoptEarly`), or spawns one itself
 * when the launcher did not.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { rotateIfLarger } from "../logs/LogFile.js"
import { deferExtraCaCerts } from "../provision/ExtraCaCerts.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { ours } from "../state/Ownership.js"
import { isRunning } from "../state/ProcessIdentity.js"
import { untrustedStateDir } from "../state/Trust.js"
import { stateDirOf } from "../state/StatePaths.js"
import * as Trace from "../trace/Trace.js"
import { INTERRUPTED_EXIT_CODE, INTERRUPTED_LINE } from "./UpLines.js"

/**
 * Node flags of the background supervisor, before the caller's own (which win).
 * - Semi-spaces of 1 MB instead of V8's 16 MB: the supervisor allocates in bursts (starting 200 services) and
 *   V8 keeps the grown young generation committed for good, ~30 MB of RSS (npm run bench: peak 176 MB -> 145 MB
 *   with 200 services). The price is more scavenges under a flood of output: 100 MB of one service's lines cost
 *   ~1.6 s of supervisor CPU instead of ~1 s.
 * - One V8 worker thread instead of one per core and more: each thread that compiles or marks keeps its own
 *   malloc arena (~1-4 MB each, traced in /proc/PID/smaps).
 * - The old generation may grow to twice what the last full GC kept, not up to 4x: after the start burst of
 *   200 services V8 had let it reach ~50 MB over ~28 MB live. (30 % saved no more, and cost the log flood of
 *   row 5 ~60 % more CPU in full GCs.)
 */
export const SUPERVISOR_NODE_FLAGS: ReadonlyArray<string> = [
  "--max-semi-space-size=1",
  "--v8-pool-size=1",
  "--heap-growing-percent=100"
]

/**
 * The variable that carries `NODE_EXTRA_CA_CERTS` past a Node start: Node reads and parses that file before any
 * code runs (~30 ms of every start here with the system bundle), and `core` needs it only for downloads, which
 * read it then (ExtraCaCerts). Set by the installed command's first lines (`LauncherBuild`) and by `up -d` for
 * its supervisor; `restoreEnvironment` puts it back as the code starts.
 */
export const DEFERRED_CA_CERTS_VARIABLE = "CORE_DEFERRED_NODE_EXTRA_CA_CERTS"

/**
 * What the supervisor's environment differs in, for the supervisor alone; `restoreEnvironment` undoes it as it
 * starts, so that its services and builds inherit the environment as it was.
 * - glibc gives each thread that allocates an arena of its own (up to 8 per core), never returned; one arena
 *   for the supervisor saves a few MB. glibc reads the setting once, at the process's start. A value the user
 *   set is left alone.
 * - `NODE_EXTRA_CA_CERTS` is held back (`DEFERRED_CA_CERTS_VARIABLE`).
 */
const supervisorOnlyEnv = (): Record<string, string | undefined> => ({
  ...(process.env.MALLOC_ARENA_MAX === undefined && { MALLOC_ARENA_MAX: "1", CORE_UNSET_MALLOC_ARENA_MAX: "1" }),
  ...(process.env.NODE_EXTRA_CA_CERTS && {
    NODE_EXTRA_CA_CERTS: undefined,
    [DEFERRED_CA_CERTS_VARIABLE]: process.env.NODE_EXTRA_CA_CERTS
  })
})

/**
 * As the CLI bundle or the supervisor's snapshot starts (`Program.runAsProcess`): undoes what `spawnSupervisor` set for the
 * supervisor alone (`supervisorOnlyEnv`) and what the installed command's first lines deferred. The launcher's
 * quick paths before it start nothing that needs the variable (a supervisor it starts inherits the deferred one).
 */
export const restoreEnvironment = (): void => {
  if (process.env.CORE_UNSET_MALLOC_ARENA_MAX === "1") {
    delete process.env.MALLOC_ARENA_MAX
    delete process.env.CORE_UNSET_MALLOC_ARENA_MAX
  }
  const extraCaCerts = process.env[DEFERRED_CA_CERTS_VARIABLE]
  if (extraCaCerts !== undefined) {
    process.env.NODE_EXTRA_CA_CERTS = extraCaCerts
    delete process.env[DEFERRED_CA_CERTS_VARIABLE]
    deferExtraCaCerts(extraCaCerts)
  }
}

/**
 * What a supervisor snapshot must have been built for: this Node, this architecture, these flags, and the CLI
 * bundle beside it (`core-main.cjs`, built from the same sources in the same `npm run build`: its SHA-256 and
 * its size), so that a blob left by an older build, or beside bundles copied over it, is not used with them.
 */
export const snapshotKey = (bundleDigest: string, bundleSize: number): string =>
  `${process.version} ${process.arch} ${SUPERVISOR_NODE_FLAGS.join(" ")} ${bundleDigest} ${bundleSize}\n`

/**
 * The SHA-256 of `core-main.cjs` as the launcher's build read it (`LauncherBuild` defines it in `core.cjs`, built
 * just after that bundle); not defined in any other bundle, nor when the sources run as they are.
 */
declare const CORE_MAIN_DIGEST: string | undefined

/**
 * The SHA-256 of the CLI bundle at `file`: the launcher's build gave it (the launcher then neither reads the
 * 1.3 MB file nor loads `node:crypto`: ~5 ms of every `up -d` before the supervisor's spawn, traced), otherwise
 * hashed here. `node:crypto` is got on first use, not imported, so that the launcher's bundle does not load it:
 * through `process.getBuiltinModule` (Node 20.16 and later), else `require` (the CommonJS bundles); an ES module
 * on an older Node gets no digest, and its supervisor starts from the CLI bundle.
 */
const bundleDigest = (file: string): string | undefined => {
  if (typeof CORE_MAIN_DIGEST === "string") return CORE_MAIN_DIGEST
  const crypto =
    process.getBuiltinModule?.("node:crypto") ??
    (typeof require === "function" ? (require("node:crypto") as typeof import("node:crypto")) : undefined)
  return crypto?.createHash("sha256").update(fs.readFileSync(file)).digest("hex")
}

/**
 * The supervisor's startup snapshot beside the installed `script` (`core-supervisor.blob`, see
 * `SupervisorSnapshot.ts`; the script's real path, as `core` is often a symlink), when it may be used: built for
 * this Node, these flags and this bundle (its `.key`); the Node running now has no flags of its own, in its
 * command line or in NODE_OPTIONS (the supervisor would inherit them, and V8 refuses a snapshot built with
 * other flags); and neither the blob, its key nor their folder can be changed by another user (a snapshot is
 * code). `CORE_SNAPSHOT=0` turns it off. Undefined otherwise: the supervisor then starts from the CLI bundle.
 */
export const supervisorSnapshot = (script: string): string | undefined => {
  if (process.env.CORE_SNAPSHOT === "0" || process.execArgv.length > 0) return undefined
  if ((process.env.NODE_OPTIONS ?? "").trim() !== "") return undefined
  try {
    const dir = path.dirname(fs.realpathSync(script))
    const blob = path.join(dir, "core-supervisor.blob")
    if (!ours(fs.statSync(dir))) return undefined
    const stat = fs.lstatSync(blob)
    if (!stat.isFile() || !ours(stat)) return undefined
    const key = fs.openSync(`${blob}.key`, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    try {
      if (!ours(fs.fstatSync(key))) return undefined
      const bundle = path.join(dir, "core-main.cjs")
      const digest = bundleDigest(bundle)
      if (digest === undefined) return undefined
      return fs.readFileSync(key, "utf8") === snapshotKey(digest, fs.statSync(bundle).size) ? blob : undefined
    } finally {
      fs.closeSync(key)
    }
  } catch {
    return undefined
  }
}

/** What a background supervisor is asked: `stack up --dir ROOT [SERVICE...]`. */
export interface SupervisorArguments {
  readonly dir: string
  readonly services: ReadonlyArray<string>
}

/**
 * What a background supervisor was asked, when its arguments are exactly what `spawnSupervisor` writes:
 * `stack up --dir ROOT [SERVICE...]`, ROOT absolute, no option among the services. Anything else is
 * undefined: the supervisor then starts from the CLI bundle and goes through the CLI's parser.
 */
export const supervisorArguments = (argv: ReadonlyArray<string>): SupervisorArguments | undefined => {
  const [, , stack, up, dirFlag, dir, ...services] = argv
  if (stack !== "stack" || up !== "up" || dirFlag !== "--dir" || dir === undefined || !path.isAbsolute(dir))
    return undefined
  if (services.some((name) => name.startsWith("-"))) return undefined
  return { dir: path.resolve(dir), services }
}

/** A background supervisor just started. */
export interface SpawnedSupervisor {
  readonly child: ChildProcess
  /** The size of `supervisor.log` before it started: its output begins there. */
  readonly logStart: number
  /** Epoch ms of the start of `up -d` (the launcher's start, when it spawned it). */
  readonly began: number
  /** Set when the spawn failed. */
  spawnError: Error | undefined
  /**
   * Set by the launcher's quick wait (`cli/QuickUp.ts`) when it hands the wait over to the CLI: the progress
   * lines it has shown (the forwarder goes on from there) and the last status rows it read.
   */
  handedOver?: { readonly forward: () => ReadonlyArray<string>; readonly lastRows: ReadonlyArray<ServiceStatus> }
}

/** The size of `file`, 0 when it cannot be read. */
export const sizeOf = (file: string): number => {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

/**
 * Starts `core stack up --dir ROOT SERVICES...` in the background, in its own session, its output appended
 * to `supervisorLog` (one older output kept as `supervisor.log.1` once it passes 5 MiB). `stateDir` must exist.
 * Throws when the log cannot be opened.
 */
export const spawnSupervisor = (
  root: string,
  services: ReadonlyArray<string>,
  supervisorLog: string,
  began: number,
  env: Readonly<Record<string, string>> = {}
): SpawnedSupervisor => {
  rotateIfLarger(supervisorLog, 5 * 1024 * 1024, 1)
  const logStart = sizeOf(supervisorLog)
  // appended, never truncated: a second `up -d` racing this one must not overwrite its output
  const log = fs.openSync(supervisorLog, "a", 0o600)
  try {
    const script = process.argv[1]!
    const args = ["stack", "up", "--dir", root, ...services]
    // the snapshot holds no CLI parser: it runs only the arguments `supervisorArguments` reads (`SupervisorMain`)
    const snapshot = supervisorArguments([process.execPath, script, ...args]) && supervisorSnapshot(script)
    const node = snapshot === undefined ? process.execArgv : ["--snapshot-blob", snapshot]
    const child = spawn(process.execPath, [...SUPERVISOR_NODE_FLAGS, ...node, script, ...args], {
      cwd: root,
      detached: true,
      stdio: ["ignore", log, log],
      env: {
        ...process.env,
        ...env,
        ...supervisorOnlyEnv(),
        CORE_SUPERVISOR: "1",
        NO_COLOR: "1",
        ...Trace.childEnv()
      }
    })
    const spawned: SpawnedSupervisor = { child, logStart, began, spawnError: undefined }
    child.once("error", (e) => {
      spawned.spawnError = e
    })
    child.unref()
    Trace.mark("background supervisor spawned")
    return spawned
  } finally {
    fs.closeSync(log)
  }
}

/** What `core stack up -d` was asked, when the command line is one the launcher recognises for sure. */
export interface DetachedUp {
  /** The absolute stack directory. */
  readonly root: string
  readonly services: ReadonlyArray<string>
}

const serviceName = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/**
 * `stack up -d` with nothing but `--dir PATH` (or `--dir=PATH`) and service names, in any order: what the
 * launcher may start early. Anything else (help, an unknown option, a name that is not a plain service name)
 * is left to the CLI: undefined.
 */
export const parseDetachedUp = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string
): DetachedUp | undefined => {
  if (argv[0] !== "stack" || argv[1] !== "up") return undefined
  let detach = false
  let dir: string | undefined
  const services: Array<string> = []
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "-d" || arg === "--detach") detach = true
    else if (arg === "--dir") {
      const value = argv[++i]
      if (value === undefined || value.startsWith("-") || dir !== undefined) return undefined
      dir = value
    } else if (arg.startsWith("--dir=")) {
      if (dir !== undefined) return undefined
      dir = arg.slice("--dir=".length)
    } else if (serviceName.test(arg)) services.push(arg)
    else return undefined
  }
  if (!detach || dir === "") return undefined
  return { root: path.resolve(cwd, dir ?? env.CORE_DIR ?? "."), services }
}

/** How long a supervisor that was never adopted gets to stop its stack after SIGTERM, at exit, before SIGKILL. */
const STOP_AT_EXIT_MS = 15_000

/**
 * Stops `child` and waits for it, synchronously (this runs in an `exit` listener): SIGTERM, then SIGKILL after
 * `STOP_AT_EXIT_MS`. A supervisor stops its services before it exits.
 */
const stopNow = (child: ChildProcess): void => {
  const pid = child.pid
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const nap = new Int32Array(new SharedArrayBuffer(4))
  // a supervisor that has exited stays a zombie until this process reaps it: not running
  const gone = (deadline: number) => {
    while (isRunning({ pid, startTime: null })) {
      if (Date.now() > deadline) return false
      Atomics.wait(nap, 0, 0, 10)
    }
    return true
  }
  child.kill("SIGTERM")
  if (!gone(Date.now() + STOP_AT_EXIT_MS)) {
    child.kill("SIGKILL")
    gone(Date.now() + 2_000)
  }
}

const EARLY = Symbol.for("core/earlySupervisor")

export interface Early extends DetachedUp {
  readonly spawned: SpawnedSupervisor
}

type WithEarly = typeof globalThis & { [EARLY]?: Early | undefined }

/**
 * In the launcher: when the command is a `stack up -d` that it recognises and the stack directory has no
 * supervisor record, starts the background supervisor now and leaves it for `adoptEarly`. Otherwise (or on
 * any error) does nothing: the CLI then does it all itself. A supervisor started here that nobody adopts (the
 * command failed to parse after all, or a Ctrl-C came while the CLI loaded) is stopped when this process exits,
 * which then exits 130 if it was interrupted, as an interrupted `up -d` does.
 */
export const earlyDetachedUp = (argv: ReadonlyArray<string>): void => {
  try {
    const up = parseDetachedUp(argv, process.env, process.cwd())
    if (up === undefined) return
    const stateDir = stateDirOf(up.root)
    // a supervisor record or socket: the CLI's own checks decide (a running stack, or leftovers to clean)
    if (fs.existsSync(path.join(stateDir, "supervisor.pid")) || fs.existsSync(path.join(stateDir, "control.sock")))
      return
    if (!fs.statSync(up.root).isDirectory()) return
    // a folder that is a link, another user's or writable by others: the CLI refuses it, saying why
    if (untrustedStateDir(stateDir) !== undefined) return
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    fs.chmodSync(stateDir, 0o700)
    // From here a Ctrl-C or SIGTERM must not end this process by default, which would leave the supervisor
    // running: held by this listener, it reaches the handler registered next, the quick wait's (cli/QuickUp.ts)
    // or, while the CLI bundle loads, the CLI's own.
    let held = false
    const hold = () => {
      held = true
    }
    process.on("SIGINT", hold)
    process.on("SIGTERM", hold)
    const spawned = spawnSupervisor(up.root, up.services, path.join(stateDir, "supervisor.log"), performance.timeOrigin)
    ;(globalThis as WithEarly)[EARLY] = { ...up, spawned }
    process.once("exit", () => {
      // never adopted (the CLI was interrupted while it loaded, or read the command otherwise): stop it here
      if ((globalThis as WithEarly)[EARLY] === undefined) return
      stopNow(spawned.child)
      if (held) {
        process.stderr.write(`${INTERRUPTED_LINE}\n`)
        process.exitCode = INTERRUPTED_EXIT_CODE
      }
    })
  } catch {
    // the CLI will say what is wrong
  }
}

/** In the launcher: the supervisor it started for this `up -d`, if any, still to be adopted. */
export const earlyStarted = (): Early | undefined => (globalThis as WithEarly)[EARLY]

/** In the launcher: the supervisor it started is ready and this process is done with it; it is not ended at exit. */
export const releaseEarly = (): void => {
  ;(globalThis as WithEarly)[EARLY] = undefined
}

/** In the CLI: the supervisor the launcher started for this very `up -d`, now ours to wait for; else undefined. */
export const adoptEarly = (root: string, services: ReadonlyArray<string>): SpawnedSupervisor | undefined => {
  const early = (globalThis as WithEarly)[EARLY]
  if (early === undefined) return undefined
  ;(globalThis as WithEarly)[EARLY] = undefined
  const same = early.root === root && early.services.join("\0") === services.join("\0")
  if (same) return early.spawned
  early.spawned.child.kill("SIGTERM")
  return undefined
}
