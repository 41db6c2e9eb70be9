/**
 * The launcher's quick path for the read-only verbs `core stack status` and `core stack process list` (each
 * with `--json` or not): the same request, the same checks of the answer and the same printing as the full CLI,
 * in plain Node, without loading the CLI bundle (about two thirds of such a command's time).
 *
 * Only the plain case is served here: a command line it recognises for sure (the verb, `--dir PATH` or
 * `--dir=PATH`, `--json`), a live supervisor recorded in the stack directory, and an answer with exactly the
 * shape of the control API's Schemas. Everything else (help, another option, no stack, a stale socket, a
 * supervisor that is starting or does not answer) resolves `false` before anything is printed, and the
 * launcher loads the CLI, which does what it always did and says what is wrong.
 */
import * as path from "node:path"
import { getJson, isIdentity, isStatusRows } from "../api/PlainControl.js"
import { liveRecorded } from "../state/QuickState.js"
import { stateDirOf, statePaths } from "../state/StatePaths.js"
import * as Trace from "../trace/Trace.js"
import { keepWriting } from "../logs/ResilientOutput.js"
import { formatEncodedJson, formatProcessTable, formatStatusTable } from "./StatusTable.js"

/** A read-only verb the quick path serves. */
export interface QuickVerb {
  readonly verb: "status" | "process list"
  /** The absolute stack directory. */
  readonly root: string
  readonly json: boolean
}

/** How long the supervisor may take to answer before the full CLI is left to deal with it. */
const ANSWER_TIMEOUT_MS = 3_000

/**
 * `stack status` or `stack process list` with nothing but `--dir PATH` (or `--dir=PATH`, once) and `--json`
 * (once), in any order after the verb; undefined for anything else, and when `CORE_DIR` is set but empty.
 */
export const parseQuickVerb = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string
): QuickVerb | undefined => {
  if (argv[0] !== "stack") return undefined
  const verb =
    argv[1] === "status" ? "status" : argv[1] === "process" && argv[2] === "list" ? "process list" : undefined
  if (verb === undefined) return undefined
  const options = quickOptions(argv.slice(verb === "status" ? 2 : 3), ["--json"], env, cwd)
  return options && { verb, root: options.root, json: options.flags.has("--json") }
}

/**
 * The options after a verb when they are only `--dir PATH` (or `--dir=PATH`) and `flags`, each at most once:
 * the absolute stack directory (`--dir`, else `CORE_DIR`, else `cwd`) and the flags given; undefined for
 * anything else, and when `CORE_DIR` is set but empty.
 */
export const quickOptions = (
  args: ReadonlyArray<string>,
  flags: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string
): { readonly root: string; readonly flags: ReadonlySet<string> } | undefined => {
  let dir: string | undefined
  const given = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (flags.includes(arg) && !given.has(arg)) given.add(arg)
    else if (arg === "--dir" && dir === undefined) {
      dir = args[++i]
      if (dir === undefined || dir.startsWith("-")) return undefined
    } else if (arg.startsWith("--dir=") && dir === undefined) dir = arg.slice("--dir=".length)
    else return undefined
  }
  const fallback = env.CORE_DIR
  if (dir === "" || (dir === undefined && fallback === "")) return undefined
  return { root: path.resolve(cwd, dir ?? fallback ?? "."), flags: given }
}

/**
 * The text the verb prints for `rows` (already checked to be encoded `ServiceStatus`es); `dropped`: the
 * supervisor's own output it could not write, from its hello.
 */
export const quickText = (quick: QuickVerb, rows: Parameters<typeof formatProcessTable>[0], dropped = 0): string =>
  quick.json
    ? formatEncodedJson(rows)
    : quick.verb === "status"
      ? formatStatusTable(rows, Date.now(), dropped)
      : formatProcessTable(rows)

/**
 * Serves the verb of `argv` when it can: resolves true once its output is written, false when the full CLI
 * must run it (nothing printed then); undefined when the command is not one of these verbs at all.
 */
export const quickVerb = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string
): Promise<boolean> | undefined => {
  const quick = parseQuickVerb(argv, env, cwd)
  if (quick === undefined) return undefined
  const paths = statePaths(stateDirOf(quick.root))
  // with no live supervisor recorded the full CLI cleans up what a dead one left and says so
  if (liveRecorded(paths.pidFile) === undefined) return Promise.resolve(false)
  // the full client says hello first (its answer also counts the supervisor's dropped output); here both at once
  return Promise.all([
    getJson(paths.socket, "/hello", ANSWER_TIMEOUT_MS),
    getJson(paths.socket, "/status", ANSWER_TIMEOUT_MS)
  ]).then(([hello, rows]) => {
    if (!isIdentity(hello) || !isStatusRows(rows)) return false
    Trace.mark(`${quick.verb} answered, without the CLI bundle`)
    keepWriting(process.stdout)
    process.stdout.write(`${quickText(quick, rows, hello.droppedOutputBytes ?? 0)}\n`)
    return true
  })
}
