/**
 * The CLI's side of the control API: a client derived from `ControlApi` (HttpApiClient) over the stack's
 * Unix socket, plus a plain HttpClient for the streaming `follow` endpoint. With no supervisor it fails at
 * once with `NoSupervisor`, after cleaning up what a dead one left.
 */
import { HttpApiClient, HttpClient, type HttpClientError, HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Data, Effect, type ParseResult, Schedule, Schema, type Scope, Stream } from "effect"
import type { AgentOptions } from "node:https"
import * as path from "node:path"
import { cleanLeftovers, isAlive, liveSupervisor, stateDirOf, statePaths } from "../supervisor/PidRegistry.js"
import type { ServiceStatus } from "../supervisor/ServiceStatus.js"
import { StartFailed, UnknownService } from "../supervisor/Supervisor.js"
import {
  type ApiStartFailed,
  ApiUnknownService,
  ControlApi,
  DefaultTail,
  LogLineJson,
  StackEvent,
  type StackGraphJson,
  type SupervisorIdentity,
  type UsageHistoryJson
} from "./ControlApi.js"
import { probeSocket, socketAddress } from "./ControlServer.js"

/** No supervisor runs for this stack directory. */
export class NoSupervisor extends Data.TaggedError("NoSupervisor")<{ readonly dir: string }> {
  override get message() {
    return `no stack running in ${this.dir} (start one with: core stack up -d)`
  }
}

/** The supervisor did not answer as the API says (not answering, connection lost, bad payload). */
export class ControlError extends Data.TaggedError("ControlError")<{
  readonly dir: string
  readonly reason: string
}> {
  override get message() {
    return `the supervisor of ${this.dir}: ${this.reason}`
  }
}

/** How long a supervisor may take to say hello before the verb gives up. */
const HELLO_TIMEOUT = "3 seconds"
/** How long `down` waits for the supervisor process to exit after its services have stopped. */
const EXIT_TIMEOUT = "15 seconds"

/** The verbs over the socket. Errors of the supervisor come back as the Supervisor's own error types. */
export interface ControlClient {
  readonly dir: string
  readonly identity: SupervisorIdentity
  readonly status: Effect.Effect<ReadonlyArray<ServiceStatus>, ControlError>
  readonly statusOf: (name: string) => Effect.Effect<ServiceStatus, UnknownService | ControlError>
  readonly up: (
    services: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<ServiceStatus>, UnknownService | StartFailed | ControlError>
  readonly start: (name: string) => Effect.Effect<ServiceStatus, UnknownService | StartFailed | ControlError>
  readonly stop: (name: string) => Effect.Effect<ServiceStatus, UnknownService | ControlError>
  readonly restart: (name: string) => Effect.Effect<ServiceStatus, UnknownService | StartFailed | ControlError>
  readonly logs: (name: string, n?: number) => Effect.Effect<ReadonlyArray<LogLineJson>, UnknownService | ControlError>
  /** The last `n` lines then every new one, across restarts, until interrupted or the supervisor ends. */
  readonly follow: (name: string, n?: number) => Stream.Stream<LogLineJson, UnknownService | ControlError>
  /** Stops every service, dependents first; returns when they and the supervisor process have exited. */
  readonly down: Effect.Effect<void, ControlError>
  /** The sampled resource use of every service, or only the samples after `since` (epoch ms). */
  readonly metrics: (since?: number) => Effect.Effect<UsageHistoryJson, ControlError>
  readonly graph: Effect.Effect<StackGraphJson, ControlError>
  /** Every service's row, then each transition and resource sample, until interrupted or the supervisor ends. */
  readonly events: Stream.Stream<StackEvent, ControlError>
}

const fromApi = (e: ApiUnknownService | ApiStartFailed): UnknownService | StartFailed =>
  e._tag === "UnknownService"
    ? new UnknownService({ name: e.name, known: e.known })
    : new StartFailed({ service: e.service, reason: e.reason, lastLines: e.lastLines })

const describe = (e: unknown): string => {
  const error = e as HttpClientError.HttpClientError | ParseResult.ParseError | { readonly _tag: undefined }
  switch (error._tag) {
    case "RequestError":
      return `connection failed (${error.reason})`
    case "ResponseError":
      return `unexpected answer (${error.reason}, HTTP ${error.response.status})`
    case "ParseError":
      return `unexpected answer: ${error.message}`
    default:
      return `unexpected answer: ${e instanceof Error ? e.message : String(e)}`
  }
}

/**
 * Connects to the supervisor of stack directory `dir`. Fails at once with `NoSupervisor` when there is
 * none (no socket, or a stale one: then it and the leftovers of the dead supervisor are cleaned up), and
 * with `ControlError` when one holds the socket but does not answer within 3 s.
 */
export const connect: (dir: string) => Effect.Effect<ControlClient, NoSupervisor | ControlError, Scope.Scope> =
  Effect.fn("ControlClient.connect")(function* (dir: string) {
    const root = path.resolve(dir)
    const stateDir = stateDirOf(root)
    const { socket } = statePaths(stateDir)
    yield* cleanLeftovers(stateDir)
    const probe = yield* probeSocket(socket)
    if (probe !== "answers") {
      const starting = liveSupervisor(stateDir)
      if (starting) {
        return yield* new ControlError({
          dir: root,
          reason: `it (pid ${starting.pid}) is starting and not answering yet; try again in a moment`
        })
      }
      // a refused socket without a live supervisor behind it: cleanLeftovers removed it with the pid file
      return yield* new NoSupervisor({ dir: root })
    }
    // node:http, not undici: undici alone is a third of the bundle and about 90 ms of every CLI start. An
    // Agent's own options go into every connection it makes, so `socketPath` sends each request to the socket.
    const agentOptions: AgentOptions & { readonly socketPath: string } = { socketPath: yield* socketAddress(socket) }
    const agent = yield* NodeHttpClient.makeAgent(agentOptions)
    const http = yield* NodeHttpClient.make.pipe(Effect.provideService(NodeHttpClient.HttpAgent, agent))
    const api = yield* HttpApiClient.make(ControlApi, { baseUrl: "http://localhost" }).pipe(
      Effect.provideService(HttpClient.HttpClient, http)
    )
    const fail = (e: unknown) => new ControlError({ dir: root, reason: describe(e) })
    const tagOf = (e: unknown) => (e as { readonly _tag?: string })._tag
    /** Calls whose only expected error is an unknown service. */
    const callU = <A>(effect: Effect.Effect<A, unknown>): Effect.Effect<A, UnknownService | ControlError> =>
      Effect.mapError(effect, (e) => {
        if (tagOf(e) !== "UnknownService") return fail(e)
        const { name, known } = e as ApiUnknownService
        return new UnknownService({ name, known })
      })
    /** Calls that start a service. */
    const callS = <A>(effect: Effect.Effect<A, unknown>) =>
      Effect.mapError(effect, (e): UnknownService | StartFailed | ControlError =>
        tagOf(e) === "UnknownService" || tagOf(e) === "StartFailed"
          ? fromApi(e as ApiUnknownService | ApiStartFailed)
          : fail(e)
      )

    const identity = yield* api.stack.hello().pipe(
      Effect.timeoutFail({
        duration: HELLO_TIMEOUT,
        onTimeout: () => new ControlError({ dir: root, reason: `no answer on ${socket} within ${HELLO_TIMEOUT}` })
      }),
      Effect.catchTag("RequestError", () => new NoSupervisor({ dir: root })),
      Effect.mapError((e) => (e._tag === "NoSupervisor" || e._tag === "ControlError" ? e : fail(e)))
    )

    /** An NDJSON endpoint as a stream of `schema` values; a 404 carries an unknown service. */
    const ndjson = <A, I>(url: string, schema: Schema.Schema<A, I>): Stream.Stream<A, UnknownService | ControlError> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const response = yield* http.execute(HttpClientRequest.get(url)).pipe(Effect.mapError(fail))
          if (response.status === 404) {
            const body = yield* response.json.pipe(Effect.mapError(fail))
            const error = yield* Schema.decodeUnknown(ApiUnknownService)(body).pipe(Effect.mapError(fail))
            return yield* new UnknownService({ name: error.name, known: error.known })
          }
          if (response.status !== 200) {
            return yield* new ControlError({ dir: root, reason: `${url} answered HTTP ${response.status}` })
          }
          const decode = Schema.decodeUnknown(Schema.parseJson(schema))
          return response.stream.pipe(
            // the supervisor going away (connection closed mid-stream) ends the stream like end-of-file
            Stream.catchAll(() => Stream.empty),
            Stream.decodeText(),
            Stream.splitLines,
            Stream.filter((line) => line.length > 0),
            Stream.mapEffect((line) => Effect.mapError(decode(line), fail))
          )
        })
      )

    const follow = (name: string, n = DefaultTail): Stream.Stream<LogLineJson, UnknownService | ControlError> =>
      ndjson(`http://localhost/services/${encodeURIComponent(name)}/follow?n=${n}`, LogLineJson)

    // a read of /proc every 10 ms: `down` returns within ~10 ms of the supervisor's exit, not up to 50 ms after
    const waitExit = Effect.sync(() => isAlive({ pid: identity.pid, startTime: identity.startTime })).pipe(
      Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (alive) => !alive }),
      Effect.asVoid,
      Effect.timeoutFail({
        duration: EXIT_TIMEOUT,
        onTimeout: () =>
          new ControlError({
            dir: root,
            reason: `its services stopped but the supervisor (pid ${identity.pid}) did not exit within ${EXIT_TIMEOUT}`
          })
      })
    )

    return {
      dir: root,
      identity,
      status: Effect.mapError(api.stack.status(), fail),
      statusOf: (name) => callU(api.services.statusOf({ path: { name } })),
      up: (services) => callS(api.stack.up({ payload: { services } })),
      start: (name) => callS(api.services.start({ path: { name } })),
      stop: (name) => callU(api.services.stop({ path: { name } })),
      restart: (name) => callS(api.services.restart({ path: { name } })),
      logs: (name, n = DefaultTail) => callU(api.services.logs({ path: { name }, urlParams: { n } })),
      follow,
      down: api.stack.down().pipe(
        Effect.asVoid,
        // the supervisor may close the connection as it ends; what counts is that it is gone
        Effect.catchTag("RequestError", () => Effect.void),
        Effect.mapError(fail),
        Effect.zipRight(waitExit)
      ),
      metrics: (since) =>
        Effect.mapError(api.observe.metrics({ urlParams: since === undefined ? {} : { since } }), fail),
      graph: Effect.mapError(api.observe.graph(), fail),
      events: Stream.catchTag(ndjson("http://localhost/events", StackEvent), "UnknownService", (e) =>
        Stream.fail(fail(e))
      )
    } satisfies ControlClient
  })

/** Runs `f` with a client for the supervisor of `dir`. */
export const withClient = <A, E, R>(
  dir: string,
  f: (client: ControlClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | NoSupervisor | ControlError, R> => Effect.scoped(Effect.flatMap(connect(dir), f))
