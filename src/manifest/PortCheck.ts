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
      for (const host of ["127.0.0.1", "0.0.0.0"]) {
        const why = yield* bindProblem(host, port)
        if (why === undefined) continue
        problems.push({
          step: "ports-free",
          file: nodePath.relative(stack.dir, service.manifestPath),
          path: formatPath(["ports", portName]),
          message: `port ${port} of service "${service.name}" is ${why}`
        })
        break
      }
    }
  }
  if (problems.length > 0) return yield* new ManifestError({ problems })
})
