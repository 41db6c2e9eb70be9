#!/usr/bin/env node
/**
 * The `core` command as installed (`dist/core.cjs`): loads the CLI bundle (`dist/core-main.cjs`, built from
 * `bin.ts`) through V8's code cache. Parsing and compiling the 1.2 MB bundle is about 100 ms of every CLI start
 * (a third of `core stack status`); with the cache it is a few ms. The cache (`core-main.cjs.v8-cache` beside
 * the bundle, else in the temp directory) is written once, at the exit of a run that found none or found it
 * stale, so it holds every function that run compiled. It is keyed by the bundle's size and mtime and the Node
 * version and architecture; a cache V8 rejects is rewritten. A missing, stale or unwritable cache costs only the
 * plain compile.
 *
 * Plain Node on purpose: nothing here may cost start-up time.
 */
import * as fs from "node:fs"
import Module from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as vm from "node:vm"

const bundle = path.join(__dirname, "core-main.cjs")

/** Where the cache of `bundle` lives: beside it, or in the temp directory where that is not writable. */
const cacheFiles = (file: string): ReadonlyArray<string> => [
  `${file}.v8-cache`,
  path.join(os.tmpdir(), `core-main-${Buffer.from(file).toString("base64url").slice(-40)}.v8-cache`)
]

/** What the cache must have been made for: this bundle, this Node. */
const cacheKey = (stat: fs.Stats): string => `${stat.size}:${stat.mtimeMs}:${process.version}:${process.arch}\n`

const readCache = (key: string): Buffer | undefined => {
  for (const file of cacheFiles(bundle)) {
    try {
      const data = fs.readFileSync(file)
      if (data.subarray(0, key.length).toString() === key) return data.subarray(key.length)
    } catch {
      // not there: try the next place
    }
  }
  return undefined
}

const writeCache = (key: string, data: Buffer): void => {
  for (const file of cacheFiles(bundle)) {
    const tmp = `${file}.${process.pid}.tmp`
    try {
      fs.writeFileSync(tmp, Buffer.concat([Buffer.from(key), data]))
      fs.renameSync(tmp, file)
      return
    } catch {
      fs.rmSync(tmp, { force: true })
    }
  }
}

const load = (): void => {
  const stat = fs.statSync(bundle)
  const key = cacheKey(stat)
  const cachedData = readCache(key)
  const source = fs.readFileSync(bundle, "utf8").replace(/^#!.*/, "")
  const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData })
  if (cachedData === undefined || script.cachedDataRejected === true) {
    process.once("exit", () => writeCache(key, script.createCachedData()))
  }
  const main = new Module(bundle, module)
  main.filename = bundle
  main.paths = (Module as unknown as { _nodeModulePaths: (dir: string) => Array<string> })._nodeModulePaths(
    path.dirname(bundle)
  )
  const run = script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void
  run.call(main.exports, main.exports, (id: string) => main.require(id), main, bundle, path.dirname(bundle))
}

load()
