/**
 * One supervisor per stack directory. `supervisor.pid` is the lock: created atomically (a link of a complete
 * temp file, so two `up`s cannot both win), held for a scope, and recognised as stale once the process it
 * names is gone; what a dead supervisor left (its process groups, records, pid file and socket) is ended
 * and removed by `cleanLeftovers`, which every `core` command for the directory runs first.
 */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import { probeSocket } from "./ControlSocket.js"
import { readStartTime } from "../process/ProcTable.js"
import { isRunning, killGroup } from "./ProcessIdentity.js"
import { ensureStateDir, removeState, StateDirError, SupervisorRunning, stackDirOf, statePaths } from "./StateDir.js"
import {
  groupJournals,
  readStarterRecord,
  readSupervisorRecord,
  SupervisorRecord,
  writeRecord
} from "./StateRecords.js"

/** What `supervisor.pid` says about a stack directory. */
export type SupervisorProbe =
  /** A running supervisor holds the directory. */
  | { readonly _tag: "Live"; readonly record: SupervisorRecord }
  /** A file is there, but its supervisor is gone (`record` undefined: the file does not decode). */
  | { readonly _tag: "Stale"; readonly record: SupervisorRecord | undefined }
  /** No supervisor file. */
  | { readonly _tag: "Missing" }

/** Probes the lock of a state directory: live, stale or missing. */
export const probeSupervisor = (stateDir: string): SupervisorProbe => {
  const read = readSupervisorRecord(stateDir)
  switch (read._tag) {
    case "Missing":
      return read
    case "Invalid":
      return { _tag: "Stale", record: undefined }
    case "Found":
      return isRunning(read.value) ? { _tag: "Live", record: read.value } : { _tag: "Stale", record: read.value }
  }
}

/** The live supervisor recorded in `supervisor.pid`, if any. */
export const liveSupervisor = (stateDir: string): SupervisorRecord | undefined => {
  const probe = probeSupervisor(stateDir)
  return probe._tag === "Live" ? probe.record : undefined
}

/**
 * Records this process as the `up -d` starting the stack for the scope's lifetime, so that a `down` in the
 * moment before its supervisor holds the directory can stop it (`liveStarter`).
 */
export const recordStarter = (stateDir: string): Effect.Effect<void, StateDirError, Scope.Scope> =>
  Effect.acquireRelease(writeRecord(SupervisorRecord, statePaths(stateDir).starterFile, selfRecord(stateDir)), () =>
    Effect.sync(() => {
      const read = readStarterRecord(stateDir)
      if (read._tag === "Found" && read.value.pid === process.pid)
        fs.rmSync(statePaths(stateDir).starterFile, { force: true })
    })
  )

/** The `up -d` recorded as starting the stack, if it is still running. */
export const liveStarter = (stateDir: string): SupervisorRecord | undefined => {
  const read = readStarterRecord(stateDir)
  return read._tag === "Found" && isRunning(read.value) ? read.value : undefined
}

/** This process as the lock records it. */
const selfRecord = (stateDir: string): SupervisorRecord => ({
  pid: process.pid,
  startTime: readStartTime(process.pid) ?? null,
  dir: stackDirOf(stateDir)
})

const sameProcess = (a: SupervisorRecord | undefined, b: SupervisorRecord) =>
  a !== undefined && a.pid === b.pid && a.startTime === b.startTime

/** A leftover group found and ended by `cleanLeftovers`. */
export interface Leftover {
  readonly service: string
  readonly pid: number
  /** Pids that were still alive and got SIGKILL (empty when the group was already gone). */
  readonly killed: ReadonlyArray<number>
}

/**
 * Ends what a dead supervisor left behind: its recorded groups (identity checked, SIGKILL), the records,
 * its pid file and its socket. Does nothing while the recorded supervisor is alive. Never fails: what
 * cannot be removed is logged and left.
 */
export const cleanLeftovers: (stateDir: string) => Effect.Effect<ReadonlyArray<Leftover>> = Effect.fn(
  "SupervisorLock.cleanLeftovers"
)(function* (stateDir: string) {
  const paths = statePaths(stateDir)
  if (!fs.existsSync(stateDir)) return []
  const owner = probeSupervisor(stateDir)
  if (owner._tag === "Live") return []
  const leftovers: Array<Leftover> = []
  for (const { file, owner, records } of groupJournals(stateDir)) {
    // the journal of another, live supervisor (one that took the lock since we looked) is not ours to end
    if (owner !== undefined && isRunning(owner)) continue
    for (const record of records) {
      leftovers.push({ service: record.service, pid: record.pid, killed: killGroup(record) })
    }
    removeState(file)
  }
  for (const l of leftovers.filter((l) => l.killed.length > 0)) {
    yield* Effect.logWarning(`ended leftover processes of ${l.service}: ${l.killed.join(", ")}`)
  }
  // Only the files of the dead supervisor read above: its socket cannot answer any more.
  if (owner._tag === "Stale" && owner.record) {
    const now = readSupervisorRecord(stateDir)
    if (now._tag === "Found" && sameProcess(now.value, owner.record)) {
      removeState(paths.pidFile)
      removeState(paths.socket)
    }
  }
  return leftovers
})

/**
 * Holds `supervisor.pid` for the current process until the scope closes: the one-supervisor-per-directory
 * lock. A stale file of a dead supervisor is cleaned up (with its leftovers) and taken over. Holding it
 * already (from an enclosing scope of the same process) is fine and leaves the release to that scope.
 */
export const holdSupervisorLock: (
  stateDir: string
) => Effect.Effect<void, SupervisorRunning | StateDirError, Scope.Scope> = Effect.fn(
  "SupervisorLock.holdSupervisorLock"
)(function* (stateDir: string) {
  yield* ensureStateDir(stateDir)
  const paths = statePaths(stateDir)
  const me = selfRecord(stateDir)
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = probeSupervisor(stateDir)
    if (current._tag === "Live" && sameProcess(current.record, me)) return
    if (current._tag === "Live") return yield* new SupervisorRunning({ dir: me.dir, pid: current.record.pid })
    yield* cleanLeftovers(stateDir)
    if (current._tag === "Stale" && current.record === undefined) removeState(paths.pidFile)
    const tmp = `${paths.pidFile}.${me.pid}.tmp`
    yield* writeRecord(SupervisorRecord, tmp, me)
    const linked = yield* Effect.try({
      try: () => {
        try {
          fs.linkSync(tmp, paths.pidFile)
          return true
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "EEXIST") return false
          throw e
        } finally {
          removeState(tmp)
        }
      },
      catch: (cause) => new StateDirError({ path: paths.pidFile, cause })
    })
    if (linked) {
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          const held = readSupervisorRecord(stateDir)
          if (held._tag === "Found" && held.value.pid === me.pid) removeState(paths.pidFile)
        })
      )
      return
    }
  }
  return yield* new StateDirError({ path: paths.pidFile, cause: new Error("could not take the supervisor lock") })
})

/**
 * For a new `up`: fails with `SupervisorRunning` when a live supervisor holds this stack directory (its
 * pid file names a live process, or something answers on its socket); otherwise removes what a dead one
 * left (its groups, after an identity check, its records, pid file and socket).
 */
export const ensureNoSupervisor: (stateDir: string) => Effect.Effect<void, SupervisorRunning> = Effect.fn(
  "SupervisorLock.ensureNoSupervisor"
)(function* (stateDir: string) {
  const paths = statePaths(stateDir)
  const dir = stackDirOf(stateDir)
  const live = liveSupervisor(stateDir)
  if (live) return yield* new SupervisorRunning({ dir, pid: live.pid })
  yield* cleanLeftovers(stateDir)
  const probe = yield* probeSocket(paths.socket)
  if (probe === "answers") return yield* new SupervisorRunning({ dir, pid: liveSupervisor(stateDir)?.pid ?? 0 })
  // a supervisor that took the lock meanwhile may be binding this very socket: leave it to it
  if (probe === "refused" && !liveSupervisor(stateDir)) yield* Effect.sync(() => removeState(paths.socket))
})
