/**
 * The `ProcessRegistry` of a real supervisor: it holds the supervisor lock of the stack directory, starts
 * the guardian (see Guardian.ts), and records each spawned process group in `.core-stack/pids/` and with
 * the guardian until it is unregistered. The files themselves belong to `src/state/`.
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import { readStartTime } from "../process/ProcTable.js"
import { removeStateOffThread, StateDirError, type SupervisorRunning, statePaths } from "../state/StateDir.js"
import { GroupRecordFile, groupRecordPath, writeRecord } from "../state/StateRecords.js"
import { holdSupervisorLock } from "../state/SupervisorLock.js"
import { startGuardian } from "./Guardian.js"
import { ProcessRegistry } from "../process/ProcessRegistry.js"

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
      const guardian = yield* startGuardian.pipe(
        Effect.catchAll((e) => Effect.logWarning(e.message).pipe(Effect.as(undefined)))
      )
      const supervisorPid = process.pid
      const supervisorStart = readStartTime(process.pid) ?? null
      return ProcessRegistry.of({
        register: (service, pid) =>
          Effect.gen(function* () {
            const startTime = readStartTime(pid) ?? null
            const record = { service, pid, startTime, notBefore: startTime ?? supervisorStart ?? 0 }
            if (guardian) yield* guardian.watch(record)
            yield* writeRecord(GroupRecordFile, groupRecordPath(stateDir, pid), {
              ...record,
              supervisorPid,
              supervisorStart
            }).pipe(Effect.catchAll((e) => Effect.logWarning(`cannot record ${service} (pid ${pid}): ${e.message}`)))
          }),
        unregister: (_service, pid) =>
          Effect.gen(function* () {
            if (guardian) yield* guardian.forget(pid)
            yield* removeStateOffThread(groupRecordPath(stateDir, pid))
          }),
        signalGroups: (signal, pgids) => guardian?.signal(signal, pgids) ?? false
      })
    })
  )

/** `PidRegistry.layer(stateDir)`. */
export const PidRegistry = { layer } as const
