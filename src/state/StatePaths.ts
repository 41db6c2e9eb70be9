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
  /** One `GroupRecordFile` per spawned process group, `<pgid>.json`. */
  pidsDir: pidsDirOf(stateDir),
  /** The output of a background supervisor (`up -d`). */
  supervisorLog: path.join(stateDir, "supervisor.log"),
  /** Service logs, `<name>.log`. */
  logsDir: logsDirOf(stateDir)
})

/** `statePaths(stateDir).pidsDir` alone: a path per process group is built as it starts and ends. */
export const pidsDirOf = (stateDir: string): string => path.join(stateDir, "pids")

const logsDirOf = (stateDir: string): string => path.join(stateDir, "logs")

export type StatePaths = ReturnType<typeof statePaths>

/** A service's log file (rotated files beside it: `.1`, `.2`, ...). */
export const serviceLogPath = (stateDir: string, service: string): string =>
  path.join(logsDirOf(stateDir), `${service}.log`)

/** The state directory of a stack directory. */
export const stateDirOf = (dir: string): string => path.join(path.resolve(dir), ".core-stack")

/** The stack directory of a state directory. */
export const stackDirOf = (stateDir: string): string => path.dirname(stateDir)
