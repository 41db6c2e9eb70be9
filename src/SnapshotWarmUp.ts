/**
 * What the supervisor snapshot's build runs before the snapshot is taken (`SupervisorSnapshot`): a small stack
 * of its own, up and down, in a temporary folder removed after. Its manifests are loaded, its port checked,
 * its process-compose file written, its two services started through the guardian and the spawner, probed
 * (HTTP, exec), and stopped. The snapshot keeps the bytecode of every function that run compiled, so the
 * supervisor does not compile them lazily on their first call (a probe: 300 small functions took 8.3-9.6 ms on their first call from a snapshot
 * whose build had not run them, 1.0-1.2 ms from one whose build had). Measured against a build that ran only the
 * manifests' loading and the compose file (alternated `up -d`s, `CORE_TRACE=1`): the 3-level chain's first spawn
 * came 15-24 ms sooner after the supervisor's first line; 200 services that only run were ready 21-68 ms sooner.
 *
 * The run must leave nothing in the process, for the snapshot holds whatever it left:
 * - **No process listener and no handle** but the build's own output. The check fails the build, which then
 *   leaves no blob.
 * - **No timer state of its own.** Node deletes the list of an unref'd timer that is cleared only when the
 *   list's time comes, "because unrefed ones are incredibly likely to come from http". The registry's hold timer
 *   (`PidRegistry`, cleared when a whole stop ends) was unref'd and left such a list. Node then believed its
 *   native timer set for that list's time. In a supervisor started from the snapshot, no timer due later was
 *   ever set, so none kept the event loop alive. The supervisor ended when its loop ran dry in the middle of its
 *   stop, and left its pid file (4-7 of 8 `down`s of 200 services).
 * - **The fix.** That timer is ref'd now, and the supervisor's code sets no unref'd timer. A test reads Node's
 *   timer lists after this function under `--expose-internals`, and would catch a new one.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as net from "node:net"
import { Effect } from "effect"
import { loadSelection, runStack } from "./app/StackUp.js"
import { writeComposeFile } from "./deploy/ComposeFile.js"
import { SupervisorLive } from "./SupervisorMain.js"

/**
 * A stack that uses what a supervisor's start and stop use: a port and its placeholder, a command by path and
 * one found on PATH, an HTTP readiness probe (answered by `answerHttp`), an exec liveness probe, a dependency, a
 * ready line, a shutdown. Its processes run until stopped, so that stopping them is warmed up too.
 */
const warmUpServices = (port: number, httpPort: number): Record<string, unknown> => ({
  first: {
    process: {
      command: "/bin/sh",
      // its data folder (in the run's temporary folder) in its command line: a test looks for what is left
      args: ["-c", "sleep 60; :", "${data}", "${port.http}"],
      env: { GREETING: "${env.HOME:-/}", DATA: "${data}", PORT: "${port.http}" },
      compose: {
        readiness_probe: { http_get: { host: "127.0.0.1", port: httpPort, path: "/" }, period_seconds: 1 },
        liveness_probe: { exec: { command: "true" }, period_seconds: 10 },
        shutdown: { signal: 15, timeout_seconds: 5 },
        availability: { restart: "on_failure", backoff_seconds: 1 }
      }
    },
    ports: { http: port }
  },
  second: {
    process: {
      command: "sh",
      args: ["-c", "echo ready; sleep 60; :", "${data}"],
      compose: { depends_on: { first: { condition: "process_healthy" } }, ready_log_line: "ready" }
    }
  }
})

/** A server on a free port of 127.0.0.1 that answers any request with 200: what the warm-up's probe asks. */
const answerHttp = (): Promise<net.Server> =>
  new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.on("error", () => {})
      socket.once("data", () => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"))
    })
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve(server))
  })

const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port

/** A port free on 127.0.0.1 a moment ago (the run's ports check binds it again, and fails the build if taken). */
const freePort = async (): Promise<number> => {
  const server = await answerHttp()
  const port = portOf(server)
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** How many 10 ms turns the run's last handles get to close before the check fails the build. */
const HANDLES_GONE_TURNS = 100

/** The process's listeners of the events a supervisor listens to. */
const processListeners = (): number =>
  ["SIGINT", "SIGTERM", "exit", "beforeExit"].reduce((sum, event) => sum + process.listenerCount(event), 0)

/**
 * What keeps this process's event loop alive, but for its standard input and output: handles (a socket or pipe
 * of the run's would be one), and timers and requests (which Node lists by kind only).
 */
const handlesLeft = (): ReadonlyArray<string> => [
  ...(process as unknown as { _getActiveHandles: () => ReadonlyArray<unknown> })
    ._getActiveHandles()
    .filter((handle) => !(handle instanceof net.Socket && [0, 1, 2].includes((handle as { fd?: number }).fd ?? -1)))
    .map((handle) => (handle as object).constructor.name),
  ...process.getActiveResourcesInfo().filter((kind) => kind !== "PipeWrap" && kind !== "TTYWrap")
]

/**
 * Runs `warmUpServices` once in a temporary folder, as described above. Fails when the run fails, or leaves
 * a process listener or a handle.
 */
export const warmUp = async (): Promise<void> => {
  const listeners = processListeners()
  const answering = await answerHttp()
  let dir: string | undefined
  try {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "core-snapshot-"))
    dir = root
    const services = warmUpServices(await freePort(), portOf(answering))
    for (const [name, manifest] of Object.entries(services)) {
      fs.mkdirSync(path.join(root, "services", name), { recursive: true })
      fs.writeFileSync(path.join(root, "services", name, "service.json"), JSON.stringify(manifest))
    }
    await Effect.runPromise(
      // (writeComposeFile makes the state folder, 0700 whatever the umask: one made here would fail its check)
      loadSelection(root, []).pipe(
        Effect.flatMap(({ stack }) => writeComposeFile(stack)),
        Effect.zipRight(Effect.scoped(runStack({ dir: root, services: [], serve: false }))),
        Effect.provide(SupervisorLive)
      )
    )
  } finally {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
    await new Promise((resolve) => answering.close(resolve))
  }
  // what the run closed at its end (the ports check's servers) goes within a few turns of the event loop
  for (let turn = 0; turn < HANDLES_GONE_TURNS && handlesLeft().length > 0; turn++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const left = handlesLeft()
  if (processListeners() !== listeners || left.length > 0) {
    throw new Error(
      `the warm-up left ${processListeners() - listeners} listener(s) and ${left.length} handle(s) or timer(s) (${left.join(", ")})`
    )
  }
}
