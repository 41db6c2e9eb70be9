/**
 * What of `.core-stack/` may be trusted, in plain Node (the launcher's quick paths use it too). Its records name
 * the processes `core` signals (a dead supervisor's groups are SIGKILLed) and its socket answers `status` and
 * `down`: a folder or file there that another user may write would let that user choose what a `core` run by
 * you, or by root, signals, reads or writes.
 */
import * as fs from "node:fs"

/** Whether a file or folder is another user's, or writable by other users: why not to trust it, or undefined. */
export const untrustedOwner = (stat: fs.Stats): string | undefined => {
  const uid = process.geteuid?.()
  if (uid !== undefined && stat.uid !== uid) {
    return `it belongs to another user (uid ${stat.uid}), not to you (uid ${uid}); run core as that user`
  }
  if ((stat.mode & 0o022) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, "0")
    return `it is writable by other users (mode ${mode}); remove it, or chmod 700 it if nobody else wrote to it`
  }
  return undefined
}

/**
 * Why `.core-stack/` must not be used, or undefined (also when it is not there yet). Its records name the
 * processes `core` signals (a leftover group is SIGKILLed) and its socket answers `status` and `down`: in a
 * folder that is a symbolic link, another user's or writable by others, another user would choose what a
 * `core` run by you (or by root) signals, reads or writes.
 */
export const untrustedStateDir = (stateDir: string): string | undefined => {
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(stateDir)
  } catch {
    return undefined
  }
  if (stat.isSymbolicLink()) return "it is a symbolic link; remove it"
  // a file in the way: the callers' own errors say so
  return stat.isDirectory() ? untrustedOwner(stat) : undefined
}

/**
 * Root, at a stack another user runs (`fly ssh console -C "core stack status"` logs in as root; the image runs
 * its stack as an unprivileged user): becomes that user for the rest of this command, so that the stack's
 * records and socket, that user's, can only make it do what that user may do (signal that user's processes).
 * Only for a `.core-stack/` that is a real folder, that user's alone and writable by no one else; otherwise
 * nothing changes and `untrustedStateDir` says why. Returns the uid taken, if any. Not for `up`: a stack is
 * started by the user it runs as.
 */
export const becomeStateDirOwner = (stateDir: string): number | undefined => {
  if (process.geteuid?.() !== 0 || process.setuid === undefined || process.setgid === undefined) return undefined
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(stateDir)
  } catch {
    return undefined
  }
  if (!stat.isDirectory() || stat.uid === 0 || (stat.mode & 0o022) !== 0) return undefined
  // groups first (it takes root to change them), then the group, then the user
  process.setgroups?.([stat.gid])
  process.setgid(stat.gid)
  process.setuid(stat.uid)
  return stat.uid
}

/**
 * The text of a state file that is the user's own (not followed if it is a symbolic link, not another user's,
 * not writable by others): a record names processes to signal. Undefined when missing; "untrusted" otherwise.
 */
export const readOwnFile = (file: string): string | undefined | "untrusted" => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? undefined : "untrusted"
  }
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile() || untrustedOwner(stat) !== undefined) return "untrusted"
    return fs.readFileSync(fd, "utf8")
  } catch {
    return "untrusted"
  } finally {
    fs.closeSync(fd)
  }
}
