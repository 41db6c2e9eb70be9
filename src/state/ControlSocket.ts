/**
 * The control socket of `.core-stack/` as a file: the name to bind or connect it by, and whether anything
 * answers on it. Serving and calling the API over it are the api folder's business.
 */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107

/**
 * A name under which `socket` can be bound or connected to: the path itself when it fits a socket address,
 * else (Linux) the same file reached through an open descriptor of its directory,
 * `/proc/self/fd/<fd>/control.sock`, valid until the scope closes. The socket file stays in `.core-stack/`.
 */
export const socketAddress = (socket: string): Effect.Effect<string, never, Scope.Scope> =>
  Buffer.byteLength(socket) <= MAX_SOCKET_PATH || !fs.existsSync("/proc/self/fd")
    ? Effect.succeed(socket)
    : Effect.acquireRelease(
        Effect.sync(() => {
          try {
            return fs.openSync(path.dirname(socket), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
          } catch {
            return undefined
          }
        }),
        (fd) => Effect.sync(() => fd !== undefined && fs.closeSync(fd))
      ).pipe(Effect.map((fd) => (fd === undefined ? socket : `/proc/self/fd/${fd}/${path.basename(socket)}`)))

/** What a connection attempt to a socket file found. */
export type SocketProbe = "answers" | "refused" | "missing"

/** Tries to connect to a Unix socket: a live server answers; a stale file refuses. */
export const probeSocket = (socket: string, timeoutMs = 1_000): Effect.Effect<SocketProbe> =>
  Effect.scoped(Effect.flatMap(socketAddress(socket), (address) => probeAddress(socket, address, timeoutMs)))

const probeAddress = (socket: string, address: string, timeoutMs: number) =>
  Effect.async<SocketProbe>((resume) => {
    if (!fs.existsSync(socket)) return resume(Effect.succeed("missing"))
    const conn = net.connect({ path: address })
    let settled = false
    const done = (result: SocketProbe) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      conn.destroy()
      resume(Effect.succeed(result))
    }
    // a server that accepts but is too busy to answer still holds the socket
    const timer = setTimeout(() => done("answers"), timeoutMs)
    conn.once("connect", () => done("answers"))
    conn.on("error", (e: NodeJS.ErrnoException) => done(e.code === "ENOENT" ? "missing" : "refused"))
    return Effect.sync(() => {
      clearTimeout(timer)
      conn.destroy()
    })
  })
