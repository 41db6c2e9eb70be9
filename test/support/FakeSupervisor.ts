/**
 * An in-memory `LocalSupervisorShape` for the control API tests: no processes, the documented semantics
 * (stop takes dependents first, restart only the service, start refuses unmet dependencies), log lines on
 * every start.
 */
import { Deferred, Effect, PubSub, Ref, Stream } from "effect"
import type { LogLine } from "../../src/logs/ServiceLog.js"
import type { StackSpec } from "../../src/manifest/ServiceSpec.js"
import type { ServiceStatus } from "../../src/stack/ServiceStatus.js"
import {
  type LocalSupervisorShape,
  type StackEnd,
  StartFailed,
  UnknownService
} from "../../src/supervisor/Supervisor.js"

/** A status row: a pending service with nothing known about it, and `o` on top. */
export const statusRow = (o: Partial<ServiceStatus> = {}): ServiceStatus => ({
  name: "a",
  state: "pending",
  health: "none",
  pid: null,
  restarts: 0,
  startedAt: null,
  exitCode: null,
  reason: null,
  ports: {},
  ...o
})

export const makeFakeSupervisor = (stack: StackSpec) =>
  Effect.gen(function* () {
    const names = stack.services.map((s) => s.name as string)
    const initial = (name: string): ServiceStatus => statusRow({ name })
    const rows = yield* Ref.make(new Map(names.map((n) => [n, initial(n)])))
    const lines = yield* Ref.make<Array<{ service: string; line: LogLine }>>([])
    const hub = yield* PubSub.unbounded<{ service: string; line: LogLine }>()
    const transitions = yield* PubSub.unbounded<ServiceStatus>()
    const exit = yield* Deferred.make<StackEnd>()
    let seq = 0
    let pid = 100_000
    const lock = yield* Effect.makeSemaphore(1)

    const check = (name: string) =>
      names.includes(name) ? Effect.void : Effect.fail(new UnknownService({ name, known: names }))
    const set = (name: string, f: (s: ServiceStatus) => Partial<ServiceStatus>) =>
      Ref.modify(rows, (m) => {
        const next = { ...m.get(name)!, ...f(m.get(name)!) }
        return [next, new Map(m).set(name, next)] as const
      }).pipe(Effect.tap((s) => PubSub.publish(transitions, s)))
    const listeners = new Set<(service: string, line: LogLine) => void>()
    const emit = (service: string, text: string) =>
      Effect.gen(function* () {
        const entry = { service, line: { seq: ++seq, time: Date.now(), stream: "stdout" as const, text } }
        yield* Ref.update(lines, (ls) => [...ls, entry])
        yield* PubSub.publish(hub, entry)
        for (const listener of listeners) listener(service, entry.line)
      })
    const launch = (name: string, restart: boolean) =>
      Effect.gen(function* () {
        yield* set(name, (s) => ({
          state: "running",
          pid: ++pid,
          startedAt: Date.now(),
          restarts: s.restarts + (restart ? 1 : 0)
        }))
        yield* emit(name, `${name} started`)
      })
    const depsOf = (name: string) => stack.services.find((s) => s.name === name)!.dependsOn.map((d) => d.name as string)
    const dependents = (name: string): Array<string> =>
      names.filter((n) => depsOf(n).includes(name)).flatMap((n) => [...dependents(n), n])
    const tail = (name: string, n: number) =>
      Effect.map(Ref.get(lines), (ls) => {
        const own = ls.filter((l) => l.service === name).map((l) => l.line)
        return n <= 0 ? [] : own.slice(-n)
      })

    const supervisor: LocalSupervisorShape = {
      stack,
      status: Effect.map(Ref.get(rows), (m) => names.map((n) => m.get(n)!)),
      statusOf: (name) =>
        Effect.zipRight(
          check(name),
          Effect.map(Ref.get(rows), (m) => m.get(name)!)
        ),
      transitions: Stream.fromPubSub(transitions),
      up: (selected = []) =>
        lock.withPermits(1)(
          Effect.forEach(selected.length > 0 ? selected : names, (n) =>
            Effect.zipRight(
              check(n),
              Effect.flatMap(Ref.get(rows), (m) => (m.get(n)!.state === "running" ? Effect.void : launch(n, false)))
            )
          )
        ),
      start: (name) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            yield* check(name)
            const m = yield* Ref.get(rows)
            for (const d of depsOf(name)) {
              if (m.get(d)!.state !== "running") {
                return yield* new StartFailed({
                  service: name,
                  reason: `dependency ${d} is ${m.get(d)!.state}`,
                  lastLines: []
                })
              }
            }
            if (m.get(name)!.state !== "running") yield* launch(name, false)
          })
        ),
      stop: (name) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            yield* check(name)
            for (const n of [...dependents(name), name]) yield* set(n, () => ({ state: "stopped", pid: null }))
          })
        ),
      restart: (name) => lock.withPermits(1)(Effect.zipRight(check(name), launch(name, true))),
      logs: (name, n) => Effect.zipRight(check(name), tail(name, n)),
      follow: (name, n) =>
        Stream.unwrapScoped(
          Effect.gen(function* () {
            yield* check(name)
            const sub = yield* PubSub.subscribe(hub)
            const past = yield* tail(name, n)
            return Stream.concat(
              Stream.fromIterable(past),
              Stream.fromQueue(sub).pipe(
                Stream.filter((e) => e.service === name),
                Stream.map((e) => e.line)
              )
            )
          })
        ),
      shutdown: Effect.forEach(names.slice().reverse(), (n) => set(n, () => ({ state: "stopped", pid: null })), {
        discard: true
      }),
      exitRequested: Deferred.await(exit),
      onLine: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      }
    }
    return supervisor
  })
