/**
 * The `ProcessRegistry` of a real supervisor, and the files of `.core-stack/` that say who owns the stack:
 *
 * - `supervisor.pid`: `{ pid, startTime, dir }` of the one supervisor of this stack directory. Created
 *   atomically (link of a complete temp file), so two `up`s cannot both win.
 * - `pids/<pgid>.json`: one `GroupRecord` per spawned process group, removed when the group is gone.
 *
 * While the supervisor lives, a guardian (see Guardian.ts) watches the same groups and kills them if the
 * supervisor dies hard. If even the guardian is gone (the whole tree was killed), the next `core` command
 * for the directory calls `cleanLeftovers`: a recorded supervisor that is dead leaves records whose groups
 * are killed, identity checked, and the files removed.
 */
import { Data, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { readProcStat, readStartTime } from "../process/ProcTable.js"
import { type GroupRecord, killGroup, startGuardian } from "./Guardian.js"
import { ProcessRegistry } from "../process/ProcessRegistry.js"

/** Paths of the runtime state of a stack directory. */
export const statePaths = (stateDir: string) => ({
  stateDir,
  socket: path.join(stateDir, "control.sock"),
  pidFile: path.join(stateDir, "supervisor.pid"),
  pidsDir: path.join(stateDir, "pids"),
  supervisorLog: path.join(stateDir, "supervisor.log")
})

/** The state directory of a stack directory. */
export const stateDirOf = (dir: string): string => path.join(path.resolve(dir), ".core-stack")

/** What `supervisor.pid` holds. */
export interface SupervisorRecord {
  readonly pid: number
  readonly startTime: number | null
  readonly dir: string
}

/** Another supervisor is running for this stack directory (`pid` 0: it answers on the socket, pid unknown). */
export class SupervisorRunning extends Data.TaggedError("SupervisorRunning")<{
  readonly dir: string
  readonly pid: number
}> {
  override get message() {
    const who = this.pid > 0 ? `supervisor pid ${this.pid}; ` : ""
    return `a stack is already running in ${this.dir} (${who}stop it with: core stack down)`
  }
}

/** The state directory could not be prepared or written. */
export class StateDirError extends Data.TaggedError("StateDirError")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot use ${this.path}: ${reason}`
  }
}

/** A leftover group found and ended by `cleanLeftovers`. */
export interface Leftover {
  readonly service: string
  readonly pid: number
  /** Pids that were still alive and got SIGKILL (empty when the group was already gone). */
  readonly killed: ReadonlyArray<number>
}

const stackDirOf = (stateDir: string) => path.dirname(stateDir)

/** The parsed file, `undefined` when it does not exist, `"invalid"` when it is not JSON. */
const readJson = (file: string): unknown => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
  try {
    return JSON.parse(text)
  } catch {
    return "invalid"
  }
}

const isSupervisorRecord = (u: unknown): u is SupervisorRecord =>
  typeof u === "object" &&
  u !== null &&
  Number.isInteger((u as SupervisorRecord).pid) &&
  ((u as SupervisorRecord).startTime === null || typeof (u as SupervisorRecord).startTime === "number")

/** What `pids/<pgid>.json` holds: the group and the supervisor that spawned it. */
interface RecordFile extends GroupRecord {
  readonly supervisorPid: number
  readonly supervisorStart: number | null
}

const isRecordFile = (u: unknown): u is RecordFile =>
  typeof u === "object" &&
  u !== null &&
  typeof (u as RecordFile).service === "string" &&
  Number.isInteger((u as RecordFile).pid) &&
  typeof (u as RecordFile).notBefore === "number" &&
  Number.isInteger((u as RecordFile).supervisorPid)

/** Is the process of this record still the one that wrote it (same pid, same start time)? */
export const isAlive = (record: { readonly pid: number; readonly startTime: number | null }): boolean => {
  const stat = readProcStat(record.pid)
  if (stat) return stat.state !== "Z" && (record.startTime === null || stat.startTime === record.startTime)
  if (record.startTime !== null) return false
  try {
    process.kill(record.pid, 0)
    return true
  } catch {
    return false
  }
}

/** The live supervisor recorded in `supervisor.pid`, if any. */
export const liveSupervisor = (stateDir: string): SupervisorRecord | undefined => {
  const record = readJson(statePaths(stateDir).pidFile)
  return isSupervisorRecord(record) && isAlive(record) ? record : undefined
}

const selfRecord = (stateDir: string): SupervisorRecord => ({
  pid: process.pid,
  startTime: readStartTime(process.pid) ?? null,
  dir: stackDirOf(stateDir)
})

const rm = (file: string) => fs.rmSync(file, { force: true, recursive: true })

/** Creates `.core-stack/` (mode 0700) or tightens its mode. */
export const ensureStateDir = (stateDir: string): Effect.Effect<void, StateDirError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
      fs.chmodSync(stateDir, 0o700)
    },
    catch: (cause) => new StateDirError({ path: stateDir, cause })
  })

/**
 * Ends what a dead supervisor left behind: its recorded groups (identity checked, SIGKILL), the records,
 * its pid file and its socket. Does nothing while the recorded supervisor is alive. Never fails: what
 * cannot be removed is logged and left.
 */
export const cleanLeftovers: (stateDir: string) => Effect.Effect<ReadonlyArray<Leftover>> = Effect.fn(
  "PidRegistry.cleanLeftovers"
)(function* (stateDir: string) {
  const paths = statePaths(stateDir)
  if (!fs.existsSync(stateDir)) return []
  const owner = readJson(paths.pidFile)
  if (isSupervisorRecord(owner) && isAlive(owner)) return []
  let files: Array<string> = []
  try {
    files = fs.readdirSync(paths.pidsDir).filter((f) => f.endsWith(".json"))
  } catch {
    files = []
  }
  const leftovers: Array<Leftover> = []
  for (const file of files) {
    const record = readJson(path.join(paths.pidsDir, file))
    if (isRecordFile(record)) {
      // a record of another, live supervisor (one that took the lock since we looked) is not ours to end
      if (isAlive({ pid: record.supervisorPid, startTime: record.supervisorStart })) continue
      leftovers.push({ service: record.service, pid: record.pid, killed: killGroup(record) })
    }
    rm(path.join(paths.pidsDir, file))
  }
  for (const l of leftovers.filter((l) => l.killed.length > 0)) {
    yield* Effect.logWarning(`ended leftover processes of ${l.service}: ${l.killed.join(", ")}`)
  }
  // Only the files of the dead supervisor read above: its socket cannot answer any more.
  if (isSupervisorRecord(owner)) {
    const now = readJson(paths.pidFile)
    if (isSupervisorRecord(now) && now.pid === owner.pid && now.startTime === owner.startTime) {
      rm(paths.pidFile)
      rm(paths.socket)
    }
  }
  return leftovers
})

/**
 * Holds `supervisor.pid` for the current process until the scope closes: the one-supervisor-per-directory
 * lock. A stale file of a dead supervisor is cleaned up (with its leftovers) and taken over. Holding it
 * already (from an enclosing scope of the same process) is fine and leaves the release to that scope.
 */
export const holdSupervisorLock = Effect.fn("PidRegistry.holdSupervisorLock")(function* (stateDir: string) {
  yield* ensureStateDir(stateDir)
  const paths = statePaths(stateDir)
  const me = selfRecord(stateDir)
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = readJson(paths.pidFile)
    if (isSupervisorRecord(current) && current.pid === me.pid && current.startTime === me.startTime) return
    if (isSupervisorRecord(current) && isAlive(current)) {
      return yield* new SupervisorRunning({ dir: me.dir, pid: current.pid })
    }
    yield* cleanLeftovers(stateDir)
    if (current !== undefined && !isSupervisorRecord(current)) rm(paths.pidFile)
    const tmp = `${paths.pidFile}.${me.pid}.tmp`
    const linked = yield* Effect.try({
      try: () => {
        fs.writeFileSync(tmp, JSON.stringify(me), { mode: 0o600 })
        try {
          fs.linkSync(tmp, paths.pidFile)
          return true
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "EEXIST") return false
          throw e
        } finally {
          rm(tmp)
        }
      },
      catch: (cause) => new StateDirError({ path: paths.pidFile, cause })
    })
    if (linked) {
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          const held = readJson(paths.pidFile)
          if (isSupervisorRecord(held) && held.pid === me.pid) rm(paths.pidFile)
        })
      )
      return
    }
  }
  return yield* new StateDirError({ path: paths.pidFile, cause: new Error("could not take the supervisor lock") })
})

/**
 * The registry of a real supervisor: takes the supervisor lock, starts the guardian, and records each
 * spawned group in `pids/` and with the guardian until it is unregistered. Releasing it ends the guardian
 * (which kills whatever is still registered) and then removes the lock.
 */
export const layer = (stateDir: string): Layer.Layer<ProcessRegistry, SupervisorRunning | StateDirError> =>
  Layer.scoped(
    ProcessRegistry,
    Effect.gen(function* () {
      yield* holdSupervisorLock(stateDir)
      const paths = statePaths(stateDir)
      yield* Effect.try({
        try: () => fs.mkdirSync(paths.pidsDir, { recursive: true, mode: 0o700 }),
        catch: (cause) => new StateDirError({ path: paths.pidsDir, cause })
      })
      const guardian = yield* startGuardian.pipe(
        Effect.catchAll((e) => Effect.logWarning(e.message).pipe(Effect.as(undefined)))
      )
      const me = selfRecord(stateDir)
      const supervisorStart = me.startTime ?? 0
      const recordFile = (pid: number) => path.join(paths.pidsDir, `${pid}.json`)
      return ProcessRegistry.of({
        register: (service, pid) =>
          Effect.gen(function* () {
            const startTime = readStartTime(pid) ?? null
            const record: GroupRecord = { service, pid, startTime, notBefore: startTime ?? supervisorStart }
            if (guardian) yield* guardian.watch(record)
            const file: RecordFile = { ...record, supervisorPid: me.pid, supervisorStart: me.startTime }
            yield* Effect.try(() => fs.writeFileSync(recordFile(pid), JSON.stringify(file), { mode: 0o600 })).pipe(
              Effect.catchAll((e) => Effect.logWarning(`cannot record ${service} (pid ${pid}): ${e.cause}`))
            )
          }),
        unregister: (_service, pid) =>
          Effect.gen(function* () {
            if (guardian) yield* guardian.forget(pid)
            yield* Effect.sync(() => rm(recordFile(pid)))
          })
      })
    })
  )

/** `PidRegistry.layer(stateDir)` and friends. */
export const PidRegistry = { layer, cleanLeftovers, holdSupervisorLock, liveSupervisor, statePaths } as const
