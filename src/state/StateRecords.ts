/**
 * The records of `.core-stack/`, decoded with Schema: `supervisor.pid` (who holds the stack directory) and
 * `pids/<pgid>.json` (one per process group a supervisor spawned). A file that is missing and one that does
 * not decode are told apart; neither is ever trusted as a record.
 */
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { pidsDirOf, StateDirError, statePaths } from "./StateDir.js"
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

/** What `pids/<pgid>.json` holds: a process group and the supervisor that spawned it. */
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

/**
 * The JSON encoder of each record schema, built once: `Schema.parseJson(schema)` is a new schema on each call,
 * so its encoder was compiled anew for every record (one per spawned group, 200 in a burst at `up`).
 */
const encoders = new WeakMap<Schema.Schema.Any, (value: unknown) => string>()

const encoderOf = <A, I>(schema: Schema.Schema<A, I>): ((value: A) => string) => {
  let encode = encoders.get(schema)
  if (encode === undefined) {
    encode = Schema.encodeSync(Schema.parseJson(schema)) as (value: unknown) => string
    encoders.set(schema, encode)
  }
  return encode
}

/** `writeRecord` as a plain call: the error when the file could not be written. */
export const writeRecordNow = <A, I>(
  schema: Schema.Schema<A, I>,
  file: string,
  value: A
): StateDirError | undefined => {
  try {
    fs.writeFileSync(file, encoderOf(schema)(value), { mode: 0o600 })
    return undefined
  } catch (cause) {
    return new StateDirError({ path: file, cause })
  }
}

/** Writes a record file (0600). */
export const writeRecord = <A, I>(
  schema: Schema.Schema<A, I>,
  file: string,
  value: A
): Effect.Effect<void, StateDirError> =>
  Effect.suspend(() => {
    const failed = writeRecordNow(schema, file, value)
    return failed === undefined ? Effect.void : Effect.fail(failed)
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

/** The file of a group's record. */
export const groupRecordPath = (stateDir: string, pgid: number): string =>
  path.join(pidsDirOf(stateDir), `${pgid}.json`)

/** Every group record file of a state directory, decoded or not (an invalid file is `undefined`). */
export const groupRecords = (
  stateDir: string
): ReadonlyArray<{ readonly file: string; readonly record: GroupRecordFile | undefined }> => {
  const { pidsDir } = statePaths(stateDir)
  if (untrustedStateDir(stateDir) !== undefined) return []
  let files: Array<string>
  try {
    files = fs.readdirSync(pidsDir).filter((f) => f.endsWith(".json"))
  } catch {
    return []
  }
  return files.map((f) => {
    const file = path.join(pidsDir, f)
    return { file, record: recordOf(GroupRecordFile, file) }
  })
}
