import { describe, expect, it } from "@effect/vitest"
import {
  checkRequest,
  cookieName,
  cookieValue,
  mintToken,
  pagePath,
  type RequestFacts,
  sameToken,
  tokenCookie
} from "../src/ui/UiSecurity.js"

const PORT = 4321
const TOKEN = "t0ken-of-the-dashboard"
const BASE = pagePath(TOKEN)
const good: RequestFacts = {
  method: "GET",
  path: `${BASE}api/events`,
  host: `127.0.0.1:${PORT}`,
  origin: undefined,
  cookie: `other=1; ${cookieName(PORT)}=${TOKEN}`,
  queryToken: undefined,
  headerToken: undefined
}
const action: RequestFacts = {
  ...good,
  method: "POST",
  path: `${BASE}api/services/a/restart`,
  origin: `http://127.0.0.1:${PORT}`,
  headerToken: TOKEN
}
const check = (o: Partial<RequestFacts>) => checkRequest({ ...good, ...o }, PORT, TOKEN)

describe("checkRequest", () => {
  it("the cookie lets a GET through, from 127.0.0.1 or localhost", () => {
    expect(check({})).toEqual({ _tag: "Allow" })
    expect(check({ host: `localhost:${PORT}` })).toEqual({ _tag: "Allow" })
  })

  it("no token, a wrong one, or another port's cookie: 401", () => {
    expect(check({ cookie: undefined })).toMatchObject({ _tag: "Refuse", status: 401 })
    expect(check({ cookie: `${cookieName(PORT)}=nope` })).toMatchObject({ status: 401 })
    expect(check({ cookie: `${cookieName(PORT + 1)}=${TOKEN}` })).toMatchObject({ status: 401 })
    expect(check({ cookie: undefined, queryToken: "nope" })).toMatchObject({ status: 401 })
  })

  it("the token in the URL sets the cookie and redirects to the path without it", () => {
    expect(check({ cookie: undefined, path: BASE, queryToken: TOKEN })).toEqual({ _tag: "SetCookie", location: BASE })
  })

  it("nothing outside the secret path: 404, with the cookie, the token or both", () => {
    for (const path of ["/", "/api/events", "/app.js", BASE.slice(0, -1), `${pagePath("another")}api/events`]) {
      expect(check({ path }), path).toMatchObject({ _tag: "Refuse", status: 404 })
      expect(check({ path, queryToken: TOKEN }), path).toMatchObject({ _tag: "Refuse", status: 404 })
      expect(checkRequest({ ...action, path }, PORT, TOKEN), path).toMatchObject({ _tag: "Refuse", status: 404 })
    }
  })

  it("a foreign Host (DNS rebinding), another port or none: 403, even with the token", () => {
    for (const host of ["evil.example:4321", `127.0.0.1:${PORT + 1}`, "127.0.0.1", undefined, `[::1]:${PORT}`]) {
      expect(check({ host }), String(host)).toMatchObject({ _tag: "Refuse", status: 403 })
    }
  })

  it("an action needs POST, the cookie, the token header and the dashboard's Origin", () => {
    expect(checkRequest(action, PORT, TOKEN)).toEqual({ _tag: "Allow" })
    expect(checkRequest({ ...action, origin: `http://localhost:${PORT}` }, PORT, TOKEN)).toEqual({ _tag: "Allow" })
    expect(checkRequest({ ...action, origin: undefined }, PORT, TOKEN)).toMatchObject({ status: 403 })
    expect(checkRequest({ ...action, origin: "http://evil.example" }, PORT, TOKEN)).toMatchObject({ status: 403 })
    expect(checkRequest({ ...action, origin: "null" }, PORT, TOKEN)).toMatchObject({ status: 403 })
    expect(checkRequest({ ...action, headerToken: undefined }, PORT, TOKEN)).toMatchObject({ status: 401 })
    expect(checkRequest({ ...action, cookie: undefined }, PORT, TOKEN)).toMatchObject({ status: 401 })
    // a token in the URL does not authorise an action
    expect(
      checkRequest({ ...action, cookie: undefined, headerToken: undefined, queryToken: TOKEN }, PORT, TOKEN)
    ).toMatchObject({
      status: 401
    })
  })

  it("other methods: 405 (no CORS preflight is answered)", () => {
    for (const method of ["OPTIONS", "PUT", "DELETE", "PATCH"]) expect(check({ method })).toMatchObject({ status: 405 })
  })
})

describe("tokens and cookies", () => {
  it("mintToken: 32 random bytes, URL-safe", () => {
    const a = mintToken()
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(mintToken()).not.toBe(a)
  })

  it("sameToken, cookieValue, tokenCookie", () => {
    expect(sameToken(TOKEN, TOKEN)).toBe(true)
    expect(sameToken(`${TOKEN}x`, TOKEN)).toBe(false)
    expect(sameToken(undefined, TOKEN)).toBe(false)
    expect(cookieValue("a=1; b = 2 ;c=3=4", "b")).toBe("2")
    expect(cookieValue("a=1; c=3=4", "c")).toBe("3=4")
    expect(cookieValue(undefined, "a")).toBeUndefined()
    // the cookie goes to the secret path only, not to every port's every path of 127.0.0.1
    expect(tokenCookie(PORT, TOKEN)).toBe(`core_ui_4321=${TOKEN}; HttpOnly; SameSite=Strict; Path=${BASE.slice(0, -1)}`)
    expect(BASE).toMatch(/^\/[A-Za-z0-9_-]{22}\/$/)
    expect(pagePath(TOKEN)).toBe(BASE)
    expect(pagePath(`${TOKEN}x`)).not.toBe(BASE)
  })
})
