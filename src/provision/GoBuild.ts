/**
 * The `build` source: `go build` of a module at `v<version>` (in a scratch module), or of the Go main in the
 * service folder, whose sources are hashed so that a change rebuilds it.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Fiber } from "effect"
import { install, tempPath } from "./DepStore.js"
import { type Context, fail, io, skip, type Wanted } from "./ProvisionContext.js"
import { lastLines, runTool } from "./RunTool.js"

/** sha256 over the Go sources, go.mod and go.sum under `dir` (tests and dot folders left out). */
export const goInputsHash = async (dir: string): Promise<string> => {
  const files: Array<string> = []
  const walk = async (current: string) => {
    const entries = await fs.readdir(current, { withFileTypes: true })
    for (const entry of entries) {
      if (entry.name.startsWith(".") || entry.name === "testdata" || entry.name === "node_modules") continue
      const full = path.join(current, entry.name)
      if (entry.isDirectory()) await walk(full)
      else if (
        (entry.name.endsWith(".go") && !entry.name.endsWith("_test.go")) ||
        entry.name === "go.mod" ||
        entry.name === "go.sum"
      )
        files.push(full)
    }
  }
  await walk(dir)
  files.sort()
  const hash = createHash("sha256")
  for (const file of files) {
    hash.update(path.relative(dir, file))
    hash.update("\0")
    hash.update(await fs.readFile(file))
    hash.update("\0")
  }
  return hash.digest("hex")
}

/** The folder of a `build.main`, absolute. */
export const mainDir = (wanted: Wanted): string | undefined =>
  wanted.spec.build?.main === undefined ? undefined : path.resolve(wanted.serviceDir, wanted.spec.build.main)

const goEnv = (ctx: Context, extra: Readonly<Record<string, string>> | undefined, goflags: string | undefined) => {
  const env: Record<string, string | undefined> = { ...ctx.env, ...extra }
  if (goflags !== undefined) env.GOFLAGS = [env.GOFLAGS, goflags].filter((flag) => flag).join(" ")
  return env
}

const runGo = (args: ReadonlyArray<string>, cwd: string, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function* () {
    const result = yield* runTool("go", args, { cwd, env }).pipe(Effect.mapError((error) => fail(error.message)))
    if (result.code !== 0) {
      const ended = result.code === undefined ? `signal ${result.signal}` : `exit ${result.code}`
      return yield* fail(`go ${args.join(" ")} failed (${ended}):\n${lastLines(result.output, 12)}`)
    }
    return result.output
  })

const withBuildProgress = <A, E, R>(
  ctx: Context,
  wanted: Wanted,
  description: string,
  build: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.gen(function* () {
    const started = Date.now()
    ctx.emit({ _tag: "BuildStarted", binary: wanted.name, description })
    const ticker = yield* Effect.fork(
      Effect.sync(() =>
        ctx.emit({ _tag: "BuildProgress", binary: wanted.name, description, elapsedMs: Date.now() - started })
      ).pipe(Effect.delay(ctx.buildProgressMs), Effect.forever)
    )
    return yield* build.pipe(Effect.ensuring(Fiber.interrupt(ticker)))
  })

/** A temporary folder in `.dep` that only this user may enter (the umask may narrow its mode, never widen it). */
const privateFolder = (ctx: Context, wanted: Wanted) =>
  Effect.tap(tempPath(ctx, wanted.name, "build"), (folder) =>
    io("cannot create the build folder", () => fs.mkdir(folder, { mode: 0o700 }))
  )

/** The `build` source. */
export const fromBuild = (ctx: Context, wanted: Wanted, inputs: string | undefined) =>
  Effect.scoped(
    Effect.gen(function* () {
      const build = wanted.spec.build
      if (build === undefined) return yield* skip("no `build` source in the manifest")
      if (build.module === undefined && build.main === undefined) return yield* fail("`build` names no module or main")
      const goVersion = yield* runGo(["env", "GOVERSION"], ctx.stackDir, ctx.env).pipe(
        Effect.map((output) => output.trim()),
        Effect.mapError((error) => fail(`go is not usable: ${error.reason}`))
      )
      // built where no other user can open it (and keep it open) before it is installed
      const binary = path.join(yield* privateFolder(ctx, wanted), "binary")
      const flags = ["-trimpath", ...(build.flags ?? [])]
      const version = wanted.spec.version
      if (build.main !== undefined) {
        const dir = mainDir(wanted)!
        const description = `building ${wanted.name} ${version} with ${goVersion} from ${path.relative(ctx.stackDir, dir) || "."}`
        yield* withBuildProgress(
          ctx,
          wanted,
          description,
          runGo(["build", "-buildvcs=false", ...flags, "-o", binary, "."], dir, goEnv(ctx, build.env, undefined))
        )
        return yield* install(ctx, wanted, binary, "build", path.relative(ctx.stackDir, dir) || ".", inputs)
      }
      const pkg = build.module!
      const ref = `${pkg}@${version.startsWith("v") ? version : `v${version}`}`
      const work = yield* privateFolder(ctx, wanted)
      const env = goEnv(ctx, build.env, "-mod=mod")
      const description = `building ${wanted.name} ${version} with ${goVersion} (${ref})`
      yield* withBuildProgress(
        ctx,
        wanted,
        description,
        Effect.gen(function* () {
          yield* runGo(["mod", "init", "core.provision/build"], work, env)
          yield* runGo(["get", ref], work, env)
          yield* runGo(["build", "-buildvcs=false", ...flags, "-o", binary, pkg], work, env)
        })
      )
      return yield* install(ctx, wanted, binary, "build", ref, undefined)
    })
  )
