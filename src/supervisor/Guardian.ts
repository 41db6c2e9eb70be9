/**
 * No orphans when the supervisor dies hard. The guardian is a tiny `sh` process in its own session that
 * reads the supervisor's spawned process groups on its stdin (`add PGID START LOWER` / `del PGID`). Its stdin
 * is a pipe only the supervisor holds, so it sees end-of-file the moment the supervisor is gone — exit,
 * crash or `kill -9` alike — and then SIGKILLs every group still recorded, after checking that each group is
 * still the one that was recorded (a reused pid is never signalled), and exits.
 *
 * The same identity rules, in TypeScript, are in `state/ProcessIdentity.ts` (`groupMembers`, `killGroup`).
 */
import { Data, Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { constants } from "node:os"
import { type GroupRecord, trySignal } from "../state/ProcessIdentity.js"

/** The guardian: POSIX sh, no other dependency. Same identity rules as `groupMembers`. */
export const guardianScript = `
trap '' INT HUP PIPE
stat_of() { s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null; }
fields() { r=\${1##*) }; set -- $r; state=$1; pgid=$3; st=\${20}; }
kill_group() {
  # $1 pgid, $2 leader start time or -, $3 not-before
  if stat_of "$1" && [ -n "$s" ]; then
    fields "$s"
    [ "$st" = "$2" ] && kill -KILL -"$1" 2>/dev/null
    return 0
  fi
  for f in /proc/[0-9]*; do
    p=\${f#/proc/}
    stat_of "$p" || continue
    [ -n "$s" ] || continue
    fields "$s"
    [ "$pgid" = "$1" ] && [ "$st" -ge "$3" ] && [ "$state" != Z ] && kill -KILL "$p" 2>/dev/null
  done
  return 0
}
# a group is one variable, g_PGID="START:LOWER", so that a del costs the same with 2 groups or 200; groups lists
# the pgids added, rebuilt from the live ones once it holds more than twice as many (and 64) as there are
groups= listed=0 live=0
while read -r cmd pid start lower; do
  case $cmd in
    add|del) case $pid in ''|*[!0-9]*) continue ;; esac ;;
  esac
  case $cmd in
    add)
      eval "known=\\\${g_$pid+1}"
      [ -n "$known" ] || live=$((live + 1))
      eval "g_$pid=\\$start:\\$lower"
      groups="$groups $pid"; listed=$((listed + 1)) ;;
    del)
      eval "known=\\\${g_$pid+1}"
      [ -n "$known" ] || continue
      unset "g_$pid"; live=$((live - 1))
      if [ "$listed" -gt $((2 * live + 64)) ]; then
        kept= listed=0
        for p in $groups; do
          eval "r=\\\${g_$p-}"
          case " $kept " in *" $p "*) continue ;; esac
          [ -n "$r" ] && kept="$kept $p" && listed=$((listed + 1))
        done
        groups=$kept
      fi ;;
    kill) kill -s "$pid" -- $start $lower 2>/dev/null ;;
  esac
done
for p in $groups; do
  eval "r=\\\${g_$p-}"
  [ -n "$r" ] || continue
  unset "g_$p"
  kill_group "$p" "\${r%%:*}" "\${r#*:}"
done
exit 0
`

/** The guardian could not be started. */
export class GuardianError extends Data.TaggedError("GuardianError")<{ readonly cause: unknown }> {
  override get message() {
    return `could not start the guardian: ${String(this.cause)}`
  }
}

/** A running guardian. */
export interface Guardian {
  readonly pid: number
  /**
   * Watch a group: it is killed if the supervisor dies before `forget`. The line leaves at the end of the turn,
   * or at once with `now` (see `send`).
   */
  readonly watch: (record: GroupRecord, now?: boolean) => void
  readonly forget: (pid: number) => Effect.Effect<void>
  /**
   * Has the guardian send `signal` to each of these live groups (`kill -s N -- -PGID ...`), so that the
   * caller's thread is free at once: 200 `kill()`s take ~45 ms here, as each wakes a process that then
   * exits. Synchronous; false when the line cannot be written (the guardian is gone), and nothing is sent;
   * when the write fails later (the guardian died meanwhile), the groups are signalled from here.
   */
  readonly signal: (signal: NodeJS.Signals, pgids: ReadonlyArray<number>) => boolean
}

/**
 * The lines sent in one turn of the event loop leave in one write: 200 services starting (or stopping) at once
 * are one write, not 200, each of which woke the guardian's shell, which took the CPU from the supervisor's
 * thread as it did (~50 ms of a start of 200 in a CPU profile, most of it inside the writes). An `add` of a
 * group the spawner helper started waits for the end of its turn at most: a supervisor killed in that turn
 * leaves it to the helper, which kills what it started when the supervisor is gone, and to its record in the
 * journal, which the next command reads. One that Node's spawn() started (no helper) leaves at once, with what
 * is held before it (`now`). A `del` lost with the supervisor only makes the guardian check a group that is gone.
 */
const send = (child: ChildProcess, line: string, now = false): void => {
  const stdin = child.stdin
  if (!stdin || stdin.destroyed) return
  if (now) {
    while (stdin.writableCorked > 0) stdin.uncork()
  } else if (stdin.writableCorked === 0) {
    stdin.cork()
    process.nextTick(() => stdin.uncork())
  }
  stdin.write(`${line}\n`)
}

/**
 * Starts the guardian for the current process. Closing the scope ends it gracefully (it gets end-of-file,
 * kills whatever is still recorded, and exits; this waits for that, at most 2 s).
 */
export const startGuardian: Effect.Effect<Guardian, GuardianError, Scope.Scope> = Effect.acquireRelease(
  Effect.async<ChildProcess, GuardianError>((resume) => {
    const child = spawn("/bin/sh", ["-c", guardianScript], {
      detached: true,
      stdio: ["pipe", "ignore", "ignore"]
    })
    child.once("error", (cause) => resume(Effect.fail(new GuardianError({ cause }))))
    // a guardian killed from outside must not take the supervisor down with EPIPE
    child.stdin?.on("error", () => {})
    child.once("spawn", () => {
      child.unref()
      resume(Effect.succeed(child))
    })
  }),
  (child) =>
    Effect.async<void>((resume) => {
      if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
      const timer = setTimeout(() => {
        trySignal(child.pid!, "SIGKILL")
        resume(Effect.void)
      }, 2_000)
      child.once("exit", () => {
        clearTimeout(timer)
        resume(Effect.void)
      })
      child.stdin?.end()
    })
).pipe(
  Effect.map(
    (child): Guardian => ({
      pid: child.pid!,
      watch: (r, now) => send(child, `add ${r.pid} ${r.startTime ?? "-"} ${r.notBefore}`, now),
      forget: (pid) => Effect.sync(() => send(child, `del ${pid}`)),
      signal: (signal, pgids) => {
        const stdin = child.stdin
        // by number: the shells know no SIGPOLL, SIGIOT or SIGSTKFLT by name
        const number = (constants.signals as Readonly<Record<string, number | undefined>>)[signal]
        if (number === undefined || !stdin || stdin.destroyed || !stdin.writable) return false
        while (stdin.writableCorked > 0) stdin.uncork()
        // a guardian that died this very turn fails the write only later (EPIPE): the groups are signalled here
        stdin.write(`kill ${number} ${pgids.map((pgid) => -pgid).join(" ")}\n`, (error) => {
          if (error) for (const pgid of pgids) trySignal(-pgid, signal)
        })
        return true
      }
    })
  )
)
