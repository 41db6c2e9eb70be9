/**
 * The record kept beside each provisioned binary: `.dep/NAME.json` says where `.dep/NAME` came from.
 */
import { Schema } from "effect"
import { createHash } from "node:crypto"

/** Where a binary came from, in the order the sources are tried. */
export const SourceKind = Schema.Literal("dep", "override", "path", "download", "build")
export type SourceKind = typeof SourceKind.Type

/** `.dep/NAME.json`. */
export const Provenance = Schema.Struct({
  name: Schema.String,
  /** The manifest's pinned version the binary was provisioned for. */
  version: Schema.String,
  source: Schema.Literal("override", "path", "download", "build"),
  /** The URL, `module@version`, main folder, or the path linked to. */
  origin: Schema.String,
  /** sha256 of the binary (of the file a link points to). */
  sha256: Schema.String,
  size: Schema.Number,
  /** Modification time of the binary when recorded, to skip rehashing when it did not change. */
  mtimeMs: Schema.Number,
  /** For a build of a Go main in the service folder: hash of its sources (go.mod, go.sum, *.go). */
  inputs: Schema.optionalWith(Schema.String, { exact: true }),
  /** `declarationHash` of the manifest's declaration the binary was provisioned for (absent in older records). */
  declared: Schema.optionalWith(Schema.String, { exact: true }),
  /** ISO time of provisioning. */
  time: Schema.String
})
export type Provenance = typeof Provenance.Type

/** Decodes a provenance file's text; `undefined` when it is not a valid record. */
export const parseProvenance = (text: string): Provenance | undefined => {
  try {
    return Schema.decodeUnknownOption(Provenance)(JSON.parse(text)).pipe((option) =>
      option._tag === "Some" ? option.value : undefined
    )
  } catch {
    return undefined
  }
}

/** JSON with every object's keys in order: the same declaration gives the same text, however it is written. */
const canonical = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(canonical).join(",")}]`
    : typeof value === "object" && value !== null
      ? `{${Object.keys(value)
          .sort()
          .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
          .join(",")}}`
      : JSON.stringify(value)

/** sha256 of a binary's declaration in its manifest (version, sources, checksums, build settings). */
export const declarationHash = (spec: unknown): string => createHash("sha256").update(canonical(spec)).digest("hex")

/** What the current manifest and environment expect of a reusable binary. */
export interface Expectation {
  /** `declarationHash` of the manifest's declaration now. */
  readonly declared: string
  readonly version: string
  /** The `CORE_BIN_*` path, when that variable is set. */
  readonly override: string | undefined
  /** Hash of a Go main's sources, when the binary is built from one. */
  readonly inputs: string | undefined
}

/**
 * Why a record does not fit what is expected now, or `undefined` when it does. The binary's own hash is
 * checked separately.
 */
export const provenanceMismatch = (record: Provenance, expected: Expectation): string | undefined => {
  if (record.version !== expected.version) {
    return `recorded version ${record.version}, the manifest pins ${expected.version}`
  }
  if (expected.override !== undefined) {
    return record.source === "override" && record.origin === expected.override
      ? undefined
      : `the override points to ${expected.override}, the record says ${record.source} ${record.origin}`
  }
  if (record.source === "override") return `provisioned from an override that is no longer set`
  // a new URL or checksum with the same version, a source taken away: not the binary the manifest asks for
  if (record.declared !== undefined && record.declared !== expected.declared) {
    return "its declaration in the manifest changed since it was provisioned"
  }
  if (record.source === "build" && record.inputs !== expected.inputs) {
    return "the Go sources in the service folder changed since the build"
  }
  return undefined
}
