/**
 * The README's picture: the dashboard on the default stack (NATS, PocketBase, Caddy; a temp copy on fresh ports
 * with this repository's binaries), taken by headless Chromium once every service is ready and a few resource
 * samples have come in. It is saved to `test-results/dashboard-default-stack.png` (CI keeps that folder); with
 * `UPDATE_SCREENSHOTS=1` it also replaces `docs/dashboard.png`.
 *
 * In CI this never skips; locally it skips, saying so, without the binaries in `.dep/` or without Chromium.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { join } from "node:path"
import type { Browser } from "playwright-core"
import { artifactsDir, chromiumPath, launchChromium, type RunningUi, runCore, startUi } from "./support/Dashboard.js"
import { defaultStackCopy, inCi, missingBinaries, repoRoot } from "./support/DefaultStackCopy.js"
import { eventually, processesMentioning } from "./support/Processes.js"

const missing = [...missingBinaries(), ...(chromiumPath() === undefined ? ["chromium"] : [])]

if (missing.length > 0 && !inCi()) {
  describe.skip(`dashboard on the default stack: SKIPPED, missing ${missing.join(", ")}`, () => {
    it("runs when the binaries and Chromium are there", () => {})
  })
} else {
  describe("dashboard on the default stack", () => {
    const copy = defaultStackCopy()
    let ui: RunningUi | undefined
    let browser: Browser | undefined

    afterAll(async () => {
      await browser?.close()
      await ui?.stop()
      await runCore(["stack", "down"], copy.dir, copy.env)
      expect(await eventually(() => processesMentioning(copy.dir).length === 0, 10_000)).toBe(true)
    }, 60_000)

    it("shows every service ready with its resource use; the screenshot is saved", async () => {
      const up = await runCore(["stack", "up", "-d"], copy.dir, copy.env)
      expect(up.code, up.output).toBe(0)
      ui = await startUi(copy.dir)
      browser = await launchChromium()
      const page = await browser.newPage({ viewport: { width: 1440, height: 800 }, deviceScaleFactor: 1 })
      await page.goto(ui.url)
      for (const name of ["nats", "pocketbase", "caddy"]) {
        await page.waitForSelector(`tr[data-service="${name}"][data-state="ready"]`, { timeout: 30_000 })
      }
      await page.click('#log-tabs button[data-service="nats"]')
      await page.waitForSelector('#log-lines[data-service="nats"] .line')
      // a few samples: every CPU sparkline has at least four points
      await page.waitForFunction(
        () =>
          [...(globalThis as any).document.querySelectorAll('td[data-field="cpu"] path.spark-line')].every(
            (p: any) => (p.getAttribute("d") ?? "").split("L").length >= 4
          ),
        undefined,
        { timeout: 30_000 }
      )
      const file = join(artifactsDir(), "dashboard-default-stack.png")
      await page.screenshot({ path: file })
      expect(fs.statSync(file).size).toBeGreaterThan(10_000)
      if (process.env.UPDATE_SCREENSHOTS === "1") fs.copyFileSync(file, join(repoRoot, "docs", "dashboard.png"))
    }, 120_000)
  })
}
