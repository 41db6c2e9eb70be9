/**
 * A manifest is read only when it is a regular file of UTF-8 text: FIFOs, devices, directories, symbolic link
 * loops and dangling links are refused at once with the reason (reading a FIFO or /dev/zero never ended).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { MAX_MANIFEST_BYTES, readManifestText } from "../src/manifest/ManifestFile.js"
import { tempDir } from "./support/Specs.js"

const reasonFor = (file: string) =>
  readManifestText(file, "services/api/service.json").pipe(
    Effect.flip,
    Effect.map((e) => e.message)
  )

describe("readManifestText", () => {
  const dir = tempDir("core-mfile-")
  const at = (name: string) => join(dir, name)

  it.effect("reads a regular file of UTF-8 text", () =>
    Effect.gen(function* () {
      writeFileSync(at("ok.json"), '{"process": {"command": "true", "args": ["é"]}}')
      expect(yield* readManifestText(at("ok.json"), "ok")).toBe('{"process": {"command": "true", "args": ["é"]}}')
    })
  )

  it.effect("refuses a FIFO without waiting for a writer", () =>
    Effect.gen(function* () {
      expect(spawnSync("mkfifo", [at("fifo")]).status).toBe(0)
      expect(yield* reasonFor(at("fifo"))).toBe(
        "services/api/service.json: cannot read: it is a FIFO (named pipe), not a regular file"
      )
    })
  )

  it.effect("refuses /dev/zero (through a link) without reading it", () =>
    Effect.gen(function* () {
      symlinkSync("/dev/zero", at("zero"))
      expect(yield* reasonFor(at("zero"))).toContain("cannot read: it is a character device, not a regular file")
    })
  )

  it.effect("names a directory, a link loop and a dangling link", () =>
    Effect.gen(function* () {
      mkdirSync(at("folder"))
      symlinkSync("loop", at("loop"))
      symlinkSync("missing", at("dangling"))
      expect(yield* reasonFor(at("folder"))).toContain("it is a directory, not a regular file")
      expect(yield* reasonFor(at("loop"))).toContain("cannot read: a symbolic link loop")
      expect(yield* reasonFor(at("dangling"))).toContain("a symbolic link to a file that does not exist")
    })
  )

  it.effect("refuses text that is not UTF-8, naming the offset of the first bad byte", () =>
    Effect.gen(function* () {
      writeFileSync(
        at("latin1.json"),
        Buffer.concat([Buffer.from('{"d": "caf'), Buffer.from([0xe9]), Buffer.from('"}')])
      )
      expect(yield* reasonFor(at("latin1.json"))).toContain("it is not UTF-8 text (an invalid byte at offset 10)")
      writeFileSync(at("after.json"), Buffer.concat([Buffer.from('{"d": "é'), Buffer.from([0xff]), Buffer.from('"}')]))
      expect(yield* reasonFor(at("after.json"))).toContain("(an invalid byte at offset 9)")
    })
  )

  it.effect("refuses a file over the size limit", () =>
    Effect.gen(function* () {
      writeFileSync(at("huge.json"), Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20))
      expect(yield* reasonFor(at("huge.json"))).toContain(`a manifest may have at most ${MAX_MANIFEST_BYTES}`)
    })
  )
})
