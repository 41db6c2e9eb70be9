/**
 * One HTTP(S) download into a file, hashed on the way, with short timeouts so a dead URL fails fast.
 *
 * The platform `HttpClient` (the one the control client uses, so it costs the bundle nothing) with
 * `followRedirects` (release hosts redirect to storage); the response must be 200, and a body shorter than its
 * `Content-Length` is an error.
 */
import { FileSystem, HttpClient, HttpClientRequest } from "@effect/platform"
import { Data, Effect, Stream } from "effect"
import { createHash } from "node:crypto"

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

/** Why a download did not complete; the caller removes the file. */
export class DownloadError extends Data.TaggedError("DownloadError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

const maxRedirects = 8

/** The innermost readable reason of an error, with its code (`ECONNREFUSED`) when the text lacks it. */
const describe = (error: unknown): string => {
  const inner =
    typeof error === "object" && error !== null && "cause" in error && error.cause !== undefined ? error.cause : error
  if (inner instanceof Error) {
    const code = (inner as NodeJS.ErrnoException).code
    return code && !inner.message.includes(code) ? `${inner.message} (${code})` : inner.message
  }
  return String(inner)
}

/**
 * Downloads `url` into `file` (created or truncated). `onProgress` is called with the bytes received so far
 * and the announced total. Interrupting it aborts the request.
 */
export const downloadToFile = (
  url: string,
  file: string,
  options: {
    readonly timeouts: DownloadTimeouts
    readonly onProgress?: (received: number, total: number | undefined) => void
  }
) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const { connectMs, idleMs } = options.timeouts
    const fail = (reason: string) => new DownloadError({ reason })
    const protocol = URL.canParse(url) ? new URL(url).protocol : undefined
    if (protocol !== "http:" && protocol !== "https:") return yield* fail(`${url}: not an http or https URL`)
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.transformResponse(
        Effect.timeoutFail({ duration: connectMs, onTimeout: () => fail(`no response within ${connectMs} ms`) })
      ),
      HttpClient.followRedirects(maxRedirects)
    )
    const response = yield* client
      .execute(HttpClientRequest.get(url, { headers: { "user-agent": "core-provision" } }))
      .pipe(
        Effect.mapError((error) =>
          error._tag === "DownloadError" ? error : fail(`${new URL(url).host}: ${describe(error)}`)
        )
      )
    if (response.status >= 300 && response.status < 400 && response.headers.location !== undefined) {
      return yield* fail(`more than ${maxRedirects} redirects`)
    }
    if (response.status !== 200) return yield* fail(`HTTP ${response.status}`)
    const lengthHeader = response.headers["content-length"]
    const total = lengthHeader === undefined ? undefined : Number.parseInt(lengthHeader, 10)
    const hash = createHash("sha256")
    let received = 0
    yield* response.stream.pipe(
      Stream.timeoutFail(() => fail(`no data for ${idleMs} ms`), idleMs),
      Stream.tap((chunk) =>
        Effect.sync(() => {
          received += chunk.length
          hash.update(chunk)
          options.onProgress?.(received, total)
        })
      ),
      Stream.run(fs.sink(file, { mode: 0o600 })),
      Effect.mapError((error) => fail(`download interrupted after ${received} bytes: ${describe(error)}`))
    )
    if (total !== undefined && received !== total) {
      return yield* fail(`download truncated: ${received} of ${total} bytes`)
    }
    return { bytes: received, sha256: hash.digest("hex") } satisfies Downloaded
  })
