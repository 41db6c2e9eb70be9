/**
 * The records of `.core-stack/`, decoded with Schema: `supervisor.pid` (who holds the stack directory) and
 * `pids/<pid>-<start>-<n>.log` (a supervisor's journal of the process groups it spawned, `GroupJournal`). A file
 * that is missing and one that does not decode are told apart; neither is ever trusted as a record.
 */
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { pidsDirOf, removeState, StateDirError, statePaths } from "./StateDir.js"
import type { ProcessIdentity } from "./ProcessIdentity.js"
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
 * A supervisor's record of its process groups: one journal, `pids/<pid>-<start time>-<n>.log` (the supervisor's
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

/** Journals opened by this process so far: two registries of one process (the lock is re-entrant) keep apart. */
let journalsOpened = 0

/**
 * The journal of the supervisor `pid` (started at `startTime`, clock ticks; null when unknown), the `n`th this
 * process opened.
 */
export const groupJournalPath = (stateDir: string, pid: number, startTime: number | null, n = 1): string =>
  path.join(pidsDirOf(stateDir), `${pid}-${startTime ?? "x"}-${n}.log`)

/**
 * The supervisor whose journal `name` is (`groupJournalPath`), and whether it is one being written anew
 * (`.tmp`); undefined for another file. A record of the version before the journals, `<pgid>.json`, is `legacy`.
 */
const journalFile = (
  name: string
):
  | { readonly _tag: "Journal"; readonly owner: ProcessIdentity; readonly temporary: boolean }
  | { readonly _tag: "Legacy" }
  | undefined => {
  if (/^\d+\.json$/.test(name)) return { _tag: "Legacy" }
  const m = /^(\d+)-(\d+|x)-\d+\.log(\.tmp)?$/.exec(name)
  if (m === null) return undefined
  const owner = { pid: Number(m[1]), startTime: m[2] === "x" ? null : Number(m[2]) }
  return { _tag: "Journal", owner, temporary: m[3] !== undefined }
}

/** Lines written past this many more than twice the live groups, the journal is written anew. */
const JOURNAL_SLACK = 1024

const APPEND = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT

/** Opens (creates, 0600) a journal of this supervisor, `groupJournalPath`. */
export const openGroupJournal = (
  stateDir: string,
  pid: number,
  startTime: number | null
): Effect.Effect<GroupJournal, StateDirError> =>
  Effect.try({
    try: () => {
      const file = groupJournalPath(stateDir, pid, startTime, ++journalsOpened)
      let fd: number | undefined = fs.openSync(file, APPEND, 0o600)
      // each live group's line, to write the journal anew
      const live = new Map<number, string>()
      let lines = 0
      let compactAfter = JOURNAL_SLACK
      // a line cut short by a failed write: the next one starts on a line of its own
      let torn = false
      const writeAll = (text: string) => {
        const bytes = Buffer.from(text)
        for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd!, bytes, at)
      }
      const append = (line: string): StateDirError | undefined => {
        if (fd === undefined) return new StateDirError({ path: file, cause: new Error("the journal is closed") })
        try {
          writeAll(torn ? `\n${line}` : line)
          torn = false
        } catch (cause) {
          torn = true
          return new StateDirError({ path: file, cause })
        }
        lines++
        if (lines > 2 * live.size + compactAfter) compact()
        return undefined
      }
      // the live lines into a new file, opened before it replaces the journal: a failure at any step leaves
      // the journal and its descriptor as they were, and is tried again only after as many lines again
      const compact = () => {
        const fresh = `${file}.tmp`
        let next: number | undefined
        try {
          fs.writeFileSync(fresh, [...live.values()].join(""), { mode: 0o600 })
          next = fs.openSync(fresh, APPEND)
          fs.renameSync(fresh, file)
        } catch {
          if (next !== undefined) fs.closeSync(next)
          removeState(fresh)
          compactAfter = lines + JOURNAL_SLACK
          return
        }
        fs.closeSync(fd!)
        fd = next
        lines = live.size
        compactAfter = JOURNAL_SLACK
        torn = false
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

/** A group journal as read: its file, its supervisor (unknown for an invalid record) and its live groups. */
export interface GroupJournalFile {
  readonly file: string
  readonly owner: ProcessIdentity | undefined
  readonly records: ReadonlyArray<GroupRecordFile>
}

/**
 * Every group journal of a state directory: its file, its supervisor (from its name) and the groups it leaves
 * recorded (none for a file that is not the user's own, `readOwnFile`, nor for one being written anew, whose
 * journal is still there). A record file of the version before the journals (`<pgid>.json`, its supervisor in
 * it) counts as a journal of one group, so that an upgrade does not leave a dead supervisor's groups behind.
 */
export const groupJournals = (stateDir: string): ReadonlyArray<GroupJournalFile> => {
  const { pidsDir } = statePaths(stateDir)
  if (untrustedStateDir(stateDir) !== undefined) return []
  let names: Array<string>
  try {
    names = fs.readdirSync(pidsDir)
  } catch {
    return []
  }
  return names.flatMap((name): Array<GroupJournalFile> => {
    const kind = journalFile(name)
    if (kind === undefined) return []
    const file = path.join(pidsDir, name)
    if (kind._tag === "Legacy") {
      const record = recordOf(GroupRecordFile, file)
      const owner = record && { pid: record.supervisorPid, startTime: record.supervisorStart }
      return [{ file, owner, records: record ? [record] : [] }]
    }
    if (kind.temporary) return [{ file, owner: kind.owner, records: [] }]
    const text = readOwnFile(file)
    return [{ file, owner: kind.owner, records: text === undefined || text === "untrusted" ? [] : replayJournal(text) }]
  })
}

/** The groups recorded in a state directory, by every journal in it. */
export const recordedGroups = (stateDir: string): ReadonlyArray<GroupRecordFile> =>
  groupJournals(stateDir).flatMap((journal) => journal.records)
