/**
 * Writing what a deployment generator returns.
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import type { GeneratedFile } from "../deploy/GeneratedFile.js"

/**
 * Writes `files` under `outDir` (created as needed), replacing what is there, and returns their paths as
 * given. Each file goes to a temporary name first and is renamed over the old one.
 */
export const writeGeneratedFiles = Effect.fn("WriteFiles.writeGeneratedFiles")(function* (
  outDir: string,
  files: ReadonlyArray<GeneratedFile>
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  for (const file of files) {
    const target = path.join(outDir, file.path)
    yield* fs.makeDirectory(path.dirname(target), { recursive: true })
    const temp = `${target}.${process.pid}.tmp`
    yield* fs.writeFileString(temp, file.content)
    yield* fs.rename(temp, target)
  }
  return files.map((file) => path.join(outDir, file.path))
})
