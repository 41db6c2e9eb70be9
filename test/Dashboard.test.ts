/**
 * `core stack ui` end to end: a fixture stack run by the built CLI (`up -d`), the dashboard served by
 * `core stack ui`, its security checked with raw HTTP requests, and the page driven in a real headless Chromium.
 * The screenshot goes to `test-results/dashboard.png` (see `artifactsDir`), which CI keeps.
 *
 * In CI (and wherever Chromium is installed) this never skips; without Chromium outside CI it skips, saying so.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import { join } from "node:path"
import type { Browser, Page } from "playwright-core"
import { inCi } from "./support/DefaultStackCopy.js"
import { artifactsDir, chromiumPath, launchChromium, type RunningUi, runCore, startUi } from "./support/Dashboard.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { fixtureBin, freshPort, tempDir } from "./support/Specs.js"
import { pagePath } from "../src/ui/UiSecurity.js"

/** A stack of three `ui-service.mjs` services, web → api → db, each ready when it says it listens. */
const makeStack = () => {
  const dir = join(tempDir("core-ui-"), "stack")
  const chain: ReadonlyArray<[string, string | undefined]> = [
    ["db", undefined],
    ["api", "db"],
    ["web", "api"]
  ]
  const ports: Record<string, number> = {}
  for (const [name, dependsOn] of chain) {
    ports[name] = freshPort()
    fs.mkdirSync(join(dir, "services", name), { recursive: true })
    const manifest = {
      process: {
        command: "node",
        args: [fixtureBin("ui-service.mjs"), name, "${port.http}"],
        compose: {
          ready_log_line: `${name} listening on`,
          shutdown: { timeout_seconds: 3 },
          ...(dependsOn ? { depends_on: { [dependsOn]: { condition: "process_log_ready" } } } : {})
        }
      },
      ports: { http: ports[name] }
    }
    fs.writeFileSync(join(dir, "services", name, "service.json"), JSON.stringify(manifest, null, 2))
  }
  return { dir, ports }
}

interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** One request to the dashboard with exactly these headers (Host included); an event stream is not read. */
const request = (
  port: number,
  o: { readonly method?: string; readonly path?: string; readonly headers?: Record<string, string> } = {}
) =>
  new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: o.method ?? "GET",
        path: o.path ?? "/",
        headers: o.headers ?? {},
        agent: false
      },
      (res) => {
        if (res.headers["content-type"]?.startsWith("text/event-stream")) {
          res.destroy()
          return resolve({ status: res.statusCode!, headers: res.headers, body: "" })
        }
        let body = ""
        res.on("data", (chunk) => (body += chunk))
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      }
    )
    req.on("error", reject)
    req.end()
  })

/** Local addresses in LISTEN state on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel writes them). */
const listeners = (port: number): ReadonlyArray<string> => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  return ["/proc/net/tcp", "/proc/net/tcp6"].flatMap((file) =>
    fs
      .readFileSync(file, "utf8")
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === "0A")
      .map((f) => f[1]!.split(":")[0]!)
  )
}

/** Whether something accepts a TCP connection on host:port (no answer within 3 s counts as no). */
const accepts = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port, timeout: 3_000 })
    const done = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.once("connect", () => done(true))
    socket.once("timeout", () => done(false))
    socket.once("error", () => done(false))
  })

const statusJson = async (dir: string) => {
  const run = await runCore(["stack", "status", "--json"], dir)
  return JSON.parse(run.output) as ReadonlyArray<{ name: string; state: string; restarts: number; pid: number | null }>
}

const haveChromium = chromiumPath() !== undefined

if (!haveChromium && !inCi()) {
  describe.skip("core stack ui: SKIPPED, no Chromium (apt-get install -y chromium, or set CHROMIUM_PATH)", () => {
    it("runs where Chromium is installed", () => {})
  })
} else {
  describe("core stack ui (end to end)", () => {
    const { dir, ports } = makeStack()
    let ui: RunningUi
    let browser: Browser | undefined

    beforeAll(async () => {
      const up = await runCore(["stack", "up", "-d"], dir)
      expect(up.code, up.output).toBe(0)
      ui = await startUi(dir)
    }, 60_000)

    afterAll(async () => {
      await browser?.close()
      const code = await ui?.stop()
      expect(code).toBe(0)
      await runCore(["stack", "down"], dir)
      expect(await eventually(() => processesMentioning(dir).length === 0, 10_000)).toBe(true)
    }, 60_000)

    it("prints a loopback URL with a token, and listens on 127.0.0.1 only", async () => {
      expect(ui.url).toBe(`http://127.0.0.1:${ui.port}${pagePath(ui.token)}?token=${ui.token}`)
      expect(ui.base).toBe(pagePath(ui.token))
      expect(ui.token.length).toBeGreaterThanOrEqual(43)
      // 0100007F is 127.0.0.1 as /proc/net/tcp writes it; no IPv6 or wildcard socket
      expect(listeners(ui.port)).toEqual(["0100007F"])
      const external = Object.values(os.networkInterfaces())
        .flat()
        .filter((a) => a !== undefined && !a.internal)
        .map((a) => a!.address)
      for (const address of external) expect(await accepts(address, ui.port), address).toBe(false)
    })

    it("no token: 401; a wrong one: 401; the token in the URL: an HttpOnly SameSite=Strict cookie and a redirect", async () => {
      for (const path of ["", "app.js", "api/events", "api/services/api/logs"]) {
        const answer = await request(ui.port, { path: ui.base + path, headers: { host: `127.0.0.1:${ui.port}` } })
        expect(answer.status, path).toBe(401)
        expect(answer.body).not.toContain(ui.token)
      }
      // outside the secret path nothing is served, whatever the request carries
      for (const path of ["/", "/app.js", "/api/events", `/?token=${ui.token}`]) {
        const cookie = `core_ui_${ui.port}=${ui.token}`
        const answer = await request(ui.port, { path, headers: { host: `127.0.0.1:${ui.port}`, cookie } })
        expect(answer.status, path).toBe(404)
      }
      expect(
        (await request(ui.port, { path: `${ui.base}?token=wrong`, headers: { host: `127.0.0.1:${ui.port}` } })).status
      ).toBe(401)
      const first = await request(ui.port, {
        path: `${ui.base}?token=${ui.token}`,
        headers: { host: `127.0.0.1:${ui.port}` }
      })
      expect(first.status).toBe(303)
      expect(first.headers.location).toBe(ui.base)
      expect(first.headers["set-cookie"]).toEqual([
        `core_ui_${ui.port}=${ui.token}; HttpOnly; SameSite=Strict; Path=${ui.base.slice(0, -1)}`
      ])
      const page = await request(ui.port, {
        path: ui.base,
        headers: { host: `127.0.0.1:${ui.port}`, cookie: `core_ui_${ui.port}=${ui.token}` }
      })
      expect(page.status).toBe(200)
      expect(page.body).toContain('<script defer src="app.js"></script>')
      expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
      expect(page.headers["referrer-policy"]).toBe("no-referrer")
      const unknown = await request(ui.port, {
        path: `${ui.base}api/services/nope/logs`,
        headers: { host: `127.0.0.1:${ui.port}`, cookie: `core_ui_${ui.port}=${ui.token}` }
      })
      expect([unknown.status, JSON.parse(unknown.body).error]).toEqual([404, expect.stringContaining('"nope"')])
    })

    it("a foreign Host is refused (DNS rebinding), even with the token; no CORS header on any answer", async () => {
      const cookie = `core_ui_${ui.port}=${ui.token}`
      for (const host of [`evil.example:${ui.port}`, `127.0.0.1.nip.io:${ui.port}`, "127.0.0.1"]) {
        const answer = await request(ui.port, { path: `${ui.base}api/events`, headers: { host, cookie } })
        expect(answer.status, host).toBe(403)
      }
      const preflight = await request(ui.port, {
        method: "OPTIONS",
        path: `${ui.base}api/services/api/restart`,
        headers: {
          host: `127.0.0.1:${ui.port}`,
          origin: "http://evil.example",
          "access-control-request-method": "POST",
          cookie
        }
      })
      expect(preflight.status).toBe(405)
      const answers = [
        preflight,
        await request(ui.port, {
          path: ui.base,
          headers: { host: `127.0.0.1:${ui.port}`, cookie, origin: "http://evil.example" }
        }),
        await request(ui.port, { path: `${ui.base}api/events`, headers: { host: `127.0.0.1:${ui.port}`, cookie } })
      ]
      for (const answer of answers) {
        expect(Object.keys(answer.headers).filter((h) => h.startsWith("access-control-"))).toEqual([])
      }
    })

    it("an action without the dashboard's Origin, or without the token header, is refused and does nothing", async () => {
      const before = (await statusJson(dir)).find((r) => r.name === "db")!
      const base = { host: `127.0.0.1:${ui.port}`, cookie: `core_ui_${ui.port}=${ui.token}` }
      const post = (headers: Record<string, string>) =>
        request(ui.port, {
          method: "POST",
          path: `${ui.base}api/services/db/restart`,
          headers: { ...base, ...headers }
        })
      expect((await post({ "x-core-token": ui.token })).status).toBe(403) // no Origin
      expect((await post({ "x-core-token": ui.token, origin: "http://evil.example" })).status).toBe(403)
      expect((await post({ "x-core-token": ui.token, origin: `http://127.0.0.1:${ui.port + 1}` })).status).toBe(403)
      expect((await post({ origin: `http://127.0.0.1:${ui.port}` })).status).toBe(401) // no token header
      expect((await request(ui.port, { path: `${ui.base}api/services/db/restart`, headers: base })).status).toBe(404) // GET
      const after = (await statusJson(dir)).find((r) => r.name === "db")!
      expect([after.restarts, after.pid]).toEqual([before.restarts, before.pid])
    })

    it("a port in use, or no port at all: one clear line", async () => {
      const taken = await runCore(["stack", "ui", "--no-open", "--port", String(ui.port)], dir)
      expect(taken.code).toBe(1)
      expect(taken.output).toContain(`the dashboard cannot listen on 127.0.0.1:${ui.port}: the port is in use`)
      const bad = await runCore(["stack", "ui", "--no-open", "--port", "70000"], dir)
      expect(bad.code).toBe(2)
      expect(bad.output).toContain("--port wants a port number (0 to 65535)")
    })

    it("the page: every service ready; restart, live logs, a stop seen in the graph, a lost supervisor and its return", async () => {
      browser = await launchChromium()
      const context = await browser.newContext({ viewport: { width: 1440, height: 960 } })
      const page: Page = await context.newPage()
      const errors: Array<string> = []
      page.on("pageerror", (e) => errors.push(e.message))
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text())
      })

      await page.goto(ui.url)
      // the token went into the cookie and out of the address bar
      expect(new URL(page.url()).search).toBe("")
      const [cookie] = await context.cookies()
      expect(cookie).toMatchObject({ name: `core_ui_${ui.port}`, httpOnly: true, sameSite: "Strict" })
      // browsers send a cookie to every port of its host: whatever listens on another port of 127.0.0.1 (a
      // service the page links to, another user's server) must not get it; it goes to the secret path only
      const cookiesSeen: Array<string | undefined> = []
      const other = http.createServer((req, res) => {
        cookiesSeen.push(req.headers.cookie)
        res.end("other")
      })
      await new Promise<void>((r) => other.listen(0, "127.0.0.1", r))
      const otherPort = (other.address() as net.AddressInfo).port
      const otherPage = await context.newPage()
      for (const path of ["/", "/api/events", "/app.js"]) await otherPage.goto(`http://127.0.0.1:${otherPort}${path}`)
      await otherPage.close()
      await new Promise((r) => other.close(r))
      // (the browser asks for /favicon.ico too)
      expect(cookiesSeen.length).toBeGreaterThanOrEqual(3)
      expect(cookiesSeen.filter((c) => c !== undefined)).toEqual([])

      const stateOf = (name: string) => page.locator(`tr[data-service="${name}"]`).getAttribute("data-state")
      const waitRow = (name: string, state: string) =>
        page.waitForSelector(`tr[data-service="${name}"][data-state="${state}"]`, { timeout: 20_000 })
      for (const name of ["db", "api", "web"]) await waitRow(name, "ready")
      await page.waitForSelector('#connection[data-kind="live"]')
      // state as text next to its colour
      expect(await page.locator('tr[data-service="db"] [data-field="state"]').textContent()).toContain("ready")

      // restart: the count changes without a reload
      await page.evaluate(() => {
        ;(globalThis as unknown as { marker: number }).marker = 42
      })
      const restarts = page.locator('tr[data-service="api"] [data-field="restarts"]')
      expect(await restarts.textContent()).toBe("0")
      await page.click('tr[data-service="api"] button[data-verb="restart"]')
      await page.waitForFunction(
        () =>
          (globalThis as any).document.querySelector('tr[data-service="api"] [data-field="restarts"]')?.textContent ===
          "1"
      )
      await waitRow("api", "ready")
      expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42)

      // a log line printed after the page loaded, with its ANSI colours rendered
      await page.click('#log-tabs button[data-service="web"]')
      await page.waitForSelector('#log-lines[data-service="web"] .line >> text=web listening on')
      const path = `/after-load-${Date.now()}`
      await new Promise<void>((resolve, reject) =>
        http.get(`http://127.0.0.1:${ports.web}${path}`, (res) => res.resume().on("end", resolve)).on("error", reject)
      )
      const line = page.locator(`#log-lines .line:has-text("web got ${path}")`)
      await line.waitFor({ timeout: 10_000 })
      const colour = (el: unknown) => (globalThis as any).getComputedStyle(el).color as string
      expect(await line.locator("span", { hasText: /^web$/ }).evaluate(colour)).not.toBe(await line.evaluate(colour))
      // the filter hides what does not match
      await page.fill("#log-filter", "after-load")
      expect(await page.locator("#log-lines .line:visible").count()).toBe(1)
      await page.fill("#log-filter", "")
      // the panel keeps the last 1000 lines, however many come
      const get = (p: string) =>
        new Promise<void>((resolve, reject) =>
          http.get(`http://127.0.0.1:${ports.web}${p}`, (res) => res.resume().on("end", resolve)).on("error", reject)
        )
      for (let batch = 0; batch < 11; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => get(`/flood-${batch * 100 + i}`)))
      }
      await page.locator('#log-lines .line:has-text("web got /flood-1099")').waitFor({ timeout: 20_000 })
      expect(await page.locator("#log-lines .line").count()).toBe(1000)

      // a service stopped from the CLI changes state in the graph, pushed by the supervisor
      const node = page.locator('#graph g.node[data-service="web"]')
      expect(await node.getAttribute("data-state")).toBe("ready")
      const stop = await runCore(["stack", "process", "stop", "web"], dir)
      expect(stop.code, stop.output).toBe(0)
      await page.waitForSelector('#graph g.node[data-service="web"][data-state="stopped"]')
      expect(await node.textContent()).toContain("stopped")
      expect(await stateOf("web")).toBe("stopped")
      // and started again from the page
      await page.click('tr[data-service="web"] button[data-verb="start"]')
      await page.waitForSelector('#graph g.node[data-service="web"][data-state="ready"]', { timeout: 20_000 })

      // resource use arrives: every service shows its memory
      await page.waitForFunction(
        () =>
          [...(globalThis as any).document.querySelectorAll('td[data-field="rss"] .value')].every((el: any) =>
            /[0-9]/.test(el.textContent)
          ),
        undefined,
        { timeout: 15_000 }
      )
      const screenshot = join(artifactsDir(), "dashboard.png")
      await page.screenshot({ path: screenshot, fullPage: true })
      expect(fs.statSync(screenshot).size).toBeGreaterThan(10_000)

      // the supervisor goes away: the page says so; it comes back: the page recovers by itself
      expect((await runCore(["stack", "down"], dir)).code).toBe(0)
      await page.waitForSelector('#connection[data-kind="down"]', { timeout: 10_000 })
      expect(await page.locator("#banner").textContent()).toContain("not running")
      const up = await runCore(["stack", "up", "-d"], dir)
      expect(up.code, up.output).toBe(0)
      await page.waitForSelector('#connection[data-kind="live"]', { timeout: 15_000 })
      for (const name of ["db", "api", "web"]) await waitRow(name, "ready")
      expect(await restarts.textContent()).toBe("0") // a new supervisor

      // stop all is `core stack down`: after a confirmation, every service and the supervisor end
      page.once("dialog", (dialog) => void dialog.accept())
      await page.click("#stop-all")
      await page.waitForSelector('#connection[data-kind="down"]', { timeout: 20_000 })
      expect(await page.locator("#stop-all").isDisabled()).toBe(true)
      const others = () => processesMentioning(dir).filter((p) => p.pid !== ui.child.pid)
      expect(await eventually(() => others().length === 0, 10_000)).toBe(true)
      expect((await runCore(["stack", "status"], dir)).output).toContain("no stack running")

      expect(errors).toEqual([])
    }, 120_000)

    it("with no supervisor, core stack ui says so and exits 1 at once", async () => {
      const empty = join(tempDir("core-ui-none-"), "stack")
      fs.mkdirSync(join(empty, "services"), { recursive: true })
      const run = await runCore(["stack", "ui", "--no-open"], empty)
      expect(run.code).toBe(1)
      expect(run.output).toContain(`no stack running in ${empty}`)
    })

    it("never logs the token: only the printed URL holds it", async () => {
      expect(ui.output().split(ui.token).length - 1).toBe(1)
      const logs = join(dir, ".core-stack")
      const files = [
        join(logs, "supervisor.log"),
        ...fs.readdirSync(join(logs, "logs")).map((f) => join(logs, "logs", f))
      ]
      for (const file of files) expect(fs.readFileSync(file, "utf8"), file).not.toContain(ui.token)
    })
  })
}
