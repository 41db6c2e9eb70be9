/**
 * The records of `.core-stack/`, decoded with Schema: `supervisor.pid` (who holds the stack directory) and
 * `pids/<pid>-<start>.log` (a supervisor's journal of the process groups it spawned, `GroupJournal`). A file that is missing and one that does
 * not decode are told apart; neither is ever trusted as a record.
 */
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { pidsDirOf, removeState, StateDirError, statePaths } from "./StateDir.js"
import { readOwnFile, untrustedStateDir } from "./Trust.js"

/** What `supervisor.pid` holds: the one supervisor of a stack directory. */
export const SupervisorRecord = Schema.Struct({
  pid: Schema.Int,
  /** Clock ticks since boot (`/proc/<pid>/stat` field 22), or null where unknown. */
  startTime: Schema.NullOr(Schema.Number),
  /** The stack directory. */
  dir: Schema.String
})
export type SupervisorRecord = typeof SupervisorRecord.Type

/** What a line of a group journal records: a process group and the supervisor that spawned it. */
export const GroupRecordFile = Schema.Struct({
  service: Schema.String,
  /** Leader pid = process group id. */
  pid: Schema.Int,
  /** The leader's start time, or null if it was already gone when recorded. */
  startTime: Schema.NullOr(Schema.Number),
  /** No process of the group started before this (the leader's start, else the supervisor's). */
  notBefore: Schema.Number,
  supervisorPid: Schema.Int,
  supervisorStart: Schema.NullOr(Schema.Number)
})
export type GroupRecordFile = typeof GroupRecordFile.Type

/** A record file as read: its value, or why there is none. */
export type Read<A> =
  | { readonly _tag: "Found"; readonly value: A }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Invalid" }

/**
 * Reads and decodes one record file (synchronous: the lock and leftover checks run in exit paths too). A file
 * that is not the user's own (`readOwnFile`) is never trusted as a record.
 */
export const readRecord = <A, I>(schema: Schema.Schema<A, I>, file: string): Read<A> => {
  const text = readOwnFile(file)
  if (text === undefined) return { _tag: "Missing" }
  if (text === "untrusted") return { _tag: "Invalid" }
  const decoded = Schema.decodeUnknownEither(Schema.parseJson(schema))(text)
  return Either.isRight(decoded) ? { _tag: "Found", value: decoded.right } : { _tag: "Invalid" }
}

/** The value of a record file, or undefined when it is missing or invalid. */
export const recordOf = <A, I>(schema: Schema.Schema<A, I>, file: string): A | undefined => {
  const read = readRecord(schema, file)
  return read._tag === "Found" ? read.value : undefined
}

/** Writes a record file (0600). */
export const writeRecord = <A, I>(
  schema: Schema.Schema<A, I>,
  file: string,
  value: A
): Effect.Effect<void, StateDirError> =>
  Effect.try({
    try: () => fs.writeFileSync(file, Schema.encodeSync(Schema.parseJson(schema))(value), { mode: 0o600 }),
    catch: (cause) => new StateDirError({ path: file, cause })
  })

/** The recorded supervisor of a state directory (none in a folder not to be trusted, `untrustedStateDir`). */
export const readSupervisorRecord = (stateDir: string): Read<SupervisorRecord> =>
  untrustedStateDir(stateDir) === undefined
    ? readRecord(SupervisorRecord, statePaths(stateDir).pidFile)
    : { _tag: "Missing" }

/** The recorded `up -d` that is starting the stack of a state directory (as `readSupervisorRecord`). */
export const readStarterRecord = (stateDir: string): Read<SupervisorRecord> =>
  untrustedStateDir(stateDir) === undefined
    ? readRecord(SupervisorRecord, statePaths(stateDir).starterFile)
    : { _tag: "Missing" }

/**
 * A supervisor's record of its process groups: one journal, `pids/<pid>-<start time>.log` (the supervisor's
 * identity), which it appends a line to per change: `+ {GroupRecordFile}` when a group is recorded, `- PGID`
 * when it is forgotten. Replayed in order, the lines give the groups still recorded. A file per group cost an
 * inode made and one freed for each, and ext4 looks past the inodes freed in the last seconds for every new
 * one: every service of 200 ready 692 -> 581 ms without them, traced (a start right after a stop); a line is
 * one write. The journal is written again with the live groups alone once it holds many more lines than that
 * (a service restarting for days), and removed when the supervisor ends with no group left recorded.
 */
export interface GroupJournal {
  /** Records a group; the error when the line could not be written. */
  readonly add: (record: GroupRecordFile) => StateDirError | undefined
  /** Forgets a group; the error when the line could not be written. */
  readonly remove: (pid: number) => StateDirError | undefined
  /** Closes the journal, and removes it when no group is left recorded; the error when it could not be. */
  readonly close: () => StateDirError | undefined
}

/** The journal of the supervisor `pid` (started at `startTime`, clock ticks; null when unknown). */
export const groupJournalPath = (stateDir: string, pid: number, startTime: number | null): string =>
  path.join(pidsDirOf(stateDir), `${pid}-${startTime ?? "x"}.log`)

/** The supervisor whose journal `name` is (`groupJournalPath`), or undefined for another file. */
const journalOwner = (name: string): { readonly pid: number; readonly startTime: number | null } | undefined => {
  const m = /^(\d+)-(\d+|x)\.log$/.exec(name)
  if (m === null) return undefined
  return { pid: Number(m[1]), startTime: m[2] === "x" ? null : Number(m[2]) }
}

/** Lines written past this many more than twice the live groups, the journal is written anew. */
const JOURNAL_SLACK = 1024

/** Opens (creates, 0600) the journal of this supervisor, `groupJournalPath`. */
export const openGroupJournal = (
  stateDir: string,
  pid: number,
  startTime: number | null
): Effect.Effect<GroupJournal, StateDirError> =>
  Effect.try({
    try: () => {
      const file = groupJournalPath(stateDir, pid, startTime)
      const open = () => fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600)
      let fd: number | undefined = open()
      // each live group's line, to write the journal anew
      const live = new Map<number, string>()
      let lines = 0
      const append = (line: string): StateDirError | undefined => {
        if (fd === undefined) return new StateDirError({ path: file, cause: new Error("the journal is closed") })
        try {
          fs.writeSync(fd, line)
          lines++
          if (lines > 2 * live.size + JOURNAL_SLACK) compact()
          return undefined
        } catch (cause) {
          return new StateDirError({ path: file, cause })
        }
      }
      const compact = () => {
        const fresh = `${file}.${process.pid}.tmp`
        fs.writeFileSync(fresh, [...live.values()].join(""), { mode: 0o600 })
        fs.renameSync(fresh, file)
        fs.closeSync(fd!)
        fd = open()
        lines = live.size
      }
      return {
        add: (record) => {
          // the Schema's fields in its order, none transformed: what its encoding gives, without its walk
          const { service, pid, startTime, notBefore, supervisorPid, supervisorStart } = record
          const fields = { service, pid, startTime, notBefore, supervisorPid, supervisorStart }
          const line = `+ ${JSON.stringify(fields)}\n`
          live.set(record.pid, line)
          return append(line)
        },
        remove: (pid) => {
          if (!live.delete(pid)) return undefined
          return append(`- ${pid}\n`)
        },
        close: () => {
          if (fd === undefined) return undefined
          try {
            fs.closeSync(fd)
            fd = undefined
            if (live.size === 0) removeState(file)
            return undefined
          } catch (cause) {
            return new StateDirError({ path: file, cause })
          }
        }
      }
    },
    catch: (cause) => new StateDirError({ path: pidsDirOf(stateDir), cause })
  })

const decodeGroupRecord = Schema.decodeUnknownEither(Schema.parseJson(GroupRecordFile))

/** The groups a journal's text leaves recorded; a line that does not decode (a torn last one) is skipped. */
export const replayJournal = (text: string): ReadonlyArray<GroupRecordFile> => {
  const live = new Map<number, GroupRecordFile>()
  for (const line of text.split("\n")) {
    if (line.startsWith("+ ")) {
      const decoded = decodeGroupRecord(line.slice(2))
      if (Either.isRight(decoded)) live.set(decoded.right.pid, decoded.right)
    } else if (line.startsWith("- ")) {
      live.delete(Number(line.slice(2)))
    }
  }
  return [...live.values()]
}

/**
 * Every group journal of a state directory: its supervisor (from its name) and the groups it leaves recorded
 * (none for a file that is not the user's own, `readOwnFile`).
 */
export const groupJournals = (
  stateDir: string
): ReadonlyArray<{
  readonly file: string
  readonly owner: { readonly pid: number; readonly startTime: number | null }
  readonly records: ReadonlyArray<GroupRecordFile>
}> => {
  const { pidsDir } = statePaths(stateDir)
  if (untrustedStateDir(stateDir) !== undefined) return []
  let names: Array<string>
  try {
    names = fs.readdirSync(pidsDir)
  } catch {
    return []
  }
  return names.flatMap((name) => {
    const owner = journalOwner(name)
    if (owner === undefined) return []
    const file = path.join(pidsDir, name)
    const text = readOwnFile(file)
    return [{ file, owner, records: text === undefined || text === "untrusted" ? [] : replayJournal(text) }]
  })
}

/** The groups recorded in a state directory, by every journal in it. */
export const recordedGroups = (stateDir: string): ReadonlyArray<GroupRecordFile> =>
  groupJournals(stateDir).flatMap((journal) => journal.records)
