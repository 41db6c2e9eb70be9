/**
 * The dashboard's server: serves the page and a small JSON/SSE API on 127.0.0.1, and talks to the stack's
 * supervisor over its control socket. Live updates come from the supervisor's event stream and reach the
 * browser as server-sent events; when the supervisor goes away the page is told so, and the server keeps
 * trying to reach it (every second) so that the page recovers by itself when a supervisor is back.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Data, Effect, Ref, Schedule, type Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { type ControlClient, connect } from "../api/ControlClient.js"
import { down, onRunningStack, serviceVerb } from "../app/RunningStack.js"
import { checkRequest, pagePath, securityHeaders, TOKEN_HEADER, tokenCookie } from "./UiSecurity.js"

/** Lines of a service's output a log panel starts with. */
export const LOG_TAIL = 200

/** How often the server tries to reach a supervisor that went away. */
const RECONNECT_EVERY = "1 second"

/** A comment line on idle event streams, so that a dead connection is noticed. */
const HEARTBEAT_EVERY = "15 seconds"

/** The page's files are missing (the bundle was not built). */
export class UiAssetsMissing extends Data.TaggedError("UiAssetsMissing")<{ readonly dir: string }> {
  override get message() {
    return `the dashboard's page is missing in ${this.dir} (build it with: npm run build)`
  }
}

/** The dashboard cannot listen on the port asked for (in use, say). */
export class UiListenFailed extends Data.TaggedError("UiListenFailed")<{
  readonly port: number
  readonly reason: string
}> {
  override get message() {
    return `the dashboard cannot listen on 127.0.0.1:${this.port}: ${this.reason}`
  }
}

/** The page bundle: `app.js` and `app.css`, built by `npm run build` into `dist/ui/`. */
export interface UiAssets {
  readonly js: string
  readonly css: string
}

/** Where the built page lives: `CORE_UI_ASSETS`, else `ui/` beside the CLI bundle. */
export const assetsDir = (): string =>
  process.env.CORE_UI_ASSETS ??
  (typeof __dirname === "string" ? path.join(__dirname, "ui") : path.resolve("dist", "ui"))

export const loadAssets = (dir: string = assetsDir()): Effect.Effect<UiAssets, UiAssetsMissing> =>
  Effect.try({
    try: () => ({
      js: fs.readFileSync(path.join(dir, "app.js"), "utf8"),
      css: fs.readFileSync(path.join(dir, "app.css"), "utf8")
    }),
    catch: () => new UiAssetsMissing({ dir })
  })

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/**
 * The page: the token in a meta tag (for the action header), the stack's directory as its title. Its URLs are
 * relative: everything is under the secret path it is served at (`pagePath`).
 */
const indexHtml = (token: string, dir: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="core-token" content="${escapeHtml(token)}">
<title>core · ${escapeHtml(path.basename(dir))}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
<script defer src="app.js"></script>
</head>
<body><noscript>The dashboard needs JavaScript.</noscript></body>
</html>
`

/** One server-sent event. */
interface Sse {
  readonly event: string
  readonly data: unknown
}

const encodeSse = (message: Sse | "heartbeat"): string =>
  message === "heartbeat" ? ": ping\n\n" : `event: ${message.event}\ndata: ${JSON.stringify(message.data)}\n\n`

/** An event-stream answer that reconnects quickly and sends a heartbeat while idle. */
const sseResponse = (messages: Stream.Stream<Sse>) =>
  HttpServerResponse.stream(
    Stream.concat(
      Stream.succeed("retry: 1000\n\n"),
      Stream.map(
        Stream.merge(messages, Stream.tick(HEARTBEAT_EVERY).pipe(Stream.as("heartbeat" as const)), {
          haltStrategy: "left"
        }),
        encodeSse
      )
    ).pipe(Stream.encodeText),
    { contentType: "text/event-stream", headers: { "x-accel-buffering": "no" } }
  )

/**
 * Sessions with the supervisor, one after the other, forever: `session` runs while one answers; when it ends
 * or none answers, `down` is sent once per outage and the next attempt comes a second later.
 */
const supervised = (dir: string, session: (client: ControlClient) => Stream.Stream<Sse, Error>): Stream.Stream<Sse> =>
  Stream.unwrap(
    Effect.map(Ref.make(true), (wasUp) => {
      const down = (reason: string) =>
        Stream.unwrap(
          Effect.map(Ref.getAndSet(wasUp, false), (was) =>
            was ? Stream.make({ event: "supervisor", data: { up: false, reason } }) : Stream.empty
          )
        )
      const attempt = Stream.unwrapScoped(
        Effect.gen(function* () {
          const client = yield* Effect.either(connect(dir))
          if (client._tag === "Left") return down(client.left.message)
          yield* Ref.set(wasUp, true)
          return Stream.concat(
            session(client.right).pipe(Stream.catchAll((e) => down(e.message))),
            down("the supervisor ended")
          )
        })
      )
      return Stream.repeat(attempt, Schedule.spaced(RECONNECT_EVERY))
    })
  )

/** The page's first picture after (re)connecting, then every status change and resource sample. */
const eventsSession = (client: ControlClient): Stream.Stream<Sse, Error> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const [status, graph, metrics] = yield* Effect.all([client.status, client.graph, client.metrics()], {
        concurrency: "unbounded"
      })
      const snapshot: Sse = {
        event: "snapshot",
        data: { dir: client.dir, pid: client.identity.pid, status, graph, metrics }
      }
      const live = client.events.pipe(
        Stream.map(
          (event): Sse =>
            event._tag === "Status"
              ? { event: "status", data: event.status }
              : { event: "usage", data: { time: event.time, services: event.services } }
        )
      )
      return Stream.concat(Stream.make(snapshot), live)
    })
  )

/** A service's log panel: `reset` and the last lines at each (re)connection, then each new line. */
const logSession =
  (name: string) =>
  (client: ControlClient): Stream.Stream<Sse, Error> =>
    Stream.concat(
      Stream.make({ event: "reset", data: { name } }),
      client.follow(name, LOG_TAIL).pipe(Stream.map((line): Sse => ({ event: "line", data: line })))
    )

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

/** The HTTP status for an error of a verb. */
const statusOf = (error: { readonly _tag: string }) => {
  switch (error._tag) {
    case "UnknownService":
      return 404
    case "StartFailed":
      return 409
    case "NoSupervisor":
      return 503
    default:
      return 502
  }
}

const VERBS = ["start", "stop", "restart"] as const

const router = (dir: string, token: string, assets: UiAssets) => {
  /** A verb of the CLI, answered as JSON: its result, or its error's message with an HTTP status. */
  const answer = <A, R>(verb: Effect.Effect<A, { readonly _tag: string; readonly message: string }, R>) =>
    verb.pipe(
      Effect.map((body) => json(body)),
      Effect.catchAll((error) => Effect.succeed(json({ error: error.message }, statusOf(error))))
    )
  const base = pagePath(token)
  return HttpRouter.empty.pipe(
    HttpRouter.get(base, Effect.succeed(HttpServerResponse.html(indexHtml(token, dir)))),
    HttpRouter.get(
      `${base}app.js`,
      Effect.succeed(HttpServerResponse.text(assets.js, { contentType: "text/javascript" }))
    ),
    HttpRouter.get(`${base}app.css`, Effect.succeed(HttpServerResponse.text(assets.css, { contentType: "text/css" }))),
    HttpRouter.get(
      `${base}api/events`,
      Effect.sync(() => sseResponse(supervised(dir, eventsSession)))
    ),
    HttpRouter.get(
      `${base}api/services/:name/logs`,
      Effect.flatMap(HttpRouter.params, ({ name = "" }) =>
        // a name the stack does not have is an error now, not a stream that retries forever
        Effect.scoped(Effect.flatMap(connect(dir), (client) => client.statusOf(name))).pipe(
          Effect.match({
            onFailure: (e) =>
              e._tag === "UnknownService"
                ? json({ error: e.message }, 404)
                : sseResponse(supervised(dir, logSession(name))),
            onSuccess: () => sseResponse(supervised(dir, logSession(name)))
          })
        )
      )
    ),
    HttpRouter.post(
      `${base}api/services/:name/:verb`,
      Effect.flatMap(HttpRouter.params, ({ name, verb }) => {
        const known = VERBS.find((v) => v === verb)
        return known === undefined || name === undefined
          ? Effect.succeed(json({ error: `unknown action ${verb}` }, 404))
          : answer(
              onRunningStack(
                dir,
                serviceVerb(name, (supervisor) => supervisor[known](name))
              )
            )
      })
    ),
    HttpRouter.post(`${base}api/stack/down`, answer(Effect.map(down(dir), ({ pid }) => ({ down: true, pid }))))
  )
}

/**
 * The security checks around the routes (see `UiSecurity`), and the same safety headers on every answer.
 */
const guarded = (port: () => number, token: string, routes: ReturnType<typeof router>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "http://dashboard")
    const header = (name: string) => {
      const value = request.headers[name]
      return typeof value === "string" ? value : undefined
    }
    const verdict = checkRequest(
      {
        method: request.method,
        path: url.pathname,
        host: header("host"),
        origin: header("origin"),
        cookie: header("cookie"),
        queryToken: url.searchParams.get("token") ?? undefined,
        headerToken: header(TOKEN_HEADER)
      },
      port(),
      token
    )
    const response =
      verdict._tag === "Refuse"
        ? HttpServerResponse.text(`${verdict.reason}\n`, { status: verdict.status })
        : verdict._tag === "SetCookie"
          ? HttpServerResponse.redirect(verdict.location, {
              status: 303,
              headers: { "set-cookie": tokenCookie(port(), token) }
            })
          : yield* routes.pipe(
              Effect.catchTag("RouteNotFound", () =>
                Effect.succeed(HttpServerResponse.text("not found\n", { status: 404 }))
              )
            )
    return HttpServerResponse.setHeaders(response, securityHeaders)
  })

/** A dashboard being served. */
export interface UiServer {
  readonly port: number
  /** The URL to open, with the token. */
  readonly url: string
}

/**
 * Serves the dashboard of the stack in `dir` on 127.0.0.1:`port` (0: a free port) until the scope closes.
 */
export const serveUi = (options: {
  readonly dir: string
  readonly port: number
  readonly token: string
  readonly assets: UiAssets
}): Effect.Effect<UiServer, UiListenFailed, Scope.Scope> =>
  Effect.gen(function* () {
    const server = http.createServer()
    // an event stream never ends by itself; actions wait for readiness
    server.requestTimeout = 0
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        server.closeAllConnections()
      })
    )
    const served = yield* NodeHttpServer.make(() => server, { port: options.port, host: "127.0.0.1" }).pipe(
      Effect.mapError((e) => {
        const cause = e.cause as { readonly code?: string; readonly message?: string } | undefined
        const reason = cause?.code === "EADDRINUSE" ? "the port is in use" : (cause?.message ?? String(e.cause))
        return new UiListenFailed({ port: options.port, reason })
      })
    )
    const address = served.address
    const port = address._tag === "TcpAddress" ? address.port : options.port
    yield* served.serve(guarded(() => port, options.token, router(options.dir, options.token, options.assets)))
    return { port, url: `http://127.0.0.1:${port}${pagePath(options.token)}?token=${options.token}` }
  })
