/**
 * The check that `stack up` runs just before spawning (step `ports-free`): every port of the services to
 * start can be bound right now.
 */
import { Effect } from "effect"
import * as net from "node:net"
import * as nodePath from "node:path"
import { formatPath, ManifestError, type Problem } from "./ManifestError.js"
import type { StackSpec } from "./ServiceSpec.js"

/** Whether `port` can be bound on `host` right now: undefined if so, else why not. */
const bindProblem = (host: string, port: number): Effect.Effect<string | undefined> =>
  Effect.async<string | undefined>((resume) => {
    const server = net.createServer()
    server.once("error", (error: NodeJS.ErrnoException) => {
      server.close()
      resume(
        Effect.succeed(
          error.code === "EADDRINUSE"
            ? `already in use on ${host}`
            : error.code === "EACCES"
              ? `cannot be bound on ${host}: permission denied`
              : `cannot be bound on ${host}: ${error.message}`
        )
      )
    })
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resume(Effect.succeed(undefined)))
    })
    return Effect.sync(() => {
      server.close()
    })
  })

/**
 * Why `port` cannot be bound on 127.0.0.1 or else on 0.0.0.0, or undefined. One bind in the common case: a port
 * free on 0.0.0.0 is free on 127.0.0.1 too (a socket on 127.0.0.1, listening or connected, blocks a bind of
 * 0.0.0.0 as well), so 127.0.0.1 is tried only to name it when 0.0.0.0 fails. Each bind and close costs the
 * supervisor ~0.1 ms: two per port took ~39 ms of a start of 200 services (traced).
 */
const portProblem = (port: number): Effect.Effect<string | undefined> =>
  Effect.flatMap(bindProblem("0.0.0.0", port), (anyAddress) =>
    anyAddress === undefined
      ? Effect.succeed(undefined)
      : Effect.map(bindProblem("127.0.0.1", port), (loopback) => loopback ?? anyAddress)
  )

/**
 * Checks that every port of the named services can be bound on 127.0.0.1 and 0.0.0.0 (each briefly
 * bound and released). Fails with a `ManifestError` (step `ports-free`) naming service and port.
 */
export const checkPortsFree = Effect.fn("PortCheck.checkPortsFree")(function* (
  stack: StackSpec,
  names: ReadonlyArray<string>
) {
  const problems: Array<Problem> = []
  for (const service of stack.services) {
    if (!names.includes(service.name)) continue
    for (const [portName, port] of Object.entries(service.ports)) {
      const why = yield* portProblem(port)
      if (why === undefined) continue
      problems.push({
        step: "ports-free",
        file: nodePath.relative(stack.dir, service.manifestPath),
        path: formatPath(["ports", portName]),
        message: `port ${port} of service "${service.name}" is ${why}`
      })
    }
  }
  if (problems.length > 0) return yield* new ManifestError({ problems })
})
