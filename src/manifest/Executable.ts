/**
 * Executables on disk and the one lookup of a command on PATH, shared by the loader (`commands` step), the
 * provisioner (`path` source) and the process-compose generator.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"

/** What is at a path, as an executable: `ok`, or why it cannot be run. */
export type ExecutableStatus = "ok" | "missing" | "not a file" | "not executable"

/** Whether `file` is a regular file (links followed) with an execute bit. */
export const executableStatus = (file: string): Effect.Effect<ExecutableStatus, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    fs.stat(file).pipe(
      Effect.map(
        (info): ExecutableStatus =>
          info.type !== "File" ? "not a file" : (info.mode & 0o111) === 0 ? "not executable" : "ok"
      ),
      Effect.orElseSucceed((): ExecutableStatus => "missing")
    )
  )

/**
 * The absolute path of `command` on `searchPath` (a PATH value): the first executable file named so in its
 * directories, in order, relative directories taken from the current one as a shell does; undefined when none.
 * Directories in `skip` (absolute) are passed over.
 */
export const findOnPath = Effect.fn("Executable.findOnPath")(function* (
  command: string,
  searchPath: string | undefined,
  skip: ReadonlyArray<string> = []
) {
  const path = yield* Path.Path
  for (const dir of (searchPath ?? "").split(":")) {
    if (dir === "" || skip.includes(path.resolve(dir))) continue
    const candidate = path.resolve(dir, command)
    if ((yield* executableStatus(candidate)) === "ok") return candidate
  }
  return undefined
})
