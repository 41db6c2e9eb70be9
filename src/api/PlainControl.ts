/**
 * A plain-Node reader of the control API (no Effect): what the launcher's quick paths use to ask a running
 * supervisor for its status (and to ask it for a `down`) before, or instead of, loading the CLI bundle. It
 * accepts an answer only when it has exactly the shape that `ControlApi`'s Schemas give it (checked against them
 * by test/QuickPaths.test.ts); anything else is `undefined`, and the caller leaves the command to the full
 * client (`ControlClient`), which says what is wrong.
 */
import * as net from "node:net"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { HEALTHS, SERVICE_STATES } from "../stack/ServiceStates.js"

/** Longest Unix socket path Linux accepts; a longer one is left to the full client (see `ControlSocket`). */
const MAX_SOCKET_PATH = 107

/**
 * `GET path` on the Unix socket `socket`: the JSON body of a 200 answer within `timeoutMs`, else undefined
 * (no socket, refused, another status, a body that is not JSON, too slow).
 */
export const getJson = (socket: string, path: string, timeoutMs: number): Promise<unknown> =>
  requestJson(socket, "GET", path, timeoutMs).then((answer) => (answer === "closed" ? undefined : answer))

/**
 * `method path` on the Unix socket `socket`, as `getJson`; "closed" when the connection failed or closed
 * before a whole answer came (a supervisor ending as it answers `POST /down` may do that). No time limit
 * when `timeoutMs` is undefined.
 *
 * HTTP/1.1 written and read here over `net`, one request per connection (`Connection: close`): Node's `http`
 * client cost a `down` or an `up -d` ~17 ms more from its start to the second answer (loading `http`, and
 * compiling the IPv6 check it runs on the host).
 */
export const requestJson = (
  socket: string,
  method: "GET" | "POST",
  path: string,
  timeoutMs: number | undefined
): Promise<unknown> =>
  new Promise((resolve) => {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) return resolve(undefined)
    let settled = false
    const done = (value: unknown) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      connection.destroy()
      resolve(value)
    }
    const chunks: Array<Buffer> = []
    let size = 0
    // read again once this many bytes are in: the whole head, then the whole body by its length (a chunked
    // body at each chunk), not the whole answer again at each chunk of a large one
    let wanted = 0
    const connection = net.connect({ path: socket })
    connection.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      if (size > MAX_ANSWER_BYTES) return done(undefined)
      if (size < wanted) return
      const bytes = Buffer.concat(chunks)
      const answer = parseAnswer(bytes)
      if (answer === "partial") {
        wanted = bytesNeeded(bytes)
        return
      }
      if (answer === undefined || answer.status !== 200) return done(undefined)
      try {
        done(JSON.parse(answer.body))
      } catch {
        done(undefined)
      }
    })
    connection.on("error", () => done("closed"))
    connection.on("close", () => done("closed"))
    connection.write(`${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => done(undefined), timeoutMs)
  })

/** The largest answer read: a status of thousands of services, with room to spare. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024

/**
 * An HTTP/1.1 answer read so far: its status and body once whole (by `Content-Length`, or chunks up to the
 * last one), "partial" before that, undefined when it is not HTTP/1.1 as Node's server writes it.
 */
export const parseAnswer = (
  bytes: Buffer
): { readonly status: number; readonly body: string } | "partial" | undefined => {
  const head = bytes.indexOf("\r\n\r\n")
  if (head < 0) return bytes.length > 64 * 1024 ? undefined : "partial"
  const lines = bytes.subarray(0, head).toString("latin1").split("\r\n")
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? "")
  if (statusLine === null) return undefined
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":")
    if (colon <= 0) return undefined
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  const rest = bytes.subarray(head + 4)
  const status = Number(statusLine[1])
  const length = headers.get("content-length")
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
    const body = dechunk(rest)
    return body === "partial" || body === undefined ? body : { status, body: body.toString("utf8") }
  }
  if (length === undefined || !/^\d+$/.test(length)) return undefined
  const n = Number(length)
  return rest.length < n ? "partial" : { status, body: rest.subarray(0, n).toString("utf8") }
}

/** How many bytes a partial answer needs at least before it can be whole (its size plus one when unknown). */
const bytesNeeded = (bytes: Buffer): number => {
  const head = bytes.indexOf("\r\n\r\n")
  if (head < 0) return bytes.length + 1
  const headers = bytes.subarray(0, head + 2).toString("latin1")
  const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(headers)
  return length && !/\r\ntransfer-encoding:/i.test(headers) ? head + 4 + Number(length[1]) : bytes.length + 1
}

/** A chunked body: whole once its last (empty) chunk is in, "partial" before; undefined when malformed. */
const dechunk = (bytes: Buffer): Buffer | "partial" | undefined => {
  const parts: Array<Buffer> = []
  let at = 0
  for (;;) {
    const end = bytes.indexOf("\r\n", at)
    if (end < 0) return "partial"
    const sizeText = bytes.subarray(at, end).toString("latin1").split(";")[0]!.trim()
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return undefined
    const n = Number.parseInt(sizeText, 16)
    if (n === 0) return Buffer.concat(parts)
    if (bytes.length < end + 2 + n + 2) return "partial"
    parts.push(bytes.subarray(end + 2, end + 2 + n))
    at = end + 2 + n + 2
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
const isInt = (value: unknown): boolean => Number.isSafeInteger(value)
const isNumber = (value: unknown): boolean => typeof value === "number" && Number.isFinite(value)
const nullOr =
  (check: (value: unknown) => boolean) =>
  (value: unknown): boolean =>
    value === null || check(value)
const oneOf =
  (values: ReadonlyArray<string>) =>
  (value: unknown): boolean =>
    typeof value === "string" && values.includes(value)

/** A field of an encoded Schema struct: its name, its check, and whether it may be absent. */
type Field = readonly [string, (value: unknown) => boolean, "optional"?]

/**
 * Whether `value` is an object with exactly `fields`: every field valid, the keys in the Schema's order and no
 * others, so that printing it gives the text the Schema's encoding would.
 */
const hasExactly = (fields: ReadonlyArray<Field>, value: unknown): boolean => {
  if (!isObject(value)) return false
  const keys = Object.keys(value)
  let k = 0
  for (const [name, valid, optional] of fields) {
    if (keys[k] === name) {
      if (!valid(value[name])) return false
      k++
    } else if (optional === undefined) return false
  }
  return k === keys.length
}

/** The fields of an encoded `ServiceStatus`, in the Schema's order. */
const statusFields: ReadonlyArray<Field> = [
  ["name", (v) => typeof v === "string"],
  ["state", oneOf(SERVICE_STATES)],
  ["health", oneOf(HEALTHS)],
  ["pid", nullOr(isInt)],
  ["restarts", isInt],
  ["startedAt", nullOr(isNumber)],
  ["exitCode", nullOr(isInt)],
  ["reason", nullOr((v) => typeof v === "string")],
  ["ports", (v) => isObject(v) && Object.values(v).every(isInt)],
  ["cpu", nullOr(isNumber), "optional"],
  ["rss", nullOr(isNumber), "optional"],
  ["droppedLogBytes", isInt, "optional"]
]

/** The names of the fields of an encoded `ServiceStatus`, in order (the test compares them with the Schema's). */
export const statusFieldNames: ReadonlyArray<string> = statusFields.map(([name]) => name)

/** Whether `value` is one encoded `ServiceStatus` exactly as the supervisor sends it. */
const isStatusRow = (value: unknown): value is ServiceStatus => hasExactly(statusFields, value)

/** Whether `value` is the answer of `GET /status` (an array of encoded `ServiceStatus`), as above. */
export const isStatusRows = (value: unknown): value is ReadonlyArray<ServiceStatus> =>
  Array.isArray(value) && value.every(isStatusRow)

/** The fields of an encoded `SupervisorIdentity` (`GET /hello`), in the Schema's order. */
const identityFields: ReadonlyArray<Field> = [
  ["pid", isInt],
  ["startTime", nullOr(isNumber)],
  ["dir", (v) => typeof v === "string"],
  ["services", (v) => Array.isArray(v) && v.every((s) => typeof s === "string")],
  ["droppedOutputBytes", isInt, "optional"]
]

/** The names of the fields of an encoded `SupervisorIdentity`, in order (compared with the Schema's by the test). */
export const identityFieldNames: ReadonlyArray<string> = identityFields.map(([name]) => name)

/** Whether `value` is an encoded `SupervisorIdentity` (`GET /hello`), as above. */
export const isIdentity = (value: unknown): value is { readonly pid: number; readonly droppedOutputBytes?: number } =>
  hasExactly(identityFields, value)

/** Who answers `GET /hello`: its pid, or undefined when the answer is not a `SupervisorIdentity`. */
export const helloPid = (value: unknown): number | undefined => (isIdentity(value) ? value.pid : undefined)
