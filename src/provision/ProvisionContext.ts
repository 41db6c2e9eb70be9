/**
 * What the parts of one provisioning run share: the run's context, the binary wanted, progress events, and
 * the error of a source that did not deliver.
 */
import { Data, Effect } from "effect"
import type { BinarySpec } from "../manifest/ServiceManifest.js"
import type { DownloadTimeouts } from "./Download.js"
import type { Platform } from "./Platform.js"
import type { Provenance, SourceKind } from "./Provenance.js"

/** A binary in `.dep`, ready to run. */
export interface Provisioned {
  readonly name: string
  readonly version: string
  /** Absolute path `.dep/NAME` (what `${dep.NAME}` resolves to). */
  readonly path: string
  /** Where it came from originally (a reused binary keeps its recorded source). */
  readonly source: Provenance["source"]
  /** URL, `module@version`, Go main folder, or linked path. */
  readonly origin: string
  /** True when an earlier provisioning was reused without any work. */
  readonly reused: boolean
}

/** What happened, without its text. */
export type ProvisionEventBody =
  | { readonly _tag: "Reused"; readonly binary: string; readonly version: string; readonly source: string }
  | { readonly _tag: "SourceFailed"; readonly binary: string; readonly source: SourceKind; readonly reason: string }
  | { readonly _tag: "DownloadStarted"; readonly binary: string; readonly url: string }
  | {
      readonly _tag: "DownloadProgress"
      readonly binary: string
      readonly received: number
      readonly total: number | undefined
    }
  | { readonly _tag: "BuildStarted"; readonly binary: string; readonly description: string }
  | {
      readonly _tag: "BuildProgress"
      readonly binary: string
      readonly description: string
      readonly elapsedMs: number
    }
  | {
      readonly _tag: "Provisioned"
      readonly binary: string
      readonly version: string
      readonly source: SourceKind
      readonly elapsedMs: number
    }

/** Progress of provisioning, for a CLI to print; `message` is a one-line text for people. */
export type ProvisionEvent = ProvisionEventBody & { readonly message: string }

/** A source that did not deliver, with the reason. */
export class SourceFailed extends Data.TaggedError("SourceFailed")<{
  readonly reason: string
  /** The source is not configured (not declared, variable not set): nothing was tried. */
  readonly skipped: boolean
}> {}

/** What one provisioning run shares between binaries. */
export interface Context {
  readonly depDir: string
  readonly stackDir: string
  readonly env: Readonly<Record<string, string | undefined>>
  readonly platform: Platform | undefined
  readonly timeouts: DownloadTimeouts
  readonly buildLock: Effect.Semaphore
  readonly buildProgressMs: number
  readonly emit: (event: ProvisionEventBody) => void
}

/** A binary to provision, as declared by one or more services. */
export interface Wanted {
  readonly name: string
  readonly spec: BinarySpec
  /** Folder of the first service that declares it (for `build.main`). */
  readonly serviceDir: string
  readonly services: ReadonlyArray<string>
}

export const fail = (reason: string) => new SourceFailed({ reason, skipped: false })

export const skip = (reason: string) => new SourceFailed({ reason, skipped: true })

export const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

export const io = <A>(what: string, run: () => Promise<A>): Effect.Effect<A, SourceFailed> =>
  Effect.tryPromise({ try: run, catch: (error) => fail(`${what}: ${message(error)}`) })
