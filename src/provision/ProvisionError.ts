/**
 * The one error of provisioning: which binaries could not be had, and why each source failed.
 */
import { Data } from "effect"
import type { SourceKind } from "./Provenance.js"

/** One source tried for a binary and why it did not deliver. */
export interface SourceAttempt {
  readonly source: SourceKind
  readonly reason: string
}

/** A binary no source could provide. */
export interface BinaryFailure {
  readonly binary: string
  readonly version: string
  /** The services that need it. */
  readonly services: ReadonlyArray<string>
  /** Every source, in the order tried. */
  readonly attempts: ReadonlyArray<SourceAttempt>
}

const sourceLabel: Record<SourceKind, string> = {
  dep: ".dep",
  override: "override",
  path: "path",
  download: "download",
  build: "build"
}

const indent = (text: string, prefix: string): string => text.split("\n").join(`\n${prefix}`)

/** The readable text of failures: one block per binary, one line (or indented block) per source. */
export const formatFailures = (failures: ReadonlyArray<BinaryFailure>): string =>
  failures
    .map((failure) => {
      const head = `cannot provision ${failure.binary} ${failure.version} (needed by ${failure.services.join(", ")}):`
      const lines = failure.attempts.map(
        (attempt) => `  ${sourceLabel[attempt.source].padEnd(9)} ${indent(attempt.reason, "            ")}`
      )
      return [head, ...lines].join("\n")
    })
    .join("\n")

/**
 * Provisioning failed: either some binaries could not be had from any source (`failures`), or the request
 * itself was wrong (`problem`: an unknown service, a binary declared differently by two services).
 */
export class ProvisionError extends Data.TaggedError("ProvisionError")<{
  readonly failures: ReadonlyArray<BinaryFailure>
  readonly problem: string | undefined
  readonly message: string
}> {
  /** An error for binaries that no source could provide. */
  static failed(failures: ReadonlyArray<BinaryFailure>): ProvisionError {
    return new ProvisionError({ failures, problem: undefined, message: formatFailures(failures) })
  }

  /** An error in the request or the manifests, before any source was tried. */
  static invalid(problem: string): ProvisionError {
    return new ProvisionError({ failures: [], problem, message: problem })
  }
}
