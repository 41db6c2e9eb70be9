import { execFileSync, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { crc32, deflateRawSync, gzipSync } from "node:zlib"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { ManifestError } from "../src/manifest/ManifestError.js"
import { type BinarySpec, ServiceManifest } from "../src/manifest/ServiceManifest.js"
import type { ServiceSpec, StackSpec } from "../src/manifest/ServiceSpec.js"
import { extractMember } from "../src/provision/Archive.js"
import { loadStack } from "../src/manifest/StackLoader.js"
import { resolvedService } from "./support/Specs.js"
import {
  archiveFormat,
  expandTemplate,
  overrideVariable,
  platformKey,
  platformOf,
  templateValues
} from "../src/provision/Platform.js"
import { deferExtraCaCerts } from "../src/provision/ExtraCaCerts.js"
import { declarationHash, parseProvenance, provenanceMismatch } from "../src/provision/Provenance.js"
import { type ProvisionEvent, provision as provisionOn } from "../src/provision/Provisioner.js"

/** `provision` on the Node platform. */
const provision = (...args: Parameters<typeof provisionOn>) =>
  provisionOn(...args).pipe(Effect.provide(NodeContext.layer))

// ---------------------------------------------------------------------------------------------
// fixtures

const platform = platformOf(process.platform, process.arch)!
const key = platformKey(platform)
const script = (version: string) => `#!/bin/sh\necho "tool ${version}"\n`
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex")

/** A temp directory removed after the test. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "core-provision-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** A tar.gz made by the system's `tar`: `<folder>/tool` with the script inside. */
const makeTarGz = (work: string, folder: string, contents: string): Buffer => {
  const root = fs.mkdtempSync(path.join(work, "tar-"))
  fs.mkdirSync(path.join(root, folder))
  fs.writeFileSync(path.join(root, folder, "tool"), contents, { mode: 0o755 })
  fs.writeFileSync(path.join(root, folder, "LICENSE"), "license\n")
  const out = path.join(work, `${folder}.tar.gz`)
  execFileSync("tar", ["-czf", out, "-C", root, folder])
  return fs.readFileSync(out)
}

/** A zip of the given files, deflated, written here so the test needs no `zip` command. */
const makeZip = (files: Record<string, string>): Buffer => {
  const locals: Array<Buffer> = []
  const centrals: Array<Buffer> = []
  let offset = 0
  for (const [name, text] of Object.entries(files)) {
    const data = Buffer.from(text)
    const compressed = deflateRawSync(data)
    const nameBytes = Buffer.from(name)
    const crc = crc32(data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(8, 8)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(compressed.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(nameBytes.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(20, 4)
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(8, 10)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(compressed.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(nameBytes.length, 28)
    central.writeUInt32LE(offset, 42)
    locals.push(local, nameBytes, compressed)
    centrals.push(central, nameBytes)
    offset += local.length + nameBytes.length + compressed.length
  }
  const directory = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(Object.keys(files).length, 8)
  end.writeUInt16LE(Object.keys(files).length, 10)
  end.writeUInt32LE(directory.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, directory, end])
}

type Route = (request: http.IncomingMessage, response: http.ServerResponse) => void

const tlsFixture = (name: string) => path.join(import.meta.dirname, "fixtures", "tls", name)

/**
 * A loopback HTTP server with fixed routes; counts requests; closed (with its connections) after the test.
 * `tls`: HTTPS, with a certificate for 127.0.0.1 from the test CA (fixtures/tls/ca.pem).
 */
const serve = (routes: Record<string, Route>, tls = false) =>
  Effect.acquireRelease(
    Effect.async<{ readonly base: string; readonly hits: () => number; readonly server: http.Server }>((resume) => {
      let hits = 0
      const handle = (request: http.IncomingMessage, response: http.ServerResponse) => {
        hits++
        const route = routes[request.url ?? ""]
        if (route) return route(request, response)
        response.writeHead(404).end("not found")
      }
      const server = tls
        ? https.createServer(
            { key: fs.readFileSync(tlsFixture("server.key")), cert: fs.readFileSync(tlsFixture("server.pem")) },
            handle
          )
        : http.createServer(handle)
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ base: `${tls ? "https" : "http"}://127.0.0.1:${port}`, hits: () => hits, server }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

const file =
  (data: Buffer): Route =>
  (_request, response) => {
    response.writeHead(200, { "content-length": data.length }).end(data)
  }

/** A port on which nothing listens (bound, then closed). */
const deadPort = Effect.async<number>((resume) => {
  const server = http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const service = (dir: string, name: string, binaries: Record<string, BinarySpec>): ServiceSpec =>
  resolvedService(name, { binaries }, dir)

const stackOf = (dir: string, services: ReadonlyArray<ServiceSpec>): StackSpec => ({
  dir,
  dataDir: path.join(dir, ".data"),
  depDir: path.join(dir, ".dep"),
  stateDir: path.join(dir, ".core-stack"),
  services
})

/** Environment without any way to reach `go` or other tools, unless given. */
const bareEnv = (extra: Record<string, string> = {}) => ({ PATH: "/nonexistent", HOME: os.tmpdir(), ...extra })

const runBinary = (file: string) => execFileSync(file, { encoding: "utf8" }).trim()

const depListing = (dir: string) =>
  fs.existsSync(path.join(dir, ".dep")) ? fs.readdirSync(path.join(dir, ".dep")) : []

const fast = { connectMs: 2_000, idleMs: 2_000 }

// ---------------------------------------------------------------------------------------------
// pure parts

describe("Platform", () => {
  it("names the override variable in upper case with non-alphanumerics as _", () => {
    expect(overrideVariable("nats-server")).toBe("CORE_BIN_NATS_SERVER")
    expect(overrideVariable("pocketbase")).toBe("CORE_BIN_POCKETBASE")
  })

  it("expands the download template, with the release's own OS names", () => {
    const download = { url: "u", sha256: {}, os_names: { darwin: "mac" } }
    const values = templateValues(download, "2.11.7", { os: "darwin", arch: "arm64" })
    expect(expandTemplate(`caddy_\${version}_\${os}_\${arch}.tar.gz`, values)).toBe("caddy_2.11.7_mac_arm64.tar.gz")
    expect(expandTemplate(`\${other}`, values)).toBe(`\${other}`)
  })

  it("guesses the archive format from the URL unless declared", () => {
    expect(archiveFormat({ url: "", sha256: {} }, "https://x/a.tar.gz")).toBe("tar.gz")
    expect(archiveFormat({ url: "", sha256: {} }, "https://x/a.zip?x=1")).toBe("zip")
    expect(archiveFormat({ url: "", sha256: {} }, "https://x/tool")).toBe("raw")
    expect(archiveFormat({ url: "", sha256: {}, format: "zip" }, "https://x/tool")).toBe("zip")
  })

  it("maps Node's platform names to release names", () => {
    expect(platformOf("linux", "x64")).toEqual({ os: "linux", arch: "amd64" })
    expect(platformOf("darwin", "arm64")).toEqual({ os: "darwin", arch: "arm64" })
    expect(platformOf("win32", "x64")).toBeUndefined()
  })
})

describe("Provenance", () => {
  const record = {
    name: "tool",
    version: "1.0.0",
    source: "download" as const,
    origin: "http://x",
    sha256: "a".repeat(64),
    size: 1,
    mtimeMs: 1,
    time: "2026-01-01T00:00:00Z"
  }

  it("parses a record and rejects garbage", () => {
    expect(parseProvenance(JSON.stringify(record))).toEqual(record)
    expect(parseProvenance("{")).toBeUndefined()
    expect(parseProvenance(JSON.stringify({ ...record, size: "x" }))).toBeUndefined()
  })

  it("matches only the pinned version, and an override only by its path", () => {
    const none = { declared: "d", version: "1.0.0", override: undefined, inputs: undefined }
    expect(provenanceMismatch(record, none)).toBeUndefined()
    expect(provenanceMismatch(record, { ...none, version: "1.0.1" })).toContain("1.0.1")
    expect(provenanceMismatch(record, { ...none, override: "/bin/x" })).toContain("/bin/x")
    const overridden = { ...record, source: "override" as const, origin: "/bin/x" }
    expect(provenanceMismatch(overridden, { ...none, override: "/bin/x" })).toBeUndefined()
    expect(provenanceMismatch(overridden, none)).toContain("no longer set")
  })

  it("rebuilds a Go main whose sources changed", () => {
    const built = { ...record, source: "build" as const, inputs: "one" }
    const now = { declared: "d", version: "1.0.0", override: undefined }
    expect(provenanceMismatch(built, { ...now, inputs: "one" })).toBeUndefined()
    expect(provenanceMismatch(built, { ...now, inputs: "two" })).toContain("changed")
  })

  it("a new URL or checksum with the same version is not the recorded binary; an older record has no say", () => {
    const spec = { version: "1.0.0", download: { url: "http://x/a", sha256: { "linux-amd64": "a".repeat(64) } } }
    const declared = declarationHash(spec)
    // the same declaration, however its keys are ordered
    expect(declarationHash({ download: { sha256: spec.download.sha256, url: "http://x/a" }, version: "1.0.0" })).toBe(
      declared
    )
    const now = { declared, version: "1.0.0", override: undefined, inputs: undefined }
    expect(provenanceMismatch({ ...record, declared }, now)).toBeUndefined()
    const moved = declarationHash({ ...spec, download: { ...spec.download, url: "http://x/b" } })
    expect(provenanceMismatch({ ...record, declared }, { ...now, declared: moved })).toContain("declaration")
    expect(provenanceMismatch(record, { ...now, declared: moved })).toBeUndefined()
  })
})

describe("Archive", () => {
  it("finds a member by path or by name, and says what is there when it is missing", () => {
    const zip = makeZip({ "dir/tool": "A", "dir/other": "B" })
    expect(Effect.runSync(extractMember(zip, "zip", "tool", undefined)).toString()).toBe("A")
    expect(Effect.runSync(extractMember(zip, "zip", "x", "dir/other")).toString()).toBe("B")
    const missing = Effect.runSync(Effect.flip(extractMember(zip, "zip", "nope", undefined)))
    expect(missing._tag).toBe("ArchiveError")
    expect(missing.reason).toMatch(/no member named nope.*dir\/tool/)
    const garbage = Effect.runSync(Effect.flip(extractMember(Buffer.from("not gzip"), "tar.gz", "tool", undefined)))
    expect(garbage.reason).toMatch(/cannot read the tar.gz archive/)
  })

  it("a tar entry with a negative size is refused, not read for ever", () => {
    for (const type of ["0", "L"]) {
      const header = Buffer.alloc(512)
      header.write("tool", 0)
      header.write("-0001750\0", 124) // -1000 in octal
      header.write(type, 156)
      const archive = gzipSync(Buffer.concat([header, Buffer.alloc(1024)]))
      const error = Effect.runSync(Effect.flip(extractMember(archive, "tar.gz", "tool", undefined)))
      expect(error.reason, type).toMatch(/a tar entry has no valid size/)
    }
  })
})

describe("the default stack's binaries", () => {
  const manifest = (name: string) =>
    Schema.decodeUnknownSync(ServiceManifest)(
      JSON.parse(fs.readFileSync(path.join(__dirname, "..", "services", name, "service.json"), "utf8"))
    )
  const platforms = ["linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"]

  it("each can be built with Go, and downloads only for known platforms", () => {
    for (const name of ["nats", "pocketbase", "caddy"]) {
      for (const [binary, spec] of Object.entries(manifest(name).binaries ?? {})) {
        expect(spec.build, `${name}/${binary}`).toBeDefined()
        for (const key of Object.keys(spec.download?.sha256 ?? {})) expect(platforms).toContain(key)
      }
    }
  })

  it("expand to the official release URLs and archive members", () => {
    const nats = manifest("nats").binaries!["nats-server"]!
    const natsValues = templateValues(nats.download!, nats.version, { os: "linux", arch: "arm64" })
    expect(expandTemplate(nats.download!.url, natsValues)).toBe(
      "https://github.com/nats-io/nats-server/releases/download/v2.15.0/nats-server-v2.15.0-linux-arm64.tar.gz"
    )
    expect(expandTemplate(nats.download!.member!, natsValues)).toBe("nats-server-v2.15.0-linux-arm64/nats-server")
    const caddy = manifest("caddy").binaries!.caddy!
    const caddyValues = templateValues(caddy.download!, caddy.version, { os: "darwin", arch: "arm64" })
    expect(expandTemplate(caddy.download!.url, caddyValues)).toBe(
      "https://github.com/caddyserver/caddy/releases/download/v2.11.7/caddy_2.11.7_mac_arm64.tar.gz"
    )
  })
})

// ---------------------------------------------------------------------------------------------
// provisioning against a loopback server

describe("provision", () => {
  it.scopedLive("installs from a tar.gz, checking the sha256, and records where it came from", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeTarGz(dir, `tool-1.0.0-${platform.os}-${platform.arch}`, script("1.0.0"))
      const { base } = yield* serve({ [`/v1.0.0/tool-${platform.os}-${platform.arch}.tar.gz`]: file(archive) })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: {
            version: "1.0.0",
            download: {
              url: `${base}/v\${version}/tool-\${os}-\${arch}.tar.gz`,
              member: `tool-\${version}-\${os}-\${arch}/tool`,
              sha256: { [key]: sha256(archive) }
            }
          }
        })
      ])
      const events: Array<ProvisionEvent> = []
      const result = yield* provision(stack, [], { env: bareEnv(), onProgress: (event) => events.push(event) })
      expect(result).toHaveLength(1)
      expect(result[0]).toMatchObject({ name: "tool", source: "download", reused: false })
      expect(runBinary(path.join(dir, ".dep", "tool"))).toBe("tool 1.0.0")
      const record = parseProvenance(fs.readFileSync(path.join(dir, ".dep", "tool.json"), "utf8"))
      expect(record).toMatchObject({ source: "download", version: "1.0.0" })
      expect(record!.sha256).toBe(sha256(Buffer.from(script("1.0.0"))))
      expect(events.map((event) => event._tag)).toContain("DownloadProgress")
      expect(depListing(dir).sort()).toEqual(["tool", "tool.json"])
    })
  )

  it.scopedLive(
    "installs from a zip behind a redirect, finding the binary by name, and clears a dead run's leftovers",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const archive = makeZip({ "README.md": "read me", "bin/tool": script("2.0.0") })
        const { base } = yield* serve({
          "/tool.zip": (_request, response) => response.writeHead(302, { location: "/storage/tool.zip" }).end(),
          "/storage/tool.zip": file(archive)
        })
        const stack = stackOf(dir, [
          service(dir, "svc", {
            tool: { version: "2.0.0", download: { url: `${base}/tool.zip`, sha256: { [key]: sha256(archive) } } }
          })
        ])
        // leftovers of a provisioning process killed hard are removed; a live one's are not
        const dead = spawnSync("true").pid
        fs.mkdirSync(path.join(dir, ".dep"))
        fs.mkdirSync(path.join(dir, ".dep", `.tool.${dead}-abc.build`))
        fs.writeFileSync(path.join(dir, ".dep", `.tool.${dead}-abc.tmp`), "partial")
        fs.writeFileSync(path.join(dir, ".dep", `.tool.${process.pid}-abc.tmp`), "in progress")
        yield* provision(stack, [], { env: bareEnv() })
        expect(runBinary(path.join(dir, ".dep", "tool"))).toBe("tool 2.0.0")
        expect(depListing(dir).sort()).toEqual([`.tool.${process.pid}-abc.tmp`, "tool", "tool.json"])
      })
  )

  it.scopedLive("downloads over https trusting the extra certificates the process was started without", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeZip({ tool: script("1.0.0") })
      const { base } = yield* serve({ "/tool.zip": file(archive) }, true)
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: { version: "1.0.0", download: { url: `${base}/tool.zip`, sha256: { [key]: sha256(archive) } } }
        })
      ])
      // Node's own certificates (and this process's NODE_EXTRA_CA_CERTS, if any) do not hold the test CA
      const refused = yield* Effect.flip(provision(stack, [], { env: bareEnv(), timeouts: fast }))
      expect(refused.message).toMatch(/certificate/)
      // as the background supervisor does, started without NODE_EXTRA_CA_CERTS (SupervisorSpawn)
      yield* Effect.acquireRelease(
        Effect.sync(() => deferExtraCaCerts(tlsFixture("ca.pem"))),
        () => Effect.sync(() => deferExtraCaCerts(undefined))
      )
      yield* provision(stack, [], { env: bareEnv() })
      expect(runBinary(path.join(dir, ".dep", "tool"))).toBe("tool 1.0.0")
    })
  )

  it.scopedLive("installs nothing when the checksum does not match", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeZip({ tool: script("1.0.0") })
      const { base } = yield* serve({ "/tool.zip": file(archive) })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: { version: "1.0.0", download: { url: `${base}/tool.zip`, sha256: { [key]: "0".repeat(64) } } }
        })
      ])
      const error = yield* Effect.flip(provision(stack, [], { env: bareEnv() }))
      expect(error._tag).toBe("ProvisionError")
      expect(error.message).toContain("sha256 mismatch")
      expect(error.message).toContain(sha256(archive))
      expect(depListing(dir)).toEqual([])
    })
  )

  it.scopedLive("leaves no partial binary when the server closes mid-body", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeTarGz(dir, "tool", script("1.0.0") + "#".repeat(200_000))
      const { base } = yield* serve({
        "/tool.tar.gz": (_request, response) => {
          response.writeHead(200, { "content-length": archive.length })
          response.write(archive.subarray(0, archive.length / 2), () => response.socket?.destroy())
        }
      })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: { version: "1.0.0", download: { url: `${base}/tool.tar.gz`, sha256: { [key]: sha256(archive) } } }
        })
      ])
      const error = yield* Effect.flip(provision(stack, [], { env: bareEnv(), timeouts: fast }))
      expect(error.message).toMatch(/download (interrupted|truncated)/)
      expect(depListing(dir)).toEqual([])
    })
  )

  it.scopedLive("leaves no partial binary when provisioning is interrupted mid-download", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeTarGz(dir, "tool", script("1.0.0") + "#".repeat(200_000))
      let sent = false
      const { base } = yield* serve({
        "/tool.tar.gz": (_request, response) => {
          response.writeHead(200, { "content-length": archive.length })
          response.write(archive.subarray(0, archive.length / 2), () => {
            sent = true
          })
        }
      })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: { version: "1.0.0", download: { url: `${base}/tool.tar.gz`, sha256: { [key]: sha256(archive) } } }
        })
      ])
      const events: Array<ProvisionEvent> = []
      const outcome = yield* provision(stack, [], {
        env: bareEnv(),
        onProgress: (event) => events.push(event)
      }).pipe(Effect.timeoutOption("1 second"))
      expect(outcome._tag).toBe("None")
      expect(sent).toBe(true)
      expect(events.some((event) => event._tag === "DownloadProgress" && event.received > 0)).toBe(true)
      expect(depListing(dir)).toEqual([])
    })
  )

  it.scopedLive("falls through a dead URL, and lists every source's reason when all fail", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const port = yield* deadPort
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: {
            version: "1.0.0",
            path: { command: "no-such-tool-here" },
            download: { url: `http://127.0.0.1:${port}/tool.zip`, sha256: { [key]: "0".repeat(64) } },
            build: { module: "example.com/tool" }
          }
        })
      ])
      const events: Array<ProvisionEvent> = []
      const error = yield* Effect.flip(
        provision(stack, [], { env: bareEnv(), timeouts: fast, onProgress: (event) => events.push(event) })
      )
      expect(error.failures).toHaveLength(1)
      expect(error.failures[0]!.attempts.map((attempt) => attempt.source)).toEqual([
        "dep",
        "override",
        "path",
        "download",
        "build"
      ])
      expect(error.message).toContain("CORE_BIN_TOOL is not set")
      expect(error.message).toContain("no-such-tool-here not found on PATH")
      expect(error.message).toContain("ECONNREFUSED")
      expect(error.message).toMatch(/build +go is not usable/)
      expect(events.filter((event) => event._tag === "SourceFailed").map((event) => event.source)).toEqual([
        "path",
        "download",
        "build"
      ])
      expect(depListing(dir)).toEqual([])
    })
  )

  it.scopedLive("a download URL that is not http or https is a reason, not an internal error", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const stack = stackOf(dir, [
        service(dir, "a", {
          one: {
            version: "1.0.0",
            download: { url: "not a url ${version}", format: "raw", sha256: { [key]: "0".repeat(64) } }
          },
          two: {
            version: "1.0.0",
            download: { url: "file:///etc/hostname", format: "raw", sha256: { [key]: "0".repeat(64) } }
          }
        })
      ])
      const error = yield* Effect.flip(provision(stack, [], { env: bareEnv(), timeouts: fast }))
      expect(error.failures.map((failure) => failure.binary).sort()).toEqual(["one", "two"])
      expect(error.message).toContain("not a url 1.0.0: not an http or https URL")
      expect(error.message).toContain("file:///etc/hostname: not an http or https URL")
      expect(error.message).not.toContain("internal error")
    })
  )

  it.scopedLive("a new URL and checksum with the same version provisions the new binary, not the recorded one", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const first = makeZip({ tool: script("1.0.0") })
      const second = makeZip({ tool: script("1.0.0 second") })
      const { base } = yield* serve({ "/first.zip": file(first), "/second.zip": file(second) })
      const at = (name: string, archive: Buffer) =>
        stackOf(dir, [
          service(dir, "a", {
            tool: { version: "1.0.0", download: { url: `${base}/${name}`, sha256: { [key]: sha256(archive) } } }
          })
        ])
      yield* provision(at("first.zip", first), [], { env: bareEnv(), timeouts: fast })
      expect(runBinary(path.join(dir, ".dep", "tool"))).toBe("tool 1.0.0")
      yield* provision(at("second.zip", second), [], { env: bareEnv(), timeouts: fast })
      expect(runBinary(path.join(dir, ".dep", "tool"))).toBe("tool 1.0.0 second")
    })
  )

  it.scopedLive("one binary that cannot be had does not stop the others", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const port = yield* deadPort
      const archive = makeZip({ good: script("1.0.0") })
      const { base } = yield* serve({ "/good.zip": file(archive) })
      const stack = stackOf(dir, [
        service(dir, "a", {
          bad: {
            version: "1.0.0",
            download: { url: `http://127.0.0.1:${port}/x.zip`, sha256: { [key]: "0".repeat(64) } }
          }
        }),
        service(dir, "b", {
          good: { version: "1.0.0", download: { url: `${base}/good.zip`, sha256: { [key]: sha256(archive) } } }
        })
      ])
      const error = yield* Effect.flip(provision(stack, [], { env: bareEnv(), timeouts: fast }))
      expect(error.failures.map((failure) => failure.binary)).toEqual(["bad"])
      expect(error.message).toContain("needed by a")
      expect(runBinary(path.join(dir, ".dep", "good"))).toBe("tool 1.0.0")
    })
  )

  it.scopedLive(
    "a dead URL falls through to a Go build of the service's own main",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const port = yield* deadPort
        const main = path.join(dir, "services", "svc")
        fs.mkdirSync(main, { recursive: true })
        fs.writeFileSync(path.join(main, "go.mod"), "module example.com/hello\n\ngo 1.21\n")
        fs.writeFileSync(
          path.join(main, "main.go"),
          'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello 0.1.0") }\n'
        )
        const stack = stackOf(dir, [
          service(dir, "svc", {
            hello: {
              version: "0.1.0",
              download: { url: `http://127.0.0.1:${port}/hello.zip`, sha256: { [key]: "0".repeat(64) } },
              build: { main: ".", env: { CGO_ENABLED: "0" } }
            }
          })
        ])
        const events: Array<ProvisionEvent> = []
        const result = yield* provision(stack, [], { timeouts: fast, onProgress: (event) => events.push(event) })
        expect(result[0]).toMatchObject({ name: "hello", source: "build", reused: false })
        expect(runBinary(path.join(dir, ".dep", "hello"))).toBe("hello 0.1.0")
        expect(events.find((event) => event._tag === "SourceFailed")).toMatchObject({ source: "download" })
        expect(events.find((event) => event._tag === "BuildStarted")).toMatchObject({
          description: expect.stringMatching(/^building hello 0\.1\.0 with go/)
        })
        // unchanged sources: reused; changed sources: rebuilt
        const again = yield* provision(stack, [], { timeouts: fast })
        expect(again[0]!.reused).toBe(true)
        fs.writeFileSync(
          path.join(main, "main.go"),
          'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello changed") }\n'
        )
        const rebuilt = yield* provision(stack, [], { timeouts: fast })
        expect(rebuilt[0]!.reused).toBe(false)
        expect(runBinary(path.join(dir, ".dep", "hello"))).toBe("hello changed")
      }),
    { skip: spawnSync("go", ["version"]).status !== 0 }
  )

  it.scopedLive("reuses a binary with matching provenance without touching the network", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeZip({ tool: script("1.0.0") })
      const spec: BinarySpec = {
        version: "1.0.0",
        download: { url: "http://127.0.0.1:9/tool.zip", sha256: { [key]: sha256(archive) } }
      }
      const server = yield* Effect.scoped(
        Effect.gen(function* () {
          const { base, hits } = yield* serve({ "/tool.zip": file(archive) })
          const stack = stackOf(dir, [
            service(dir, "svc", { tool: { ...spec, download: { ...spec.download!, url: `${base}/tool.zip` } } })
          ])
          yield* provision(stack, [], { env: bareEnv() })
          return { stack, hits: hits() }
        })
      )
      expect(server.hits).toBe(1)
      // the server is gone now; a second run must not need it
      const events: Array<ProvisionEvent> = []
      const again = yield* provision(server.stack, [], { env: bareEnv(), onProgress: (event) => events.push(event) })
      expect(again[0]).toMatchObject({ source: "download", reused: true })
      expect(events.map((event) => event._tag)).toEqual(["Reused"])
      // a binary changed behind our back is not reused (and here cannot be fetched again)
      fs.writeFileSync(path.join(dir, ".dep", "tool"), script("9.9.9"))
      const error = yield* Effect.flip(provision(server.stack, [], { env: bareEnv(), timeouts: fast }))
      expect(error.message).toContain("changed since it was recorded")
      // a different pinned version is not reused either
      const bumped = stackOf(dir, [service(dir, "svc", { tool: { ...spec, version: "1.0.1" } })])
      const bumpedError = yield* Effect.flip(provision(bumped, [], { env: bareEnv(), timeouts: fast }))
      expect(bumpedError.message).toContain("recorded version 1.0.0, the manifest pins 1.0.1")
    })
  )

  it.scopedLive("CORE_BIN_<NAME> overrides every other source and links to the given file", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const mine = path.join(dir, "my-tool")
      fs.writeFileSync(mine, script("local"), { mode: 0o755 })
      const archive = makeZip({ "nats-server": script("1.0.0") })
      const { base, hits } = yield* serve({ "/x.zip": file(archive) })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          "nats-server": { version: "1.0.0", download: { url: `${base}/x.zip`, sha256: { [key]: sha256(archive) } } }
        })
      ])
      const env = bareEnv({ CORE_BIN_NATS_SERVER: mine })
      const result = yield* provision(stack, [], { env })
      expect(result[0]).toMatchObject({ source: "override", origin: mine, reused: false })
      expect(fs.readlinkSync(path.join(dir, ".dep", "nats-server"))).toBe(mine)
      expect(runBinary(path.join(dir, ".dep", "nats-server"))).toBe("tool local")
      expect(hits()).toBe(0)
      expect((yield* provision(stack, [], { env }))[0]!.reused).toBe(true)
      // without the override the linked binary is not reused: the download replaces it
      const downloaded = yield* provision(stack, [], { env: bareEnv() })
      expect(downloaded[0]).toMatchObject({ source: "download", reused: false })
      expect(runBinary(path.join(dir, ".dep", "nats-server"))).toBe("tool 1.0.0")
      // an override that is not an executable file fails and does not fall back
      const broken = yield* Effect.flip(provision(stack, [], { env: bareEnv({ CORE_BIN_NATS_SERVER: "/nope" }) }))
      expect(broken.message).toContain("CORE_BIN_NATS_SERVER=/nope is not an executable file")
      expect(broken.message).toContain("skipped: CORE_BIN_NATS_SERVER is set")
    })
  )

  it.scopedLive("takes a command from PATH when its version matches", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const bin = path.join(dir, "bin")
      fs.mkdirSync(bin)
      fs.writeFileSync(path.join(bin, "tool"), script("1.2.3"), { mode: 0o755 })
      const at = (version: string) =>
        stackOf(dir, [service(dir, "svc", { tool: { version, path: { version_args: ["--version"] } } })])
      const env = bareEnv({ PATH: `${bin}:/bin:/usr/bin` })
      const result = yield* provision(at("1.2.3"), [], { env })
      expect(result[0]).toMatchObject({ source: "path", origin: path.join(bin, "tool") })
      const error = yield* Effect.flip(provision(at("2.0.0"), [], { env }))
      expect(error.message).toContain("is not version 2.0.0")
    })
  )

  it.scopedLive("provisions a binary shared by several services once, and only for the chosen services", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeZip({ tool: script("1.0.0") })
      const { base, hits } = yield* serve({ "/tool.zip": file(archive) })
      const tool: BinarySpec = {
        version: "1.0.0",
        download: { url: `${base}/tool.zip`, sha256: { [key]: sha256(archive) } }
      }
      const other: BinarySpec = {
        version: "1.0.0",
        download: { url: `${base}/other.zip`, sha256: { [key]: "0".repeat(64) } }
      }
      const stack = stackOf(dir, [
        service(dir, "a", { tool }),
        service(dir, "b", { tool }),
        service(dir, "c", { other })
      ])
      const result = yield* provision(stack, ["a", "b"], { env: bareEnv() })
      expect(result.map((one) => one.name)).toEqual(["tool"])
      expect(hits()).toBe(1)
      const unknown = yield* Effect.flip(provision(stack, ["nope"], { env: bareEnv() }))
      expect(unknown.message).toContain("unknown service: nope")
      const conflicting = stackOf(dir, [
        service(dir, "a", { tool }),
        service(dir, "b", { tool: { ...tool, version: "2" } })
      ])
      const conflict = yield* Effect.flip(provision(conflicting, [], { env: bareEnv() }))
      expect(conflict.message).toContain("declared differently by services a and b")
    })
  )
})

// ---------------------------------------------------------------------------------------------
// .dep belongs to the user who provisions

/** The permission bits of a file or folder (not following a link). */
const modeOf = (file: string) => fs.lstatSync(file).mode & 0o7777

/** A `go` that only pretends: it builds a script, writable by everyone whatever the umask. */
const fakeGo = (dir: string) => {
  const bin = path.join(dir, "fake-go")
  fs.mkdirSync(bin)
  fs.writeFileSync(
    path.join(bin, "go"),
    '#!/bin/sh\ncase "$1" in\n  env) echo go1.99 ;;\n  build) while [ "$1" != "-o" ]; do shift; done\n' +
      '    printf \'#!/bin/sh\\necho built\\n\' > "$2"; chmod 777 "$2" ;;\nesac\n',
    { mode: 0o755 }
  )
  return bin
}

describe("provision: a .dep only its user can change", () => {
  it.scopedLive("refuses a binary name that leaves .dep, at load with its location; provisioning writes nothing", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const outside = path.join(dir, "outside")
      fs.mkdirSync(outside)
      const leaving = "../outside/pwn"
      fs.mkdirSync(path.join(dir, "services", "api"), { recursive: true })
      fs.writeFileSync(
        path.join(dir, "services", "api", "service.json"),
        JSON.stringify({
          binaries: { [leaving]: { version: "1", path: { command: "/bin/true" } } },
          process: { command: "sleep", args: ["1"] }
        })
      )
      const refused = yield* Effect.flip(loadStack(dir, { env: bareEnv() }).pipe(Effect.provide(NodeContext.layer)))
      expect(refused).toBeInstanceOf(ManifestError)
      expect(refused.message).toContain(
        `services/api/service.json: binaries["${leaving}"]: is not a valid name: expected a binary name`
      )
      // a spec that never went through the Schema: refused before anything is written
      const stack = stackOf(dir, [service(dir, "api", { [leaving]: { version: "1", path: { command: "/bin/true" } } })])
      const error = yield* Effect.flip(provision(stack, [], { env: bareEnv() }))
      expect(error._tag).toBe("ProvisionError")
      expect(error.message).toContain(`binary name "${leaving}" is not a file name in .dep`)
      expect(error.message).toContain(`outside ${path.join(dir, ".dep")}`)
      expect(fs.readdirSync(outside)).toEqual([])
      expect(fs.existsSync(path.join(dir, ".dep"))).toBe(false)
    })
  )

  it.scopedLive("under umask 000, makes .dep 0755, records 0644 and binaries writable by their owner alone", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeZip({ tool: script("1.0.0") })
      const { base } = yield* serve({ "/tool.zip": file(archive) })
      const main = path.join(dir, "services", "svc")
      fs.mkdirSync(main, { recursive: true })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: { version: "1.0.0", download: { url: `${base}/tool.zip`, sha256: { [key]: sha256(archive) } } },
          built: { version: "1.0.0", build: { main: "." } }
        })
      ])
      const env = bareEnv({ PATH: `${fakeGo(dir)}:/bin:/usr/bin` })
      const previous = process.umask(0)
      const result = yield* provision(stack, [], { env }).pipe(
        Effect.ensuring(Effect.sync(() => process.umask(previous)))
      )
      expect(result.map((one) => one.source)).toEqual(["build", "download"])
      const dep = path.join(dir, ".dep")
      expect(modeOf(dep).toString(8)).toBe("755")
      expect(modeOf(path.join(dep, "tool.json")).toString(8)).toBe("644")
      expect(modeOf(path.join(dep, "built.json")).toString(8)).toBe("644")
      expect(modeOf(path.join(dep, "tool")).toString(8)).toBe("755")
      expect(modeOf(path.join(dep, "built")).toString(8)).toBe("755")
      expect(runBinary(path.join(dep, "built"))).toBe("built")
      expect(depListing(dir).sort()).toEqual(["built", "built.json", "tool", "tool.json"])
    })
  )

  it.scopedLive("makes this user's own .dep 0755 when others may write to it (an older core under umask 002)", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const dep = path.join(dir, ".dep")
      fs.mkdirSync(dep)
      fs.chmodSync(dep, 0o777)
      const stack = stackOf(dir, [service(dir, "svc", { tool: { version: "1", path: { command: "/bin/true" } } })])
      yield* provision(stack, [], { env: bareEnv() })
      expect(modeOf(dep).toString(8)).toBe("755")
    })
  )

  it.scopedLive.skipIf(process.geteuid?.() !== 0)(
    "refuses an existing .dep of another user that others may write to (as root)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const dep = path.join(dir, ".dep")
        fs.mkdirSync(dep)
        fs.chmodSync(dep, 0o777)
        fs.chownSync(dep, 54_321, 54_321)
        const stack = stackOf(dir, [service(dir, "svc", { tool: { version: "1", path: { command: "/bin/true" } } })])
        const error = yield* Effect.flip(provision(stack, [], { env: bareEnv() }))
        expect(error._tag).toBe("ProvisionError")
        expect(error.message).toBe(
          `${dep} is owned by another user (uid 54321; only this user, uid 0, or root may own it): its binaries cannot be trusted; remove it and provision again`
        )
        expect(depListing(dir)).toEqual([])
        expect(modeOf(dep).toString(8)).toBe("777")
      })
  )

  it.scopedLive("does not reuse a record or a binary that others may write to: provisions it again", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const archive = makeZip({ tool: script("1.0.0") })
      const { base, hits } = yield* serve({ "/tool.zip": file(archive) })
      const stack = stackOf(dir, [
        service(dir, "svc", {
          tool: { version: "1.0.0", download: { url: `${base}/tool.zip`, sha256: { [key]: sha256(archive) } } }
        })
      ])
      const record = path.join(dir, ".dep", "tool.json")
      const binary = path.join(dir, ".dep", "tool")
      yield* provision(stack, [], { env: bareEnv() })
      expect((yield* provision(stack, [], { env: bareEnv() }))[0]!.reused).toBe(true)
      fs.chmodSync(record, 0o666)
      const again = yield* provision(stack, [], { env: bareEnv() })
      expect(again[0]).toMatchObject({ source: "download", reused: false })
      expect(hits()).toBe(2)
      expect(modeOf(record).toString(8)).toBe("644")
      fs.chmodSync(binary, 0o775)
      expect((yield* provision(stack, [], { env: bareEnv() }))[0]!.reused).toBe(false)
      expect(hits()).toBe(3)
      expect(modeOf(binary).toString(8)).toBe("755")
      // another user's record (only root can make one here)
      if (process.geteuid?.() === 0) {
        fs.chownSync(record, 65534, 65534)
        expect((yield* provision(stack, [], { env: bareEnv() }))[0]!.reused).toBe(false)
        expect(fs.statSync(record).uid).toBe(0)
      }
    })
  )
})
