/**
 * `core stack wait NAME...`, the use case: wait until each named service answers its own readiness probe,
 * checked from here against the host where that service is reached (`CORE_HOST_<NAME>`, its Service name in
 * a Kubernetes pod; the probe's own host otherwise), within a timeout. Kubernetes init containers run it so
 * that a pod starts once the services it depends on are healthy.
 *
 * An `exec` readiness probe runs here, in this process's environment. A service without a readiness probe
 * is ready at once, as core treats it.
 */
import { Data, Duration, Effect } from "effect"
import { describeCheck, waitReady } from "../health/Probe.js"
import type { ProbeSpec, ServiceSpec } from "../manifest/ServiceSpec.js"
import { hostVariable } from "../manifest/Placeholders.js"
import { loadStack } from "../manifest/StackLoader.js"
import { UnknownService } from "../supervisor/Supervisor.js"

/** A service that did not become ready within the timeout. */
export class WaitTimedOut extends Data.TaggedError("WaitTimedOut")<{
  readonly service: string
  readonly check: string
  readonly timeoutSeconds: number
  readonly checks: number
  readonly lastReason: string | undefined
}> {
  override get message() {
    const last = this.lastReason === undefined ? "no check finished" : `last failure: ${this.lastReason}`
    return `${this.service} is not ready after ${this.timeoutSeconds} s (${this.checks} checks of ${this.check}; ${last})`
  }
}

/** The readiness probe of `service` aimed at where it is reached from here, or undefined when it has none. */
export const probeFromHere = (
  service: ServiceSpec,
  env: Readonly<Record<string, string | undefined>>
): ProbeSpec | undefined => {
  const probe = service.readiness
  if (probe === undefined || probe.check._tag === "exec") return probe
  const host = env[hostVariable(service.name)]
  return host === undefined || host === "" ? probe : { ...probe, check: { ...probe.check, host } }
}

export interface WaitOptions {
  readonly timeoutSeconds: number
  readonly env?: Readonly<Record<string, string | undefined>>
  /** One line per event: waiting, ready. */
  readonly onProgress?: (line: string) => void
}

/** Waits for every service of `names` in the stack of `dir`, concurrently. */
export const waitForServices = Effect.fn("StackWait.waitForServices")(function* (
  dir: string,
  names: ReadonlyArray<string>,
  options: WaitOptions
) {
  const env = options.env ?? process.env
  const stack = yield* loadStack(dir, { env })
  const known = stack.services.map((service) => service.name as string)
  const say = options.onProgress ?? (() => {})
  const unknown = names.find((name) => !known.includes(name))
  if (unknown !== undefined) return yield* new UnknownService({ name: unknown, known })
  const waitOne = (name: string) =>
    Effect.gen(function* () {
      const service = stack.services.find((candidate) => candidate.name === name)!
      const probe = probeFromHere(service, env)
      if (probe === undefined) {
        say(`${name}: no readiness probe, ready at once`)
        return
      }
      const check = describeCheck(probe.check)
      say(`${name}: waiting for ${check} (timeout ${options.timeoutSeconds} s)`)
      const started = Date.now()
      let checks = 0
      let lastReason: string | undefined
      yield* waitReady(probe, (ok, reason) => {
        checks++
        if (!ok) lastReason = reason
      }).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(options.timeoutSeconds),
          onTimeout: () =>
            new WaitTimedOut({ service: name, check, timeoutSeconds: options.timeoutSeconds, checks, lastReason })
        })
      )
      say(`${name}: ready after ${((Date.now() - started) / 1000).toFixed(1)} s`)
    })
  yield* Effect.forEach(names, waitOne, { concurrency: "unbounded", discard: true })
})
