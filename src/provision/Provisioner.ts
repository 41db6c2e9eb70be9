/**
 * Provisioning: puts every binary the chosen services need into `.dep/NAME`, with a record of where it came
 * from in `.dep/NAME.json`.
 *
 * Sources, tried in order for each binary, each failure's reason kept for the final error:
 * 1. `dep`: `.dep/NAME` already there, its record matching the pinned version (and override, and Go sources);
 * 2. `override`: `CORE_BIN_<NAME>=/path` in the environment, linked as is;
 * 3. `path`: the manifest's `path` command found on PATH (its `version_args` output must show the version), linked;
 * 4. `download`: the release archive for this platform, its sha256 checked before anything is extracted;
 * 5. `build`: `go build` of a module at `v<version>`, or of the Go main in the service folder.
 *
 * Everything lands in a temporary file in `.dep` first and is renamed into place, so `.dep/NAME` is either the
 * old binary or the complete new one. Binaries are provisioned concurrently, Go builds one at a time.
 */
import type { FileSystem, HttpClient, Path } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type * as https from "node:https"
import * as tls from "node:tls"
import { Effect, Either, Layer } from "effect"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { withDependencies } from "../stack/StackGraph.js"
import { outsideDep, removeStaleTemps, untrusted } from "./DepStore.js"
import { type DownloadTimeouts, defaultTimeouts } from "./Download.js"
import { deferredCaCerts } from "./ExtraCaCerts.js"
import { fromBuild, goInputsHash, mainDir } from "./GoBuild.js"
import { formatBytes, overrideVariable, platformOf } from "./Platform.js"
import { declarationHash, type Expectation, type SourceKind } from "./Provenance.js"
import {
  type Context,
  message,
  type ProvisionEventBody,
  type Provisioned,
  type SourceFailed,
  type Wanted
} from "./ProvisionContext.js"
import { type BinaryFailure, ProvisionError, type SourceAttempt } from "./ProvisionError.js"
import { lastLines } from "./RunTool.js"
import { fromDep, fromDownload, fromOverride, fromPath } from "./Sources.js"

export type { ProvisionEvent, Provisioned } from "./ProvisionContext.js"
import type { ProvisionEvent } from "./ProvisionContext.js"

/** Options of `provision`. */
export interface ProvisionOptions {
  /** Called for each progress event (synchronously; keep it cheap). */
  readonly onProgress?: ((event: ProvisionEvent) => void) | undefined
  /** Environment for `CORE_BIN_*`, `PATH` and `go`; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Download timeouts; default 10 s to the response headers, 20 s of silence in the body. */
  readonly timeouts?: Partial<DownloadTimeouts> | undefined
  /** Seconds between build progress events; default 10. */
  readonly buildProgressSeconds?: number | undefined
}

// ---------------------------------------------------------------------------------------------
// one binary, then the whole request

/** What the sources need from the platform (a download gets its HTTP client from `downloadClient`). */
type Platform = FileSystem.FileSystem | Path.Path

/**
 * Node's HTTP client for one download, built for it and closed with it; trusting, besides Node's own store, the
 * extra certificates this process started without (see ExtraCaCerts), when there are any. Made only when a
 * download is tried: that trust store takes ~35 ms to build here, and most runs download nothing.
 */
const downloadClient: Effect.Effect<Layer.Layer<HttpClient.HttpClient>> = Effect.suspend(() => {
  const extra = deferredCaCerts()
  if (extra === undefined) return Effect.succeed(NodeHttpClient.layer)
  if ("unreadable" in extra) return Effect.as(Effect.logWarning(extra.unreadable), NodeHttpClient.layer)
  return Effect.succeed(
    NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer(trustingAlso(extra.pem))))
  )
})

const provisionOne = (ctx: Context, wanted: Wanted): Effect.Effect<Provisioned, BinaryFailure, Platform> =>
  Effect.gen(function* () {
    let started = Date.now()
    /** Restarts the clock when a source really begins (a build after waiting for the build lock). */
    const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.suspend(() => {
        started = Date.now()
        return effect
      })
    yield* removeStaleTemps(ctx, wanted.name)
    const override = ctx.env[overrideVariable(wanted.name)] || undefined
    const dir = mainDir(wanted)
    const inputs =
      dir === undefined || override !== undefined
        ? undefined
        : yield* Effect.promise(() => goInputsHash(dir).catch(() => undefined))
    const expected: Expectation = {
      declared: declarationHash(wanted.spec),
      version: wanted.spec.version,
      override,
      inputs
    }
    const sources: ReadonlyArray<readonly [SourceKind, Effect.Effect<Provisioned, SourceFailed, Platform>]> = [
      ["dep", timed(fromDep(ctx, wanted, expected))],
      ["override", timed(fromOverride(ctx, wanted, override))],
      ["path", timed(fromPath(ctx, wanted))],
      [
        "download",
        timed(Effect.flatMap(downloadClient, (client) => Effect.provide(fromDownload(ctx, wanted), client)))
      ],
      ["build", ctx.buildLock.withPermits(1)(timed(fromBuild(ctx, wanted, inputs)))]
    ]
    const attempts: Array<SourceAttempt> = []
    for (const [source, attempt] of sources) {
      // An override is the user's explicit choice: never fall back to other sources when it is set.
      if (override !== undefined && source !== "dep" && source !== "override") {
        attempts.push({ source, reason: `skipped: ${overrideVariable(wanted.name)} is set` })
        continue
      }
      const result = yield* Effect.either(attempt)
      if (Either.isRight(result)) {
        const provisioned = result.right
        if (provisioned.reused) {
          ctx.emit({
            _tag: "Reused",
            binary: wanted.name,
            version: provisioned.version,
            source: provisioned.source
          })
        } else {
          ctx.emit({
            _tag: "Provisioned",
            binary: wanted.name,
            version: wanted.spec.version,
            source,
            elapsedMs: Date.now() - started
          })
          yield* Effect.logDebug(`provisioned ${wanted.name} ${wanted.spec.version} from ${source}`)
        }
        return provisioned
      }
      attempts.push({ source, reason: result.left.reason })
      if (source !== "dep" && !result.left.skipped)
        ctx.emit({ _tag: "SourceFailed", binary: wanted.name, source, reason: result.left.reason })
    }
    return yield* Effect.fail({
      binary: wanted.name,
      version: wanted.spec.version,
      services: wanted.services,
      attempts
    } satisfies BinaryFailure)
  }).pipe(Effect.annotateLogs({ binary: wanted.name }))

/** The binaries of the chosen services, each once; an error when two services declare one differently. */
const wantedBinaries = (
  stack: StackSpec,
  serviceNames: ReadonlyArray<string>
): Either.Either<ReadonlyArray<Wanted>, string> => {
  const known = new Set(stack.services.map((service) => service.name as string))
  const unknown = serviceNames.filter((name) => !known.has(name))
  if (unknown.length > 0) {
    return Either.left(
      `unknown service${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")} (known: ${[...known].join(", ")})`
    )
  }
  const chosen =
    serviceNames.length === 0
      ? stack.services.filter((service) => !service.disabled).map((service) => service.name as string)
      : withDependencies(stack.services, serviceNames)
  const byName = new Map<string, Wanted>()
  for (const service of stack.services) {
    if (!chosen.includes(service.name)) continue
    for (const [name, spec] of Object.entries(service.binaries)) {
      const existing = byName.get(name)
      if (existing === undefined) {
        byName.set(name, { name, spec, serviceDir: service.dir, services: [service.name] })
        continue
      }
      const same =
        JSON.stringify(existing.spec) === JSON.stringify(spec) &&
        (spec.build?.main === undefined || existing.serviceDir === service.dir)
      if (!same) {
        return Either.left(
          `binary ${name} is declared differently by services ${existing.services.join(", ")} and ${service.name}`
        )
      }
      byName.set(name, { ...existing, services: [...existing.services, service.name] })
    }
  }
  return Either.right([...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1)))
}

/**
 * Provisions the binaries of `serviceNames` and their dependencies (all enabled services when empty) into
 * the stack's `.dep`. Each binary is provisioned once, independent binaries concurrently, Go builds one at a
 * time. Fails with one `ProvisionError` naming every binary that could not be had and why each source failed.
 */
export const provision = Effect.fn("Provisioner.provision")(function* (
  stack: StackSpec,
  serviceNames: ReadonlyArray<string>,
  options: ProvisionOptions = {}
) {
  const wanted = wantedBinaries(stack, serviceNames)
  if (Either.isLeft(wanted)) return yield* Effect.fail(ProvisionError.invalid(wanted.left))
  if (wanted.right.length === 0) return [] as ReadonlyArray<Provisioned>
  const depDir = path.resolve(stack.depDir)
  for (const one of wanted.right) {
    const outside = outsideDep(depDir, one.name)
    if (outside !== undefined) return yield* Effect.fail(ProvisionError.invalid(outside))
  }
  yield* trustedDepDir(depDir)
  const ctx: Context = {
    depDir,
    stackDir: stack.dir,
    env: options.env ?? process.env,
    platform: platformOf(process.platform, process.arch),
    timeouts: { ...defaultTimeouts, ...options.timeouts },
    buildLock: yield* Effect.makeSemaphore(1),
    buildProgressMs: (options.buildProgressSeconds ?? 10) * 1_000,
    emit: (event) => options.onProgress?.({ ...event, message: describeEvent(event) })
  }
  const results = yield* Effect.forEach(wanted.right, (one) => Effect.either(provisionOne(ctx, one)), {
    concurrency: "unbounded"
  })
  const failures = results.flatMap((result) => (Either.isLeft(result) ? [result.left] : []))
  if (failures.length > 0) return yield* Effect.fail(ProvisionError.failed(failures))
  return results.flatMap((result) => (Either.isRight(result) ? [result.right] : []))
})

/**
 * Creates `.dep` (mode 0755 exactly, whatever the umask), or checks that the existing one is this user's (or
 * root's) and writable by no one else: otherwise another user may have replaced its binaries, which would then
 * be run. This user's own `.dep` that its group or others may write to (made under umask 002 by an older core,
 * or by `mkdir -p .dep/tools`) is made 0755 instead: what it holds is checked file by file before reuse
 * (`fromDep` provisions again a binary or record that another user owns or others may write to).
 */
const trustedDepDir = (depDir: string) =>
  Effect.tryPromise({
    try: async () => {
      // 0700 until the chmod, so that it is never writable by others, even for a moment
      if ((await fs.mkdir(depDir, { recursive: true, mode: 0o700 })) !== undefined) await fs.chmod(depDir, 0o755)
      const stat = await fs.stat(depDir)
      // this user's own: made writable by no one else, and so trusted
      if (stat.uid === process.geteuid?.() && (stat.mode & 0o022) !== 0) return fs.chmod(depDir, stat.mode & 0o7755)
      return untrusted(depDir, stat)
    },
    catch: (error) => ProvisionError.invalid(`cannot create ${depDir}: ${message(error)}`)
  }).pipe(
    Effect.flatMap((distrust) =>
      distrust === undefined
        ? Effect.void
        : Effect.fail(
            ProvisionError.invalid(`${distrust}: its binaries cannot be trusted; remove it and provision again`)
          )
    )
  )

/**
 * Agent options that trust what Node trusts by default (its bundled roots, or the system's store under
 * `--use-openssl-ca`) and the certificates of `pem`, as `NODE_EXTRA_CA_CERTS` would have: a `ca` list would
 * replace the default store instead. The secure context's `addCACert` is what Node itself uses for its `ca`
 * option; without it (another runtime), the bundled roots and `pem`.
 */
const trustingAlso = (pem: string): https.AgentOptions => {
  const secureContext = tls.createSecureContext()
  const native = (secureContext as { context?: { addCACert?: (pem: string) => void } }).context
  if (typeof native?.addCACert !== "function") return { ca: [...tls.rootCertificates, pem] }
  native.addCACert(pem)
  return { secureContext }
}

/** The one-line text of a progress event. */
const describeEvent = (event: ProvisionEventBody): string => {
  switch (event._tag) {
    case "Reused":
      return `${event.binary}: ${event.version} already provisioned (${event.source})`
    case "SourceFailed":
      return `${event.binary}: ${event.source} failed: ${lastLines(event.reason, 1)}`
    case "DownloadStarted":
      return `${event.binary}: downloading ${event.url}`
    case "DownloadProgress":
      return `${event.binary}: ${formatBytes(event.received)}${event.total === undefined ? "" : ` of ${formatBytes(event.total)}`}`
    case "BuildStarted":
      return `${event.binary}: ${event.description} ...`
    case "BuildProgress":
      return `${event.binary}: ${event.description} ... ${Math.round(event.elapsedMs / 1000)}s`
    case "Provisioned":
      return `${event.binary}: ${event.version} ready from ${event.source} (${(event.elapsedMs / 1000).toFixed(1)}s)`
  }
}
