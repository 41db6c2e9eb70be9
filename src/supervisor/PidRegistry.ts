/**
 * The `ProcessRegistry` of a real supervisor: it holds the supervisor lock of the stack directory, starts
 * the guardian (see Guardian.ts), and records each spawned process group in its journal in `.core-stack/pids/`
 * and with the guardian until it is unregistered. The files themselves belong to `src/state/`.
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import { readStartTime } from "../process/ProcTable.js"
import { StateDirError, type SupervisorRunning, statePaths } from "../state/StateDir.js"
import { openGroupJournal } from "../state/StateRecords.js"
import { holdSupervisorLock } from "../state/SupervisorLock.js"
import { startGuardian } from "./Guardian.js"
import { ProcessRegistry, type SpawnedBy } from "../process/ProcessRegistry.js"

/**
 * How long a group of a whole stop may stay recorded once it is gone (`unregisterAfter`): a supervisor killed
 * meanwhile leaves the guardian and the next command to check it, a scan of `/proc` each when its leader is gone.
 */
const HOLD_LIMIT_MS = 200

/**
 * Releasing it ends the guardian (which kills whatever is still registered) and then removes the lock.
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
      const supervisorPid = process.pid
      const supervisorStart = readStartTime(process.pid) ?? null
      const journal = yield* openGroupJournal(stateDir, supervisorPid, supervisorStart)
      const guardian = yield* startGuardian.pipe(
        Effect.catchAll((e) => Effect.logWarning(e.message).pipe(Effect.as(undefined)))
      )
      // registered after the guardian, so released before it and the lock: the journal is closed (and removed,
      // with no group left in it) before the guardian ends and the lock goes
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          const failed = journal.close()
          return failed ? Effect.logWarning(`cannot close the group records: ${failed.message}`) : Effect.void
        })
      )
      // the guardian's `del` lines of one turn leave in one write (see Guardian's `send`)
      const forget = (pids: ReadonlyArray<number>) =>
        Effect.forEach(
          pids,
          (pid) => {
            journal.remove(pid)
            return guardian ? guardian.forget(pid) : Effect.void
          },
          { discard: true }
        )
      // the groups of a whole stop (`unregisterAfter`), and those of them unregistered and not yet forgotten
      let holdable: ReadonlySet<number> | undefined
      const held = new Set<number>()
      let timer: ReturnType<typeof setTimeout> | undefined
      const forgetHeld = () => {
        clearTimeout(timer)
        timer = undefined
        const pids = [...held]
        held.clear()
        Effect.runSync(forget(pids))
      }
      const endHold = Effect.sync(() => {
        holdable = undefined
        forgetHeld()
      })
      // before the journal is closed and the guardian ends, whatever a stop still running holds
      yield* Effect.addFinalizer(() => endHold)
      const registerNow = (service: string, pid: number, spawned?: SpawnedBy) => {
        // a pid used again while held: its new group's record and watch must not be forgotten with the old
        held.delete(pid)
        const startTime = (spawned ? spawned.startTime : readStartTime(pid)) ?? null
        const record = { service, pid, startTime, notBefore: startTime ?? supervisorStart ?? 0 }
        // watched by the guardian even when the spawner started it, which kills its groups when the
        // supervisor dies: the guardian also outlives the spawner (both killed at once), and ends a group
        // whose leader has exited (the spawner only kills the groups of leaders it has not reaped). From the
        // end of this turn when the spawner started it, at once when Node's spawn() did (Guardian's `send`)
        guardian?.watch(record, spawned === undefined)
        const failed = journal.add({ ...record, supervisorPid, supervisorStart })
        if (failed) Effect.runSync(Effect.logWarning(`cannot record ${service} (pid ${pid}): ${failed.message}`))
      }
      return ProcessRegistry.of({
        register: (service, pid, spawned) => Effect.sync(() => registerNow(service, pid, spawned)),
        registerNow,
        unregister: (_service, pid) =>
          Effect.suspend(() => {
            if (!holdable?.has(pid)) return forget([pid])
            held.add(pid)
            // ref'd: a whole stop clears it when it ends (`endHold`), and Node deletes the list of a cleared timer at
            // once only when it is ref'd. An unref'd one's emptied list stayed queued, and in the supervisor's
            // snapshot, whose build runs a stop (SnapshotWarmUp), it kept Node from arming any later timer
            if (timer === undefined) timer = setTimeout(forgetHeld, HOLD_LIMIT_MS)
            return Effect.void
          }),
        signalGroups: (signal, pgids) => guardian?.signal(signal, pgids) ?? false,
        unregisterAfter: (pgids, effect) =>
          Effect.suspend(() => {
            // nested (two whole stops at once): the outer one holds
            if (holdable !== undefined) return effect
            holdable = new Set(pgids)
            return Effect.ensuring(effect, endHold)
          })
      })
    })
  )

/** `PidRegistry.layer(stateDir)`. */
export const PidRegistry = { layer } as const
