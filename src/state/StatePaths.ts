/**
 * The paths of `.core-stack/`, the runtime state of a stack directory (re-exported by `StateDir.ts`). Plain
 * Node: the launcher's quick paths use them before the CLI bundle is loaded.
 */
import * as path from "node:path"

/** Paths of the runtime state of a stack directory. */
export const statePaths = (stateDir: string) => ({
  stateDir,
  /** The control API's Unix socket (0600). */
  socket: path.join(stateDir, "control.sock"),
  /** The supervisor lock: a `SupervisorRecord`. */
  pidFile: path.join(stateDir, "supervisor.pid"),
  /** The `up -d` starting the stack, until its supervisor is ready or it gives up: a `SupervisorRecord`. */
  starterFile: path.join(stateDir, "starter.pid"),
  /** The journal of the process groups a supervisor spawned, `<pid>-<start time>-<n>.log` (`GroupJournal`). */
  pidsDir: pidsDirOf(stateDir),
  /** The output of a background supervisor (`up -d`). */
  supervisorLog: path.join(stateDir, "supervisor.log"),
  /** Service logs, `<name>.log`. */
  logsDir: logsDirOf(stateDir)
})

/** `statePaths(stateDir).pidsDir` alone. */
export const pidsDirOf = (stateDir: string): string => path.join(stateDir, "pids")

const logsDirOf = (stateDir: string): string => path.join(stateDir, "logs")

export type StatePaths = ReturnType<typeof statePaths>

/** A service's log file (rotated files beside it: `.1`, `.2`, ...). */
export const serviceLogPath = (stateDir: string, service: string): string =>
  path.join(logsDirOf(stateDir), `${service}.log`)

/** The stack directory of each state directory given out below, for `stackDirOf`. */
const stackDirs = new Map<string, string>()

/**
 * The state directory of a stack directory: `.core-stack` in it, or `CORE_STATE_DIR` when that is set (for a
 * container whose only writable place for it is a volume: the kubelet makes an emptyDir root's and writable by
 * all, which core refuses as `.core-stack`; core makes the folder `CORE_STATE_DIR` names inside it, its own).
 * Read at each call: the supervisor's snapshot must not keep the value of its build.
 */
export const stateDirOf = (dir: string): string => {
  const stack = path.resolve(dir)
  const moved = process.env.CORE_STATE_DIR
  const stateDir = moved !== undefined && moved !== "" ? path.resolve(moved) : path.join(stack, ".core-stack")
  stackDirs.set(stateDir, stack)
  return stateDir
}

/** The stack directory of a state directory. */
export const stackDirOf = (stateDir: string): string => stackDirs.get(stateDir) ?? path.dirname(stateDir)
