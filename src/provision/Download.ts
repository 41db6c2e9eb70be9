/**
 * One HTTP(S) download into a file, hashed on the way, with short timeouts so a dead URL fails fast.
 *
 * Node's `http`/`https` are used directly: redirects are followed (release hosts redirect to storage),
 * the response must be 200, and a body shorter than its `Content-Length` is an error.
 */
import { createHash } from "node:crypto"
import { createWriteStream } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"

/** Timeouts of a download, in milliseconds. */
export interface DownloadTimeouts {
  /** From the request until the response headers arrive (connect, TLS, redirect hops each). Default 10 000. */
  readonly connectMs: number
  /** Longest silence while the body is streaming. Default 20 000. */
  readonly idleMs: number
}

/** Default download timeouts. */
export const defaultTimeouts: DownloadTimeouts = { connectMs: 10_000, idleMs: 20_000 }

/** What a finished download produced. */
export interface Downloaded {
  readonly bytes: number
  /** Lower-case hex sha256 of the body. */
  readonly sha256: string
}

const maxRedirects = 8

const describe = (error: unknown): string => {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message
  }
  return String(error)
}

const get = (url: URL, timeouts: DownloadTimeouts, signal: AbortSignal): Promise<http.IncomingMessage> =>
  new Promise((resolve, reject) => {
    const client = url.protocol === "https:" ? https : url.protocol === "http:" ? http : undefined
    if (!client) return reject(new Error(`unsupported URL scheme ${url.protocol}`))
    const request = client.get(url, { agent: false, signal, headers: { "user-agent": "core-provision" } })
    const timer = setTimeout(
      () => request.destroy(new Error(`no response within ${timeouts.connectMs} ms`)),
      timeouts.connectMs
    )
    request.once("response", (response) => {
      clearTimeout(timer)
      resolve(response)
    })
    request.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })

/**
 * Downloads `url` into `file` (created or truncated). `onProgress` is called with the bytes received so far
 * and the announced total. Rejects with a readable `Error`; the caller removes `file` on failure.
 */
export const downloadToFile = async (
  url: string,
  file: string,
  options: {
    readonly timeouts: DownloadTimeouts
    readonly signal: AbortSignal
    readonly onProgress?: (received: number, total: number | undefined) => void
  }
): Promise<Downloaded> => {
  let current = new URL(url)
  let response: http.IncomingMessage
  for (let hop = 0; ; hop++) {
    try {
      response = await get(current, options.timeouts, options.signal)
    } catch (error) {
      throw new Error(`${current.host}: ${describe(error)}`)
    }
    const status = response.statusCode ?? 0
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume()
      if (hop >= maxRedirects) throw new Error(`more than ${maxRedirects} redirects`)
      current = new URL(response.headers.location, current)
      continue
    }
    if (status !== 200) {
      response.resume()
      throw new Error(`HTTP ${status} ${response.statusMessage ?? ""}`.trim())
    }
    break
  }
  const lengthHeader = response.headers["content-length"]
  const total = lengthHeader === undefined ? undefined : Number.parseInt(lengthHeader, 10)
  const hash = createHash("sha256")
  let received = 0
  response.setTimeout(options.timeouts.idleMs, () =>
    response.destroy(new Error(`no data for ${options.timeouts.idleMs} ms`))
  )
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length
      hash.update(chunk)
      options.onProgress?.(received, total)
      callback(null, chunk)
    }
  })
  try {
    await pipeline(response, meter, createWriteStream(file), { signal: options.signal })
  } catch (error) {
    throw new Error(`download interrupted after ${received} bytes: ${describe(error)}`)
  }
  if (total !== undefined && received !== total) {
    throw new Error(`download truncated: ${received} of ${total} bytes`)
  }
  return { bytes: received, sha256: hash.digest("hex") }
}
