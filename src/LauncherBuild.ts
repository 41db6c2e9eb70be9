/**
 * Builds the installed `core` command, `dist/core.cjs` (`npm run build`): the launcher's bundle behind two
 * lines that make it a shell script as well as a CommonJS file. Run as a program (`core`, as npm links it, or
 * `dist/core.cjs`), `sh` reads them: `NODE_EXTRA_CA_CERTS` moves to `CORE_DEFERRED_NODE_EXTRA_CA_CERTS` and
 * the file runs under `node`. Node reads and parses that certificate file as it starts, before any code runs:
 * ~30 ms of every command here, where it names the system's bundle of ~140 certificates, for a CLI whose only
 * TLS that checks certificates is a download of a binary. The CLI puts the variable back as its code starts
 * (`restoreEnvironment`), so that services, builds and tools inherit it as it was, and downloads trust the file
 * (ExtraCaCerts). Run by Node (`node dist/core.cjs`), the first line is a hashbang and the second a string and
 * a comment: nothing changes.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as esbuild from "esbuild"
import { DEFERRED_CA_CERTS_VARIABLE } from "./app/SupervisorSpawn.js"

const moveCaCerts = [
  'if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then',
  `${DEFERRED_CA_CERTS_VARIABLE}=$NODE_EXTRA_CA_CERTS; export ${DEFERRED_CA_CERTS_VARIABLE}; unset NODE_EXTRA_CA_CERTS;`,
  `else unset ${DEFERRED_CA_CERTS_VARIABLE}; fi;`
].join(" ")

/**
 * The first lines of `dist/core.cjs`: a shell script to `sh`, a hashbang, a string and a comment to Node. The
 * string ends its statement at the line's end because the bundle's first line (`"use strict";`) cannot continue
 * it; a bundle that began with `(`, `[` or a backquote would make it a call (the launcher test would fail).
 */
export const LAUNCHER_HEADER = `#!/bin/sh\n":" //; ${moveCaCerts} exec node "$0" "$@"\n`

const dist = path.resolve(process.argv[2] ?? "dist")
const outfile = path.join(dist, "core.cjs")
// the supervisor's snapshot of the build before goes first (its build, the last step, writes a new one): a build
// that stops between here and there must not leave it beside a launcher and a CLI bundle it was not made with
for (const file of ["core-supervisor.blob", "core-supervisor.blob.key"])
  fs.rmSync(path.join(dist, file), { force: true })
// the digest of the CLI bundle built just before: the launcher checks the supervisor snapshot's key with it
// (`SupervisorSpawn.bundleDigest`) instead of reading and hashing that bundle at every `up -d`
const mainDigest = createHash("sha256")
  .update(fs.readFileSync(path.join(dist, "core-main.cjs")))
  .digest("hex")
await esbuild.build({
  entryPoints: [path.join(import.meta.dirname, "launcher.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  minify: true,
  logLevel: "warning",
  banner: { js: LAUNCHER_HEADER.trimEnd() },
  define: { CORE_MAIN_DIGEST: JSON.stringify(mainDigest) },
  outfile
})
fs.chmodSync(outfile, 0o755)
