/**
 * `core stack up` in the foreground, without the CLI's parser: what the `up` command runs without `-d`, and
 * what the background supervisor runs (`SupervisorMain`, whose startup snapshot holds no parser).
 */
import { Effect } from "effect"
import { type StackRun, type StackRunOptions, upForeground } from "../app/StackUp.js"
import { exitCodeOnSuccess } from "./InterruptExit.js"
import { dim, lineBatcher, linePrefixer, useColour } from "./Output.js"

/**
 * The foreground printer: every line of every service, and the supervisor's own notes, dimmed. It stays
 * subscribed to the end, so that the shutdown's notes are printed too.
 */
const printLines = (run: StackRun) =>
  Effect.sync(() => {
    const colour = useColour()
    const prefix = linePrefixer(
      run.supervisor.stack.services.map((s) => s.name),
      colour
    )
    // one write per turn of the event loop, not per line: a service flooding its output would otherwise cost a
    // synchronous write per line to supervisor.log (about 0.85 ms of CPU per thousand lines)
    const out = lineBatcher((text) => process.stdout.write(text))
    process.once("exit", out.flush)
    run.supervisor.onLine((service, line) => {
      const text = line.supervisor ? dim(`[core] ${line.text}`, colour) : line.text
      out.push(`${prefix(service)}${text}\n`)
    })
  })

/**
 * `3 service(s) ready in 170184 ms (provisioning 169772 ms, start 412 ms)`: a first run's builds and downloads
 * apart from the start itself.
 */
export const readySummary = (run: Pick<StackRun, "started" | "readyMs" | "provisionMs">): string =>
  `${run.started.length} service(s) ready in ${run.readyMs} ms (provisioning ${run.provisionMs} ms, start ${run.readyMs - run.provisionMs} ms)`

/** Runs services in the foreground until Ctrl-C, SIGTERM, or a service that ends the stack. */
export const foreground = (options: Omit<StackRunOptions, "onProgress" | "beforeStart">) =>
  upForeground(
    { ...options, onProgress: (message) => process.stderr.write(`${message}\n`), beforeStart: printLines },
    (run) => Effect.sync(() => process.stderr.write(`core: ${readySummary(run)}; Ctrl-C to stop\n`))
  ).pipe(
    // ended by a service: its exit code is the command's (a supervisor that restarts the command on failure,
    // as `fly.toml`'s on-failure policy does, must see one that failed)
    Effect.flatMap((end) =>
      Effect.zipRight(
        Effect.sync(() => process.stderr.write(`core: stopping the stack: ${end.reason}\n`)),
        exitCodeOnSuccess(end.exitCode)
      )
    )
  )
