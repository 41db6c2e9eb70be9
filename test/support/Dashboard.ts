/**
 * Helpers of the dashboard's tests: the headless Chromium (Debian's `chromium`, driven by playwright-core, which
 * downloads no browser), the folder CI keeps, and `core stack ui` run as a child process.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { type Browser, chromium } from "playwright-core"

const repo = resolve(import.meta.dirname, "../..")

/** The built CLI (`npm test` builds it first). */
export const cli = join(repo, "dist", "core.cjs")

/**
 * Where tests leave files for people to look at (screenshots): `test-results/` in the repository, or
 * `CORE_TEST_ARTIFACTS`. CI keeps this folder.
 */
export const artifactsDir = (): string => {
  const dir = process.env.CORE_TEST_ARTIFACTS ?? join(repo, "test-results")
  mkdirSync(dir, { recursive: true })
  return dir
}

/** The Chromium binary: `CHROMIUM_PATH`, else Debian's. Undefined when there is none. */
export const chromiumPath = (): string | undefined =>
  [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
    (p): p is string => p !== undefined && p !== "" && existsSync(p)
  )

/** A headless Chromium; `--no-sandbox` because CI runs as root. */
export const launchChromium = (): Promise<Browser> => {
  const executablePath = chromiumPath()
  if (executablePath === undefined) {
    throw new Error("no Chromium found (install it: apt-get install -y chromium, or set CHROMIUM_PATH)")
  }
  return chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] })
}

/** `core ARGS --dir DIR` run to its end. */
export const runCore = (args: ReadonlyArray<string>, dir: string, env: Readonly<Record<string, string>> = {}) =>
  new Promise<{ code: number | null; output: string }>((done) => {
    const child = spawn(process.execPath, [cli, ...args, "--dir", dir], {
      env: { ...process.env, ...env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (b) => (output += b))
    child.stderr.on("data", (b) => (output += b))
    child.once("close", (code) => done({ code, output }))
  })

/** A running `core stack ui`. */
export interface RunningUi {
  readonly child: ChildProcess
  readonly url: string
  readonly port: number
  readonly token: string
  /** The secret path everything of it is served under (`/…/`). */
  readonly base: string
  /** Everything it printed so far. */
  readonly output: () => string
  /** Ends it with SIGINT (as Ctrl-C) and waits for its exit code. */
  readonly stop: () => Promise<number | null>
}

/** Starts `core stack ui --no-open --port 0` for `dir` and waits for its URL. */
export const startUi = (dir: string): Promise<RunningUi> =>
  new Promise((resolveUi, reject) => {
    const child = spawn(process.execPath, [cli, "stack", "ui", "--no-open", "--port", "0", "--dir", dir], {
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    const onData = (b: Buffer) => {
      output += b
      const match = /http:\/\/127\.0\.0\.1:(\d+)(\/[A-Za-z0-9_-]+\/)\?token=([A-Za-z0-9_-]+)/.exec(output)
      if (match) {
        resolveUi({
          child,
          url: match[0],
          port: Number(match[1]),
          base: match[2]!,
          token: match[3]!,
          output: () => output,
          stop: () => {
            child.kill("SIGINT")
            return exited
          }
        })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    void exited.then((code) => reject(new Error(`core stack ui exited (${code}) before printing its URL:\n${output}`)))
  })
