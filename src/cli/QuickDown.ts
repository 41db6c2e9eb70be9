/**
 * The launcher's quick path for `core stack down`: the same request and the same line as the full CLI, in
 * plain Node, without loading the CLI bundle (~60-110 ms of a `down`, before the supervisor hears of it).
 *
 * Only the plain case is served: `stack down` with nothing but `--dir`, a live supervisor recorded in the
 * stack directory that says hello with its pid, answers `POST /down` (or closes the connection as it ends),
 * and exits within the full client's limit. Before the request anything else resolves `false` and the
 * launcher loads the CLI, which does what it always did (a supervisor that is starting, a stale socket, an
 * `up -d` still starting the stack, no stack). After it, nothing has been printed yet either, and the full
 * CLI finds a supervisor that is ending (or gone) and says what happened.
 */
import { helloPid, requestJson } from "../api/PlainControl.js"
import { liveRecorded } from "../state/QuickState.js"
import { isRunning } from "../state/ProcessIdentity.js"
import { stateDirOf, statePaths } from "../state/StatePaths.js"
import * as Trace from "../trace/Trace.js"
import { keepWriting } from "../logs/ResilientOutput.js"
import { quickOptions } from "./QuickVerbs.js"

/** How long the supervisor may take to answer hello before the full CLI is left to deal with it. */
const HELLO_TIMEOUT_MS = 3_000
/** How long the supervisor may take to exit after it answered (the full client's limit). */
const EXIT_TIMEOUT_MS = 15_000
/** How often the supervisor's exit is checked (`/proc`), as the full client does (see `ControlClient`'s `waitExit`). */
const EXIT_POLL_MS = 2

/** The stack directory of `stack down [--dir PATH]`; undefined for any other command line. */
export const parseQuickDown = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string
): string | undefined =>
  argv[0] === "stack" && argv[1] === "down" ? quickOptions(argv.slice(2), [], env, cwd)?.root : undefined

/** Resolves true once `process` has exited, false when it is still there after `limitMs`. */
const exited = (process: Parameters<typeof isRunning>[0], limitMs: number): Promise<boolean> =>
  new Promise((resolve) => {
    const until = Date.now() + limitMs
    const check = () => {
      if (!isRunning(process)) return resolve(true)
      if (Date.now() > until) return resolve(false)
      setTimeout(check, EXIT_POLL_MS)
    }
    check()
  })

/**
 * Stops the stack of `argv`'s `stack down` when it can: resolves true once the supervisor has exited and the
 * line is written, false when the full CLI must run the command (nothing printed then); undefined when the
 * command is not a plain `stack down`.
 */
export const quickDown = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string
): Promise<boolean> | undefined => {
  const root = parseQuickDown(argv, env, cwd)
  if (root === undefined) return undefined
  const began = Date.now()
  const paths = statePaths(stateDirOf(root))
  const supervisor = liveRecorded(paths.pidFile)
  if (supervisor === undefined) return Promise.resolve(false)
  const seen = Trace.tracing() ? Trace.fileSize(paths.supervisorLog) : 0
  return requestJson(paths.socket, "GET", "/hello", HELLO_TIMEOUT_MS).then(async (hello) => {
    if (helloPid(hello) !== supervisor.pid) return false
    Trace.mark("connected, down requested")
    const answer = await requestJson(paths.socket, "POST", "/down", undefined)
    // another supervisor's answer: leave it to the CLI. Any other (a supervisor whose start failed as the stop
    // reached it ends before its answer: HTTP 503) counts once the supervisor that said hello has exited
    const answered = helloPid(answer)
    if (answered !== undefined && answered !== supervisor.pid) return false
    if (!(await exited(supervisor, EXIT_TIMEOUT_MS))) return false
    Trace.mark("supervisor exit seen, without the CLI bundle")
    Trace.echoFrom(paths.supervisorLog, seen)
    keepWriting(process.stdout)
    process.stdout.write(`stack in ${root} stopped (supervisor pid ${supervisor.pid}) in ${Date.now() - began} ms\n`)
    return true
  })
}
