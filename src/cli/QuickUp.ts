/**
 * The launcher's quick wait for `core stack up -d`: once the launcher has started the background supervisor
 * (`earlyDetachedUp`), it waits for the stack to be ready here, in plain Node, polling the control API the
 * way `StackUpDetached` does (the same status rows, the same `progressOf`, the same progress lines and the same
 * last line), so that a successful `up -d` never loads the CLI bundle and leaves the CPU to the starting
 * supervisor.
 *
 * Only success ends here. As soon as anything else shows (the supervisor exited or could not be spawned, a
 * service failed), the wait is handed to the CLI: the launcher loads it, it adopts the same supervisor
 * (`adoptEarly`) with the rows and progress lines seen so far (`handedOver`), and reports the failure and
 * cleans up as it always did. An interruption (Ctrl-C, SIGTERM) before the stack is ready stops the supervisor
 * and exits 130, as the CLI does.
 */
import type { ChildProcess } from "node:child_process"
import { getJson, helloPid, isStatusRows } from "../api/PlainControl.js"
import { type Progress, pollJudge, progressForwarder, whenChanged } from "../app/DetachedProgress.js"
import { earlyStarted, releaseEarly, sizeOf } from "../app/SupervisorSpawn.js"
import type { ServiceStatus } from "../stack/ServiceStatus.js"
import { removeStarter, writeStarter } from "../state/QuickState.js"
import { stateDirOf, statePaths } from "../state/StatePaths.js"
import * as Trace from "../trace/Trace.js"
import { keepWriting } from "../logs/ResilientOutput.js"
import { detachedReadyLine, INTERRUPTED_EXIT_CODE, INTERRUPTED_LINE, SECOND_INTERRUPT_LINE } from "../app/UpLines.js"

/** How long one request of a poll may take (a supervisor slower than that is polled again). */
const ANSWER_TIMEOUT_MS = 3_000
/** How long a supervisor gets to stop after SIGTERM on an interruption before SIGKILL (as `StackUpDetached`). */
const STOP_GRACE_MS = 15_000

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Ends the supervisor: SIGTERM, SIGKILL after `STOP_GRACE_MS`; resolves once it has exited. */
const stopChild = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (exited(child) || child.pid === undefined) return resolve()
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill("SIGTERM")
  })

/**
 * Waits for the stack of the supervisor the launcher started: resolves true once every service is ready and
 * the last line is printed; false when the CLI must take over (see above). Undefined when the launcher
 * started no supervisor.
 */
export const quickDetachedUp = (): Promise<boolean> | undefined => {
  const early = earlyStarted()
  if (early === undefined) return undefined
  const { root, services, spawned } = early
  const { child, logStart, began } = spawned
  const paths = statePaths(stateDirOf(root))
  // a `down` before the supervisor holds the directory stops this process, which stops the supervisor
  if (!writeStarter(paths.starterFile, root)) return Promise.resolve(false)
  const forward = progressForwarder(paths.supervisorLog, logStart)
  let lastRows: ReadonlyArray<ServiceStatus> = []
  const judge = pollJudge(services, paths.supervisorLog, child.pid)

  /**
   * One poll: hello (is it ours?) and status; anything short of an answer is "starting". When only settling
   * was left, the rows already read are judged again first (`pollJudge`).
   */
  const poll = async (): Promise<Progress> => {
    const again = judge.again(lastRows)
    if (again !== undefined) return again
    const hello = await getJson(paths.socket, "/hello", ANSWER_TIMEOUT_MS)
    // another supervisor that won the directory is not ours: ours will exit and say so
    if (helloPid(hello) !== child.pid) return { _tag: "Starting" }
    const logSize = sizeOf(paths.supervisorLog)
    const rows = await getJson(paths.socket, "/status", ANSWER_TIMEOUT_MS)
    if (!isStatusRows(rows)) return { _tag: "Starting" }
    lastRows = rows
    Trace.count("status poll")
    return judge.judge(rows, logSize)
  }

  return new Promise<boolean>((resolve) => {
    let cancelWait = () => {}
    let signals = 0
    const end = (done: boolean) => {
      process.off("SIGINT", onSignal)
      process.off("SIGTERM", onSignal)
      cancelWait()
      resolve(done)
    }
    const onSignal = () => {
      if (++signals >= 2) {
        process.stderr.write(`${SECOND_INTERRUPT_LINE}\n`)
        process.exit(INTERRUPTED_EXIT_CODE)
      }
      cancelWait()
      void stopChild(child).then(() => {
        releaseEarly()
        removeStarter(paths.starterFile)
        process.stderr.write(`${INTERRUPTED_LINE}\n`)
        process.exit(INTERRUPTED_EXIT_CODE)
      })
    }
    process.on("SIGINT", onSignal)
    process.on("SIGTERM", onSignal)
    keepWriting(process.stdout)
    keepWriting(process.stderr)

    const handOver = () => {
      // the CLI writes and removes the starter record itself; it goes on from what was shown and seen here
      spawned.handedOver = { forward, lastRows }
      end(false)
    }
    const finish = (ready: ReadonlyArray<string>) => {
      releaseEarly()
      removeStarter(paths.starterFile)
      Trace.summary()
      Trace.mark("every service ready, seen by up -d")
      Trace.echoFrom(paths.supervisorLog, logStart)
      const readyMs = Math.round(Date.now() - began)
      process.stdout.write(
        `${detachedReadyLine({ ready, readyMs, pid: child.pid ?? 0, output: paths.supervisorLog })}\n`
      )
      end(true)
    }
    const step = () => {
      if (signals > 0) return
      const news = forward()
      if (news.length > 0) process.stderr.write(`${news.join("\n")}\n`)
      if (exited(child) || spawned.spawnError) return handOver()
      const seen = sizeOf(paths.supervisorLog)
      void poll().then((progress) => {
        if (signals > 0) return
        if (progress._tag === "Starting") cancelWait = whenChanged(paths.supervisorLog, seen, step, judge.gap(progress))
        else if (progress._tag === "Ready") finish(progress.services)
        else handOver()
      })
    }
    step()
  })
}
