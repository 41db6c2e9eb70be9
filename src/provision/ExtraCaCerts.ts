/**
 * `NODE_EXTRA_CA_CERTS` for a process that started without it. Node reads and parses that file as it starts,
 * before any code runs (~30 ms here for a system bundle of ~140 certificates), and in the background supervisor
 * only downloads of binaries check certificates (https probes do not, as Kubernetes' do not). So `up -d`
 * starts the supervisor without the variable, as the installed command's first lines start every `core`
 * (`LauncherBuild`), and the file is deferred to here (`restoreEnvironment`); the downloads add it to Node's
 * own certificates when there is one to make. Services and builds get the variable back as it was.
 */
import * as fs from "node:fs"

let deferred: string | undefined

/** Records `file` as the extra certificates this process started without (undefined: none). */
export const deferExtraCaCerts = (file: string | undefined): void => {
  deferred = file
}

/**
 * The deferred certificates (PEM text), which an https client of this process must trust besides Node's root
 * certificates: undefined when nothing was deferred (Node's own store, with `NODE_EXTRA_CA_CERTS` if it was set
 * at the start, is right); or why the file cannot be read (Node too then goes on without it, with a warning).
 * Without `node:tls`: the launcher's small bundle holds this module.
 */
export const deferredCaCerts = (): { readonly pem: string } | { readonly unreadable: string } | undefined => {
  if (deferred === undefined) return undefined
  try {
    return { pem: fs.readFileSync(deferred, "utf8") }
  } catch (error) {
    return { unreadable: `ignoring the extra certificates of ${deferred}: ${(error as Error).message}` }
  }
}
