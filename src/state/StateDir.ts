/**
 * `.core-stack/`, the runtime state of a stack directory: where each of its files lives, and the errors of
 * using it. The one owner of the folder is `src/state/` (this module, `StateRecords`, `SupervisorLock`,
 * `ControlSocket`); nothing else builds a path inside it.
 */
import { Data, Effect } from "effect"
import * as fs from "node:fs"

import { untrustedStateDir } from "./Trust.js"

export { pidsDirOf, type StatePaths, serviceLogPath, stackDirOf, stateDirOf, statePaths } from "./StatePaths.js"

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
    const code = (this.cause as NodeJS.ErrnoException | undefined)?.code
    const reason =
      code === "EEXIST" || code === "ENOTDIR"
        ? `a file is in the way where a directory should be (${code}); move it aside`
        : code === "EACCES" || code === "EPERM"
          ? `permission denied (${code})`
          : code === "ENOSPC"
            ? "no space left on device (ENOSPC)"
            : this.cause instanceof Error
              ? this.cause.message
              : String(this.cause)
    return `cannot use ${this.path}: ${reason}`
  }
}

/** Fails with a `StateDirError` when `.core-stack/` must not be used (`untrustedStateDir`). */
export const checkStateDir = (stateDir: string): Effect.Effect<void, StateDirError> =>
  Effect.suspend(() => {
    const why = untrustedStateDir(stateDir)
    return why === undefined ? Effect.void : Effect.fail(new StateDirError({ path: stateDir, cause: new Error(why) }))
  })

/** Creates `.core-stack/` (mode 0700) or tightens its mode; refuses one that is not to be trusted. */
export const ensureStateDir = (stateDir: string): Effect.Effect<void, StateDirError> =>
  Effect.zipRight(
    checkStateDir(stateDir),
    Effect.try({
      try: () => {
        fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
        fs.chmodSync(stateDir, 0o700)
      },
      catch: (cause) => new StateDirError({ path: stateDir, cause })
    })
  )

/**
 * Removes a file or folder of the state directory, if it is there. A file (the common case: a group's record,
 * the socket) is unlinked at once; `rmSync`'s recursive walk cost ~0.08 ms a file, 200 of them on every `down`.
 */
export const removeState = (file: string): void => {
  try {
    fs.unlinkSync(file)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT") return
    if (code === "EISDIR" || code === "EPERM") fs.rmSync(file, { force: true, recursive: true })
    else throw error
  }
}
