/**
 * A plain-Node reader of the control API (no Effect): what the launcher's quick paths use to ask a running
 * supervisor for its status before, or instead of, loading the CLI bundle. It only reads (`GET`), and it
 * accepts an answer only when it has exactly the shape that `ControlApi`'s Schemas give it (checked against them
 * by test/QuickPaths.test.ts); anything else is `undefined`, and the caller leaves the command to the full
 * client (`ControlClient`), which says what is wrong.
 */
import * as http from "node:http"
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
      request.destroy()
      resolve(value)
    }
    const request = http.request(
      { socketPath: socket, method, path, agent: false, headers: { host: "localhost" } },
      (response) => {
        if (response.statusCode !== 200) return done(undefined)
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("error", () => done("closed"))
        response.on("end", () => {
          try {
            done(JSON.parse(Buffer.concat(chunks).toString("utf8")))
          } catch {
            done(undefined)
          }
        })
      }
    )
    request.on("error", () => done("closed"))
    request.end()
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => done(undefined), timeoutMs)
  })

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
