/**
 * Who may talk to the dashboard, decided per request (pure). The dashboard listens on 127.0.0.1 only; on top
 * of that every request must carry the token minted at start (in the printed URL once, then in an HttpOnly
 * SameSite=Strict cookie), name the loopback address and port in `Host` (so a DNS-rebound name is refused),
 * and actions must be POSTs that also carry the token in a header and come from the dashboard's own `Origin`.
 * No CORS header is ever sent, so no other origin can read an answer.
 *
 * Browsers send a cookie to every port of its host: to whatever listens on another port of 127.0.0.1 (a
 * service the page links to, or another user's server on a port it took) as well. So everything the dashboard
 * serves is under a secret path (`pagePath`, from the token), and the cookie is sent to that path only.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"

/** A new random token: 32 bytes, base64url. */
export const mintToken = (): string => randomBytes(32).toString("base64url")

/** Name of the cookie that carries the token; per port, since browsers share cookies across ports of a host. */
export const cookieName = (port: number) => `core_ui_${port}`

/**
 * The path everything of the dashboard is served under (`/` + 22 characters + `/`): derived from the token, so
 * no one without the token knows it; the cookie goes to this path only.
 */
export const pagePath = (token: string): `/${string}/` =>
  `/${createHash("sha256").update(`core dashboard path ${token}`).digest("base64url").slice(0, 22)}/`

/** Header that carries the token on actions (the page reads it from its own HTML). */
export const TOKEN_HEADER = "x-core-token"

/** What the server knows of a request. Header names lower-case; absent headers undefined. */
export interface RequestFacts {
  readonly method: string
  /** Path without the query. */
  readonly path: string
  readonly host: string | undefined
  readonly origin: string | undefined
  readonly cookie: string | undefined
  /** The `token` query parameter. */
  readonly queryToken: string | undefined
  readonly headerToken: string | undefined
}

export type Verdict =
  /** Serve it. */
  | { readonly _tag: "Allow" }
  /** The token came in the URL: set the cookie and redirect to the same path without it. */
  | { readonly _tag: "SetCookie"; readonly location: string }
  | { readonly _tag: "Refuse"; readonly status: 401 | 403 | 404 | 405; readonly reason: string }

/** The `Host` values that name this server: the loopback address or `localhost`, with its port. */
export const allowedHosts = (port: number): ReadonlyArray<string> => [`127.0.0.1:${port}`, `localhost:${port}`]

/** Whether two tokens are equal, in constant time. */
export const sameToken = (given: string | undefined, token: string): boolean => {
  if (given === undefined) return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** The value of cookie `name` in a `Cookie` header. */
export const cookieValue = (header: string | undefined, name: string): string | undefined => {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=")
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** The `Set-Cookie` value that hands the token to the browser. */
export const tokenCookie = (port: number, token: string): string =>
  `${cookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=${pagePath(token).slice(0, -1)}`

/** Decides one request of a dashboard on `port` whose token is `token`. */
export const checkRequest = (request: RequestFacts, port: number, token: string): Verdict => {
  const hosts = allowedHosts(port)
  if (request.host === undefined || !hosts.includes(request.host.toLowerCase())) {
    return { _tag: "Refuse", status: 403, reason: "this dashboard answers only to its loopback address" }
  }
  if (request.method !== "GET" && request.method !== "HEAD" && request.method !== "POST") {
    return { _tag: "Refuse", status: 405, reason: "method not allowed" }
  }
  // nothing is served outside the secret path, whatever the request carries
  if (!request.path.startsWith(pagePath(token))) return { _tag: "Refuse", status: 404, reason: "not found" }
  const cookieOk = sameToken(cookieValue(request.cookie, cookieName(port)), token)
  if (request.method === "POST") {
    if (!cookieOk || !sameToken(request.headerToken, token)) {
      return { _tag: "Refuse", status: 401, reason: "missing or wrong token" }
    }
    if (request.origin === undefined || !hosts.map((h) => `http://${h}`).includes(request.origin.toLowerCase())) {
      return { _tag: "Refuse", status: 403, reason: "actions are accepted only from the dashboard's own page" }
    }
    return { _tag: "Allow" }
  }
  if (request.queryToken !== undefined && sameToken(request.queryToken, token)) {
    return { _tag: "SetCookie", location: request.path }
  }
  return cookieOk ? { _tag: "Allow" } : { _tag: "Refuse", status: 401, reason: "missing or wrong token" }
}

/** Headers on every answer: no caching, no framing, no referrer (the first URL holds the token), a strict CSP. */
export const securityHeaders: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}
