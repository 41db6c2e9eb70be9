/**
 * Whether a file or folder can be changed by nobody but this user (or root): the test for anything read as code
 * (the launcher's V8 code cache, the supervisor's startup snapshot), which whoever can write chooses what runs.
 */
import type * as fs from "node:fs"

const uid = process.geteuid?.() ?? -1

/** Owned by this user or root, and writable by neither its group nor others. */
export const ours = (stat: fs.Stats): boolean => (stat.uid === uid || stat.uid === 0) && (stat.mode & 0o022) === 0
