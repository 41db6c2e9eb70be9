/**
 * The few reads and writes of `.core-stack/` that the launcher's quick paths need (`cli/QuickVerbs.ts`,
 * `app/QuickUp.ts`), in plain Node: whether a recorded process is alive, and the `up -d` starter record.
 * They read and write the same files, in the same format, as `StateRecords` and `SupervisorLock`
 * (test/QuickPaths.test.ts checks the format against their Schema); anything unexpected reads as "not sure",
 * and the caller then leaves the command to the full CLI.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { readStartTime } from "../process/ProcTable.js"
import { isRunning } from "./ProcessIdentity.js"
import { readOwnFile, untrustedStateDir } from "./Trust.js"

/** A `SupervisorRecord` (`supervisor.pid`, `starter.pid`) in its file's form. */
export interface PlainRecord {
  readonly pid: number
  readonly startTime: number | null
  readonly dir: string
}

/** Whether `value` is a `SupervisorRecord` as its file holds it. */
export const isPlainRecord = (value: unknown): value is PlainRecord => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false
  const r = value as Record<string, unknown>
  return (
    Number.isSafeInteger(r.pid) &&
    (r.startTime === null || (typeof r.startTime === "number" && Number.isFinite(r.startTime))) &&
    typeof r.dir === "string"
  )
}

/**
 * The record in `file` when it is valid, the user's own in a folder that may be trusted (`Trust`), and names a
 * live process; undefined otherwise (missing, invalid, not to be trusted, dead).
 */
export const liveRecorded = (file: string): PlainRecord | undefined => {
  if (untrustedStateDir(path.dirname(file)) !== undefined) return undefined
  const text = readOwnFile(file)
  if (text === undefined || text === "untrusted") return undefined
  try {
    const record: unknown = JSON.parse(text)
    return isPlainRecord(record) && isRunning(record) ? record : undefined
  } catch {
    return undefined
  }
}

/** This process as a record of stack directory `dir`, in the file's text form (what `writeRecord` writes). */
export const selfRecordText = (dir: string): string =>
  JSON.stringify({ pid: process.pid, startTime: readStartTime(process.pid) ?? null, dir } satisfies PlainRecord)

/** Writes `starter.pid` (0600) as `recordStarter` does; false when it cannot. */
export const writeStarter = (starterFile: string, dir: string): boolean => {
  try {
    fs.writeFileSync(starterFile, selfRecordText(dir), { mode: 0o600 })
    return true
  } catch {
    return false
  }
}

/** Removes `starter.pid` when it still names this process (as `recordStarter`'s release does). */
export const removeStarter = (starterFile: string): void => {
  try {
    const record: unknown = JSON.parse(fs.readFileSync(starterFile, "utf8"))
    if (isPlainRecord(record) && record.pid === process.pid) fs.rmSync(starterFile, { force: true })
  } catch {
    // missing or unreadable: nothing of ours to remove
  }
}
