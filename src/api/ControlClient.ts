/**
 * The CLI's side of the control API: the supervisor's interface (`SupervisorShape`) over the stack's Unix
 * socket, from a client derived from `ControlApi` (HttpApiClient) plus a plain HttpClient for the streaming
 * `follow` and `events` endpoints; `layer` provides it as the `Supervisor`. With no supervisor it fails at once with
 * `NoSupervisor`, after cleaning up what a dead one left.
 */
import { HttpApiClient, HttpClient, type HttpClientError, HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import { Data, Effect, Layer, type ParseResult, Predicate, Schedule, Schema, type Scope, Stream } from "effect"
import type { AgentOptions } from "node:https"
import * as path from "node:path"
import type { LogLine } from "../logs/ServiceLog.js"
import { ServiceName } from "../manifest/ServiceManifest.js"
import { probeSocket, socketAddress } from "../state/ControlSocket.js"
import { isRunning } from "../state/ProcessIdentity.js"
import { stateDirOf, statePaths } from "../state/StateDir.js"
import { becomeStateDirOwner, untrustedStateDir } from "../state/Trust.js"
import { cleanLeftovers, liveSupervisor } from "../state/SupervisorLock.js"
import { ControlError, Supervisor, type SupervisorShape, UnknownService } from "../supervisor/Supervisor.js"
import {
  ControlApi,
  LogLineJson,
  StackEvent,
  type StackGraphJson,
  type SupervisorIdentity,
  type UsageHistoryJson
} from "./ControlApi.js"

export { ControlError }

/** No supervisor runs for this stack directory. */
export class NoSupervisor extends Data.TaggedError("NoSupervisor")<{ readonly dir: string }> {
  override get message() {
    return `no stack running in ${this.dir} (start one with: core stack up -d)`
  }
}

/** How long a supervisor may take to say hello before the verb gives up. */
const HELLO_TIMEOUT = "3 seconds"
/** How long `down` waits for the supervisor process to exit after its services have stopped. */
const EXIT_TIMEOUT = "15 seconds"

/** Whether `name` could be a service's: only such a name is put into a URL's path. */
const isServiceName = Schema.is(ServiceName)

/** The supervisor's verbs over the socket, with the supervisor's own error types, and who answers. */
export interface ControlClient extends SupervisorShape<ControlError> {
  readonly dir: string
  readonly identity: SupervisorIdentity
  /** The sampled resource use of every service, or only the samples after `since` (epoch ms). */
  readonly metrics: (since?: number) => Effect.Effect<UsageHistoryJson, ControlError>
  readonly graph: Effect.Effect<StackGraphJson, ControlError>
  /** Every service's row, then each transition and resource sample, until interrupted or the supervisor ends. */
  readonly events: Stream.Stream<StackEvent, ControlError>
}

/** A line as the API carries it, as the supervisor holds it. */
const fromJsonLine = (json: LogLineJson): LogLine => {
  const line = { seq: json.seq, time: json.time, stream: json.stream, text: json.text }
  return json.supervisor ? { ...line, supervisor: true } : line
}

/** What went wrong on the way to the supervisor, for a `ControlError`. */
type TransportError = HttpClientError.HttpClientError | ParseResult.ParseError | HttpApiDecodeError

const transportTags: ReadonlyArray<string> = ["RequestError", "ResponseError", "ParseError", "HttpApiDecodeError"]
const isTransport = (e: unknown): e is TransportError =>
  Predicate.hasProperty(e, "_tag") && transportTags.includes(String(e._tag))

const describe = (error: TransportError): string => {
  switch (error._tag) {
    case "RequestError":
      return `connection failed (${error.reason})`
    case "ResponseError":
      return `unexpected answer (${error.reason}, HTTP ${error.response.status})`
    case "ParseError":
    case "HttpApiDecodeError":
      return `unexpected answer: ${error.message}`
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
    // its records and socket are trusted below: another user's folder would choose what they say and signal.
    // Root at a stack another user runs becomes that user first (`fly ssh console` logs in as root)
    becomeStateDirOwner(stateDir)
    const untrusted = untrustedStateDir(stateDir)
    if (untrusted !== undefined) return yield* new ControlError({ dir: root, reason: `${stateDir}: ${untrusted}` })
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
    const fail = (e: TransportError) => new ControlError({ dir: root, reason: describe(e) })
    const failed = (e: TransportError) => Effect.fail(fail(e))
    /** The supervisor's own errors pass as they are (the same classes on both sides); transport errors become `ControlError`. */
    const call = <A, E>(
      effect: Effect.Effect<A, E | TransportError>
    ): Effect.Effect<A, Exclude<E, TransportError> | ControlError> => Effect.catchIf(effect, isTransport, failed)

    const identity = yield* api.stack.hello().pipe(
      Effect.timeoutFail({
        duration: HELLO_TIMEOUT,
        onTimeout: () => new ControlError({ dir: root, reason: `no answer on ${socket} within ${HELLO_TIMEOUT}` })
      }),
      Effect.catchTags({
        RequestError: () => Effect.fail(new NoSupervisor({ dir: root })),
        ResponseError: failed,
        ParseError: failed,
        HttpApiDecodeError: failed
      })
    )

    /** An NDJSON endpoint as a stream of `schema` values; a 404 carries an unknown service. */
    const ndjson = <A, I>(url: string, schema: Schema.Schema<A, I>): Stream.Stream<A, UnknownService | ControlError> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const response = yield* http.execute(HttpClientRequest.get(url)).pipe(Effect.mapError(fail))
          if (response.status === 404) {
            const body = yield* response.json.pipe(Effect.mapError(fail))
            return yield* Effect.flatMap(
              Schema.decodeUnknown(UnknownService)(body).pipe(Effect.mapError(fail)),
              Effect.fail
            )
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

    // a name goes into the URL's path as it is ("web/stop#" would reach web's stop, "" and ".." another
    // endpoint): one that no service can have is unknown here, with the names the supervisor knows
    const status = call(api.stack.status())
    const named = <A, E>(
      name: string,
      verb: Effect.Effect<A, E>
    ): Effect.Effect<A, E | UnknownService | ControlError> =>
      isServiceName(name)
        ? verb
        : Effect.flatMap(status, (rows) => new UnknownService({ name, known: rows.map((row) => row.name) }))
    const follow = (name: string, n: number): Stream.Stream<LogLine, UnknownService | ControlError> =>
      isServiceName(name)
        ? ndjson(`http://localhost/services/${name}/follow?n=${n}`, LogLineJson).pipe(Stream.map(fromJsonLine))
        : Stream.fromEffect(named(name, Effect.never))

    // a read of /proc every 2 ms (a few µs each, for the ~15 ms the supervisor takes to exit after its answer):
    // `down` returns ~3 ms after the supervisor's exit, ~8 ms with 10 ms (traced, 5 runs each)
    const waitExit = Effect.sync(() => isRunning({ pid: identity.pid, startTime: identity.startTime })).pipe(
      Effect.repeat({ schedule: Schedule.spaced("2 millis"), until: (alive) => !alive }),
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
      status,
      statusOf: (name) => named(name, call(api.services.statusOf({ path: { name } }))),
      up: (services = []) => Effect.asVoid(call(api.stack.up({ payload: { services } }))),
      start: (name) => named(name, Effect.asVoid(call(api.services.start({ path: { name } })))),
      stop: (name) => named(name, Effect.asVoid(call(api.services.stop({ path: { name } })))),
      restart: (name) => named(name, Effect.asVoid(call(api.services.restart({ path: { name } })))),
      logs: (name, n) =>
        named(
          name,
          Effect.map(call(api.services.logs({ path: { name }, urlParams: { n } })), (lines) => lines.map(fromJsonLine))
        ),
      follow,
      shutdown: api.stack.down().pipe(
        Effect.asVoid,
        // the supervisor may close the connection as it ends; what counts is that it is gone
        Effect.catchTag("RequestError", () => Effect.void),
        // one whose start failed as the stop reached it ends before its answer (HTTP 503): stopped all the same
        // once it has exited; one that stays is reported with the answer
        Effect.catchAll((error) => Effect.mapError(waitExit, () => fail(error))),
        Effect.zipRight(waitExit)
      ),
      metrics: (since) => call(api.observe.metrics({ urlParams: since === undefined ? {} : { since } })),
      graph: call(api.observe.graph()),
      events: Stream.catchTag(ndjson("http://localhost/events", StackEvent), "UnknownService", (e) =>
        Stream.fail(new ControlError({ dir: root, reason: e.message }))
      )
    } satisfies ControlClient
  })

/** The supervisor of stack directory `dir`, over its control socket, for as long as the layer lives. */
export const layer = (dir: string): Layer.Layer<Supervisor, NoSupervisor | ControlError> =>
  Layer.scoped(Supervisor, connect(dir))

/** Runs `f` with a client for the supervisor of `dir`. */
export const withClient = <A, E, R>(
  dir: string,
  f: (client: ControlClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | NoSupervisor | ControlError, R> => Effect.scoped(Effect.flatMap(connect(dir), f))
