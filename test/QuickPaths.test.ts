/**
 * The launcher's quick paths (src/cli/QuickVerbs.ts, src/cli/QuickUp.ts): plain Node that answers `stack status`
 * and `stack process list` and waits for `up -d` without loading the CLI bundle. They must print exactly what
 * the full CLI prints, exit with its codes, and leave every other case to it. Checked here against the
 * control API's Schemas and, on real stacks, against the full CLI itself (`CORE_QUICK=0`) with the built
 * `dist/core.cjs` (`npm test` builds it first). The stacks use no ports.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, FastCheck, Schema } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { join } from "node:path"
import { SupervisorIdentity } from "../src/api/ControlApi.js"
import {
  getJson,
  identityFieldNames,
  isIdentity,
  isStatusRows,
  parseAnswer,
  requestJson,
  statusFieldNames
} from "../src/api/PlainControl.js"
import { parseQuickDown } from "../src/cli/QuickDown.js"
import { parseQuickVerb, quickText } from "../src/cli/QuickVerbs.js"
import { formatStatusJson, StatusJson } from "../src/cli/StackStatus.js"
import { Health, ServiceState, ServiceStatus } from "../src/stack/ServiceStatus.js"
import { isPlainRecord, selfRecordText } from "../src/state/QuickState.js"
import { SupervisorRecord } from "../src/state/StateRecords.js"
import { cli } from "./support/Cli.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { tempDir } from "./support/Specs.js"

describe("the plain client checks answers against the control API's Schemas", () => {
  it("has the Schema's fields in the Schema's order, and its states and healths", () => {
    expect(statusFieldNames).toEqual(Object.keys(ServiceStatus.fields))
    expect(identityFieldNames).toEqual(Object.keys(SupervisorIdentity.fields))
    expect(ServiceState.literals.length).toBe(12)
    expect(Health.literals).toEqual(["none", "unknown", "healthy", "unhealthy"])
  })

  it("accepts every encoded status the Schema makes, and prints it as the full CLI does", () => {
    const rows = Arbitrary.make(StatusJson)
    FastCheck.assert(
      FastCheck.property(rows, (decoded) => {
        // what crosses the socket: the Schema's encoding, as JSON
        const wire: unknown = JSON.parse(JSON.stringify(Schema.encodeSync(StatusJson)(decoded)))
        expect(isStatusRows(wire)).toBe(true)
        const full = Schema.decodeUnknownSync(StatusJson)(wire)
        expect(quickText({ verb: "status", root: "/s", json: true }, wire as typeof full)).toBe(formatStatusJson(full))
      }),
      { numRuns: 200 }
    )
  })

  it("accepts every encoded hello the Schema makes, with its count of dropped output", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(SupervisorIdentity), (identity) => {
        const wire: unknown = JSON.parse(JSON.stringify(Schema.encodeSync(SupervisorIdentity)(identity)))
        expect(isIdentity(wire)).toBe(true)
        expect(isIdentity(wire) && wire.droppedOutputBytes).toBe(identity.droppedOutputBytes)
      }),
      { numRuns: 100 }
    )
    const hello = { pid: 1, startTime: null, dir: "/s", services: ["a"] }
    expect(isIdentity(hello)).toBe(true)
    for (const bad of [
      { ...hello, pid: "1" },
      { ...hello, services: [1] },
      { ...hello, droppedOutputBytes: 0.5 },
      []
    ]) {
      expect(isIdentity(bad)).toBe(false)
    }
  })

  it("rejects what the Schema rejects, and what it would print differently", () => {
    const row = {
      name: "a",
      state: "running",
      health: "none",
      pid: 12,
      restarts: 0,
      startedAt: 1,
      exitCode: null,
      reason: null,
      ports: { http: 8080 },
      cpu: null,
      rss: 100
    }
    const decodes = (value: unknown) => Schema.decodeUnknownEither(StatusJson)(value)._tag === "Right"
    expect(isStatusRows([row])).toBe(true)
    const { cpu: _cpu, rss: _rss, ...withoutOptional } = row
    expect(isStatusRows([withoutOptional])).toBe(true)
    const invalid: ReadonlyArray<unknown> = [
      [{ ...row, state: "sleeping" }],
      [{ ...row, health: "fine" }],
      [{ ...row, pid: 1.5 }],
      [{ ...row, restarts: null }],
      [{ ...row, ports: { http: "8080" } }],
      [{ ...row, reason: 3 }],
      [{ ...row, droppedLogBytes: 0.5 }],
      [withoutOptional, { ...row, name: undefined }],
      { rows: [row] },
      null
    ]
    for (const value of invalid) {
      expect(decodes(value)).toBe(false)
      expect(isStatusRows(value)).toBe(false)
    }
    // valid for the Schema, but its encoding would drop or reorder keys: left to the full client
    const { name, ...rest } = row
    for (const value of [[{ ...row, extra: 1 }], [{ ...rest, name }]]) {
      expect(decodes(value)).toBe(true)
      expect(isStatusRows(value)).toBe(false)
    }
  })

  it("writes and reads records in the format of SupervisorRecord", () => {
    const text = selfRecordText("/stack")
    const decoded = Schema.decodeUnknownSync(Schema.parseJson(SupervisorRecord))(text)
    expect(Schema.encodeSync(Schema.parseJson(SupervisorRecord))(decoded)).toBe(text)
    expect(isPlainRecord(JSON.parse(text))).toBe(true)
    for (const bad of [{ pid: "1", startTime: null, dir: "/" }, { pid: 1, startTime: "x", dir: "/" }, { pid: 1 }]) {
      expect(isPlainRecord(bad)).toBe(Schema.is(SupervisorRecord)(bad))
    }
  })

  it("answers undefined for a socket that is missing, refused or not HTTP", async () => {
    const dir = tempDir("core-quick-")
    expect(await getJson(join(dir, "none.sock"), "/status", 1000)).toBeUndefined()
    const socket = join(dir, "raw.sock")
    const connections: Array<net.Socket> = []
    const server = net.createServer((c) => {
      connections.push(c)
      c.on("error", () => {})
      c.end("not http\r\n\r\n")
    })
    await new Promise<void>((r) => server.listen(socket, r))
    try {
      expect(await getJson(socket, "/status", 1000)).toBeUndefined()
    } finally {
      for (const c of connections) c.destroy()
      server.close()
    }
  })
})

describe("the plain client's reading of HTTP/1.1 answers", () => {
  const answer = (text: string) => parseAnswer(Buffer.from(text, "latin1"))

  it("reads a body by its Content-Length, or by its chunks, once it is whole", () => {
    const json = '{"pid":1}'
    const whole = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`
    expect(answer(whole)).toEqual({ status: 200, body: json })
    for (let cut = 0; cut < whole.length; cut++) expect(answer(whole.slice(0, cut))).toBe("partial")
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"pi\r\n5;x=y\r\nd":1}\r\n0\r\n\r\n'
    expect(answer(chunked)).toEqual({ status: 200, body: json })
    expect(answer(chunked.slice(0, chunked.indexOf("0\r\n\r\n")))).toBe("partial")
    // UTF-8 split across the chunks is joined before it is decoded
    const text = Buffer.from('"é"', "utf8")
    const split = Buffer.concat([
      Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n", "latin1"),
      text.subarray(0, 2),
      Buffer.from("\r\n2\r\n", "latin1"),
      text.subarray(2),
      Buffer.from("\r\n0\r\n\r\n", "latin1")
    ])
    expect(parseAnswer(split)).toEqual({ status: 200, body: '"é"' })
    expect(answer("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}")).toEqual({
      status: 503,
      body: "{}"
    })
  })

  it("reads an answer that comes a byte at a time, by its length or its chunks; a connection closed early is 'closed'", async () => {
    const dir = tempDir("core-quick-")
    const json = JSON.stringify({ pid: 1, text: "é".repeat(100) })
    const answers = [
      `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(json).toString(16)}\r\n${json}\r\n0\r\n\r\n`,
      `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json.slice(0, 10)}`
    ]
    for (const [i, text] of answers.entries()) {
      const socket = join(dir, `slow${i}.sock`)
      const server = net.createServer((c) => {
        c.on("error", () => {})
        const bytes = Buffer.from(text)
        let at = 0
        const next = () => {
          if (at >= bytes.length) return void c.end()
          c.write(bytes.subarray(at, ++at))
          setImmediate(next)
        }
        c.once("data", next)
      })
      await new Promise<void>((r) => server.listen(socket, r))
      try {
        const expected = i < 2 ? JSON.parse(json) : "closed"
        expect(await requestJson(socket, "GET", "/hello", 10_000)).toEqual(expected)
      } finally {
        server.close()
      }
    }
  })

  it("refuses what is not such an answer", () => {
    for (const text of [
      "not http\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
      "HTTP/1.1 200 OK\r\n\r\n{}",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ])
      expect(answer(text)).toBeUndefined()
  })
})

describe("parseQuickVerb (what the launcher answers itself)", () => {
  it("recognises status and process list with --dir, --dir=, CORE_DIR or the current directory, and --json", () => {
    expect(parseQuickVerb(["stack", "status"], {}, "/cwd")).toEqual({ verb: "status", root: "/cwd", json: false })
    expect(parseQuickVerb(["stack", "status", "--json", "--dir", "rel"], {}, "/cwd")).toEqual({
      verb: "status",
      root: "/cwd/rel",
      json: true
    })
    expect(parseQuickVerb(["stack", "process", "list", "--dir=/s"], { CORE_DIR: "/e" }, "/cwd")).toEqual({
      verb: "process list",
      root: "/s",
      json: false
    })
    expect(parseQuickVerb(["stack", "process", "list"], { CORE_DIR: "/e" }, "/cwd")?.root).toBe("/e")
  })

  it("leaves everything else to the CLI", () => {
    const leftToCli = [
      ["stack", "status", "--help"],
      ["stack", "status", "-h"],
      ["stack", "status", "--json", "--json"],
      ["stack", "status", "--dir"],
      ["stack", "status", "--dir", "--json"],
      ["stack", "status", "--dir", "/a", "--dir=/b"],
      ["stack", "status", "--dir="],
      ["stack", "status", "extra"],
      ["stack", "process", "logs", "a"],
      ["stack", "process"],
      ["stack", "up"],
      ["status"]
    ]
    for (const argv of leftToCli) expect(parseQuickVerb(argv, {}, "/cwd")).toBeUndefined()
    expect(parseQuickVerb(["stack", "status"], { CORE_DIR: "" }, "/cwd")).toBeUndefined()
    expect(parseQuickDown(["stack", "down"], {}, "/cwd")).toBe("/cwd")
    expect(parseQuickDown(["stack", "down", "--dir=s"], {}, "/cwd")).toBe("/cwd/s")
    expect(parseQuickDown(["stack", "down"], { CORE_DIR: "/d" }, "/cwd")).toBe("/d")
    for (const argv of [
      ["stack", "down", "--json"],
      ["stack", "down", "--dir"],
      ["stack", "down", "--help"],
      ["stack", "down", "x"],
      ["stack", "status"]
    ]) {
      expect(parseQuickDown(argv, {}, "/cwd")).toBeUndefined()
    }
  })
})

// ---------------------------------------------------------------------------------------------------------
// against the full CLI, on real stacks

interface Outcome {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** `core ARGS --dir DIR`, quick paths on or off (`CORE_QUICK=0`), traced or not (`CORE_TRACE=1`). */
const run = (dir: string, args: ReadonlyArray<string>, quick: boolean, trace = false): Promise<Outcome> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args, "--dir", dir], {
      env: { ...process.env, NO_COLOR: "1", CORE_TRACE: trace ? "1" : "", CORE_QUICK: quick ? "" : "0" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (b) => (stdout += b))
    child.stderr.on("data", (b) => (stderr += b))
    child.once("close", (code) => resolve({ code, stdout, stderr }))
  })

const core = (dir: string, args: ReadonlyArray<string>, quick: boolean) => run(dir, args, quick)

/** Whether the launcher answered without loading the CLI bundle (as `CORE_TRACE=1` shows). */
const servedQuickly = async (dir: string, args: ReadonlyArray<string>): Promise<boolean> => {
  const { stderr } = await run(dir, args, true, true)
  return /answered, without the CLI bundle/.test(stderr) && !/bundle evaluated/.test(stderr)
}

/** A stack directory with these services (`name` -> the `process` part of its manifest). */
const stackWith = (services: Record<string, unknown>): string => {
  const dir = join(tempDir("core-quick-"), "stack")
  for (const [name, process] of Object.entries(services)) {
    fs.mkdirSync(join(dir, "services", name), { recursive: true })
    fs.writeFileSync(join(dir, "services", name, "service.json"), JSON.stringify({ description: name, process }))
  }
  return dir
}

/** A service that runs until stopped; its command line names its directory (`processesMentioning`). */
const sleeper = { command: "sh", args: ["-c", "sleep 300; :", "${dir}"] }
/** A service that completes at once. */
const once = { command: "sh", args: ["-c", "echo done"] }

/** `up -d`'s last line without what differs between two runs (the time, the pid). */
const readyLine = (o: Outcome) => o.stdout.replace(/\d+ ms/, "N ms").replace(/pid \d+/, "pid P")

/** Output without what differs between two runs of a failed start (times and pids in the quoted lines). */
const failure = (o: Outcome) => o.stderr.replace(/\d+ ms/g, "N ms").replace(/\b\d{3,}\b/g, "N")

const statePath = (dir: string, file: string) => join(dir, ".core-stack", file)

const down = async (dir: string) => {
  expect((await core(dir, ["stack", "down"], true)).code).toBe(0)
  expect(processesMentioning(dir)).toEqual([])
}

describe("quick paths against the full CLI", () => {
  it("status and process list print the same, text and --json, and exit 0", async () => {
    const dir = stackWith({ a: sleeper, b: once })
    const up = await core(dir, ["stack", "up", "-d"], true)
    expect(up.code).toBe(0)
    try {
      let listed = await core(dir, ["stack", "process", "list"], true)
      for (let i = 0; i < 200 && !listed.stdout.includes("completed"); i++) {
        await new Promise((r) => setTimeout(r, 25))
        listed = await core(dir, ["stack", "process", "list"], true)
      }
      expect(listed.stdout).toContain("completed")
      for (const args of [
        ["stack", "status"],
        ["stack", "process", "list"],
        ["stack", "status", "--json"]
      ]) {
        expect(await servedQuickly(dir, args)).toBe(true)
      }
      // while a runs: the process table in full; the JSON but the sampled cpu and rss
      expect(await core(dir, ["stack", "process", "list"], true)).toEqual(
        await core(dir, ["stack", "process", "list"], false)
      )
      const unsampled = (o: Outcome) => o.stdout.replace(/"(cpu|rss)": [\d.]+|"(cpu|rss)": null/g, '"$1$2": X')
      expect(unsampled(await core(dir, ["stack", "status", "--json"], true))).toBe(
        unsampled(await core(dir, ["stack", "status", "--json"], false))
      )
      // once a is stopped nothing moves: every verb, byte for byte
      expect((await core(dir, ["stack", "process", "stop", "a"], true)).code).toBe(0)
      for (const args of [
        ["stack", "status"],
        ["stack", "status", "--json"],
        ["stack", "process", "list"],
        ["stack", "process", "list", "--json"]
      ]) {
        const quick = await core(dir, args, true)
        expect(quick.code).toBe(0)
        expect(quick).toEqual(await core(dir, args, false))
      }
    } finally {
      await down(dir)
    }
  }, 120_000)

  it("no stack running, and a stale socket of a dead supervisor: the same error, exit code and cleanup", async () => {
    const dir = stackWith({ a: sleeper })
    for (const args of [
      ["stack", "status"],
      ["stack", "process", "list", "--json"]
    ]) {
      const quick = await core(dir, args, true)
      expect(quick.code).toBe(1)
      expect(quick.stderr).toContain("no stack running in")
      expect(quick).toEqual(await core(dir, args, false))
    }
    const outcomes: Array<Outcome> = []
    for (const quick of [true, false]) {
      // a supervisor that died: its pid file names a process that is gone, its socket refuses
      const state = join(dir, ".core-stack")
      fs.mkdirSync(state, { recursive: true, mode: 0o700 })
      const dead = spawnSync("true").pid
      fs.writeFileSync(statePath(dir, "supervisor.pid"), JSON.stringify({ pid: dead, startTime: 1, dir }))
      const holder = spawn(process.execPath, [
        "-e",
        `require("net").createServer().listen(${JSON.stringify(statePath(dir, "control.sock"))}, () => process.exit(0))`
      ])
      await new Promise((r) => holder.once("exit", r))
      expect(fs.existsSync(statePath(dir, "control.sock"))).toBe(true)
      outcomes.push(await core(dir, ["stack", "status"], quick))
      expect(fs.existsSync(statePath(dir, "control.sock"))).toBe(false)
      expect(fs.existsSync(statePath(dir, "supervisor.pid"))).toBe(false)
    }
    expect(outcomes[0]!.code).toBe(1)
    expect(outcomes[0]).toEqual(outcomes[1])
  }, 120_000)

  it("up -d: the same last line when ready; the same report when a service fails or is unknown", async () => {
    const dir = stackWith({
      a: sleeper,
      b: { ...sleeper, compose: { depends_on: { a: { condition: "process_started" } } } }
    })
    const lines: Array<string> = []
    for (const quick of [true, false]) {
      const up = await core(dir, ["stack", "up", "-d"], quick)
      expect(up.code).toBe(0)
      expect(up.stdout).toMatch(/^core: 2 service\(s\) ready in \d+ ms; supervisor pid \d+, output in .*\n$/)
      expect(fs.existsSync(statePath(dir, "starter.pid"))).toBe(false)
      lines.push(readyLine(up))
      await down(dir)
    }
    expect(lines[0]).toBe(lines[1])

    // fails before it is ready: the supervisor ends by itself
    const failing = stackWith({
      bad: { command: "sh", args: ["-c", "echo oops; exit 3"], compose: { ready_log_line: "^never$" } }
    })
    const unknown: Array<Outcome> = []
    const failed: Array<Outcome> = []
    for (const quick of [true, false]) {
      failed.push(await core(failing, ["stack", "up", "-d"], quick))
      expect(processesMentioning(failing)).toEqual([])
      unknown.push(await core(dir, ["stack", "up", "-d", "nosuch"], quick))
      expect(processesMentioning(dir)).toEqual([])
    }
    expect(failed[0]!.code).toBe(1)
    expect(failed[0]!.stderr).toContain("bad failed to start: exited with code 3")
    expect({ ...failed[0], stderr: failure(failed[0]!) }).toEqual({ ...failed[1], stderr: failure(failed[1]!) })
    expect(unknown[0]!.code).toBe(1)
    expect(unknown[0]!.stderr).toContain('unknown service "nosuch"')
    expect({ ...unknown[0], stderr: failure(unknown[0]!) }).toEqual({ ...unknown[1], stderr: failure(unknown[1]!) })
  }, 120_000)

  it("down: served without the CLI bundle, the same line as the full CLI, nothing left running", async () => {
    const dir = stackWith({
      a: sleeper,
      b: { ...sleeper, compose: { depends_on: { a: { condition: "process_started" } } } }
    })
    const lines: Array<string> = []
    for (const quick of [true, false]) {
      expect((await core(dir, ["stack", "up", "-d"], true)).code).toBe(0)
      const down = await run(dir, ["stack", "down"], quick, true)
      expect(down.code).toBe(0)
      expect(/without the CLI bundle/.test(down.stderr)).toBe(quick)
      expect(/bundle evaluated/.test(down.stderr)).toBe(!quick)
      expect(processesMentioning(dir)).toEqual([])
      expect(fs.existsSync(statePath(dir, "supervisor.pid"))).toBe(false)
      lines.push(down.stdout.replace(/\d+ ms/, "N ms").replace(/pid \d+/, "pid P"))
    }
    expect(lines[0]).toMatch(/^stack in .* stopped \(supervisor pid P\) in N ms\n$/)
    expect(lines[0]).toBe(lines[1])
    // no stack: the full CLI's error
    const none = await core(dir, ["stack", "down"], true)
    expect(none.code).toBe(1)
    expect(none).toEqual(await core(dir, ["stack", "down"], false))
  }, 120_000)

  it("up -d interrupted before ready: exit 130, the same message, nothing left", async () => {
    const never = { ...sleeper, compose: { ready_log_line: "^never$" } }
    const outcomes: Array<Outcome> = []
    for (const quick of [true, false]) {
      const dir = stackWith({ slow: never })
      const child = spawn(process.execPath, [cli, "stack", "up", "-d", "--dir", dir], {
        env: { ...process.env, NO_COLOR: "1", CORE_QUICK: quick ? "" : "0" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (b) => (stdout += b))
      child.stderr.on("data", (b) => (stderr += b))
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
      expect(
        await eventually(() => processesMentioning(dir).some((p) => p.cmdline.startsWith("sh -c sleep")), 30_000)
      ).toBe(true)
      child.kill("SIGINT")
      const code = await exited
      outcomes.push({ code, stdout, stderr })
      expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true)
      expect(fs.existsSync(statePath(dir, "starter.pid"))).toBe(false)
    }
    expect(outcomes[0]!.code).toBe(130)
    expect(outcomes[0]!.stderr).toContain("core: interrupted before the stack was ready")
    expect(outcomes[0]).toEqual(outcomes[1])
  }, 120_000)

  it("a Ctrl-C as soon as the supervisor is spawned, while the CLI bundle loads: exit 130, the message, nothing left", async () => {
    for (const quick of [true, false]) {
      const dir = stackWith({ slow: { ...sleeper, compose: { ready_log_line: "^never$" } } })
      const child = spawn(process.execPath, [cli, "stack", "up", "-d", "--dir", dir], {
        env: { ...process.env, NO_COLOR: "1", CORE_QUICK: quick ? "" : "0" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stderr = ""
      child.stderr.on("data", (b) => (stderr += b))
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
      // the supervisor's command line: `... core.cjs stack up --dir DIR`
      expect(await eventually(() => processesMentioning(`stack up --dir ${dir}`).length > 0, 30_000, 5)).toBe(true)
      child.kill("SIGINT")
      expect(await exited).toBe(130)
      expect(stderr).toContain("core: interrupted before the stack was ready")
      expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true)
    }
  }, 120_000)
})
