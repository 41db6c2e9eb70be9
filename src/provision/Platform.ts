/**
 * Pure helpers of provisioning: the platform key, URL templates, override variable names.
 */
import type { DownloadSource } from "../manifest/ServiceManifest.js"

/** An operating system a release may be downloaded for. */
export type Os = "linux" | "darwin"
/** A CPU architecture a release may be downloaded for. */
export type Arch = "amd64" | "arm64"

/** The platform of a download, named the Go way (`linux`/`darwin`, `amd64`/`arm64`). */
export interface Platform {
  readonly os: Os
  readonly arch: Arch
}

/** The platform for Node's `process.platform` and `process.arch`, or `undefined` when no release is made for it. */
export const platformOf = (nodePlatform: string, nodeArch: string): Platform | undefined => {
  const os = nodePlatform === "linux" ? "linux" : nodePlatform === "darwin" ? "darwin" : undefined
  const arch = nodeArch === "x64" ? "amd64" : nodeArch === "arm64" ? "arm64" : undefined
  return os && arch ? { os, arch } : undefined
}

/** The key of a platform in `download.sha256`, e.g. `linux-amd64`. */
export const platformKey = (platform: Platform): string => `${platform.os}-${platform.arch}`

/** Values for the `${...}` names of a download template. */
export interface TemplateValues {
  readonly version: string
  readonly os: string
  readonly arch: string
}

/**
 * Expands `${version}`, `${os}` and `${arch}` in a download URL or member path.
 * Any other `${...}` is left as written, so a mistake shows in the error that follows.
 */
export const expandTemplate = (template: string, values: TemplateValues): string =>
  template.replace(/\$\{(version|os|arch)\}/g, (_, key: keyof TemplateValues) => values[key])

/** The template values of a download for a platform, with the release's own OS and architecture names. */
export const templateValues = (download: DownloadSource, version: string, platform: Platform): TemplateValues => ({
  version,
  os: download.os_names?.[platform.os] ?? platform.os,
  arch: download.arch_names?.[platform.arch] ?? platform.arch
})

/** The environment variable that overrides binary `name`: `CORE_BIN_` and the name in upper case, other characters as `_`. */
export const overrideVariable = (name: string): string => `CORE_BIN_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`

/** The archive format of a download: as declared, else guessed from the URL (`.zip`, `.tar.gz`/`.tgz`, else the binary itself). */
export const archiveFormat = (download: DownloadSource, url: string): "tar.gz" | "zip" | "raw" => {
  if (download.format) return download.format
  const path = url.split(/[?#]/)[0]!.toLowerCase()
  if (path.endsWith(".zip")) return "zip"
  if (path.endsWith(".tar.gz") || path.endsWith(".tgz")) return "tar.gz"
  return "raw"
}

/** A byte count for people: `812 B`, `3.4 MiB`. */
export const formatBytes = (bytes: number): string => {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
}
