/**
 * The control API: defined once, served by the supervisor on `.core-stack/control.sock`, and the source of
 * the CLI's client (`ControlClient`). Every payload crosses it through these Schemas.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"
import { ServiceStatus } from "../stack/ServiceStatus.js"
import { StartFailed, UnknownService } from "../supervisor/Supervisor.js"

/** One line of a service's output, as `logs` returns it and `follow` streams it (one JSON object per line). */
export const LogLineJson = Schema.Struct({
  /** Position in the service's output since the supervisor started (across restarts). */
  seq: Schema.Number,
  /** Epoch milliseconds when the line was read. */
  time: Schema.Number,
  stream: Schema.Literal("stdout", "stderr"),
  text: Schema.String,
  /** True on the supervisor's own notes (state transitions), absent on the service's output. */
  supervisor: Schema.optional(Schema.Boolean)
})
export type LogLineJson = typeof LogLineJson.Type

/** Who answers on the socket: lets a client tell a live supervisor from a stale socket, and `down` wait for it. */
export class SupervisorIdentity extends Schema.Class<SupervisorIdentity>("SupervisorIdentity")({
  pid: Schema.Int,
  /** Process start time in clock ticks since boot (`/proc/<pid>/stat` field 22), or null where unknown. */
  startTime: Schema.NullOr(Schema.Number),
  /** Absolute stack directory. */
  dir: Schema.String,
  /** The stack's services, in start order. */
  services: Schema.Array(Schema.String),
  /** Bytes of the supervisor's own output (stdout, stderr: `.core-stack/supervisor.log` when detached) it could not write, when any. */
  droppedOutputBytes: Schema.optional(Schema.Int)
}) {}

const name = HttpApiSchema.param("name", Schema.String)

/** `n`: how many past lines (default 100). */
export const TailParams = Schema.Struct({ n: Schema.optional(Schema.NumberFromString.pipe(Schema.int())) })

/** Default number of past lines for `logs` and `follow`. */
export const DefaultTail = 100

export class StackGroup extends HttpApiGroup.make("stack")
  .add(HttpApiEndpoint.get("hello", "/hello").addSuccess(SupervisorIdentity))
  .add(HttpApiEndpoint.get("status", "/status").addSuccess(Schema.Array(ServiceStatus)))
  .add(
    HttpApiEndpoint.post("up", "/up")
      .setPayload(Schema.Struct({ services: Schema.Array(Schema.String) }))
      .addSuccess(Schema.Array(ServiceStatus))
      .addError(UnknownService)
      .addError(StartFailed)
  )
  /** Stops every service, dependents first; answers when their processes have exited, then the supervisor exits. */
  .add(HttpApiEndpoint.post("down", "/down").addSuccess(SupervisorIdentity)) {}

export class ServicesGroup extends HttpApiGroup.make("services")
  .add(HttpApiEndpoint.get("statusOf")`/services/${name}`.addSuccess(ServiceStatus).addError(UnknownService))
  .add(
    HttpApiEndpoint.post("start")`/services/${name}/start`
      .addSuccess(ServiceStatus)
      .addError(UnknownService)
      .addError(StartFailed)
  )
  .add(HttpApiEndpoint.post("stop")`/services/${name}/stop`.addSuccess(ServiceStatus).addError(UnknownService))
  .add(
    HttpApiEndpoint.post("restart")`/services/${name}/restart`
      .addSuccess(ServiceStatus)
      .addError(UnknownService)
      .addError(StartFailed)
  )
  .add(
    HttpApiEndpoint.get("logs")`/services/${name}/logs`
      .setUrlParams(TailParams)
      .addSuccess(Schema.Array(LogLineJson))
      .addError(UnknownService)
  )
  /** NDJSON: one `LogLineJson` per line, until the client disconnects. Read it with a plain HttpClient. */
  .add(
    HttpApiEndpoint.get("follow")`/services/${name}/follow`
      .setUrlParams(TailParams)
      .addSuccess(Schema.String)
      .addError(UnknownService)
  ) {}

/** A service's current resource use (see `ResourceSampler`); null where it has no process or none was measured. */
export const ServiceUsageJson = Schema.Struct({
  name: Schema.String,
  /** Percent of one core over the last sampling interval, whole process group. */
  cpu: Schema.NullOr(Schema.Number),
  /** Resident memory of the whole process group, bytes. */
  rss: Schema.NullOr(Schema.Number)
})

/** The sampled history: one time axis (epoch ms), and per service one value (or null) per time. */
export const UsageHistoryJson = Schema.Struct({
  /** Milliseconds between two samples. */
  intervalMs: Schema.Number,
  times: Schema.Array(Schema.Number),
  services: Schema.Array(
    Schema.Struct({
      name: Schema.String,
      cpu: Schema.Array(Schema.NullOr(Schema.Number)),
      rss: Schema.Array(Schema.NullOr(Schema.Number))
    })
  )
})
export type UsageHistoryJson = typeof UsageHistoryJson.Type

/** The dependency graph of the stack, from the manifests' `depends_on`. */
export const StackGraphJson = Schema.Struct({
  /** Start levels: the first holds the services without dependencies, each next one those that need only earlier ones. */
  layers: Schema.Array(Schema.Array(Schema.String)),
  /** One edge per `depends_on` entry: `service` waits for `dependsOn` to meet `condition`. */
  edges: Schema.Array(Schema.Struct({ service: Schema.String, dependsOn: Schema.String, condition: Schema.String })),
  /** Services with `disabled: true`. */
  disabled: Schema.Array(Schema.String)
})
export type StackGraphJson = typeof StackGraphJson.Type

/**
 * What `GET /events` streams, one JSON object per line: first a `Status` for every service (its current row),
 * then a `Status` at each transition and a `Usage` at each resource sample.
 */
export const StackEvent = Schema.Union(
  Schema.TaggedStruct("Status", { status: ServiceStatus }),
  Schema.TaggedStruct("Usage", { time: Schema.Number, services: Schema.Array(ServiceUsageJson) })
)
export type StackEvent = typeof StackEvent.Type

/** `since`: only samples taken after this time (epoch ms). */
export const SinceParams = Schema.Struct({ since: Schema.optional(Schema.NumberFromString) })

/** What a dashboard needs besides the verbs: resource history, the graph, and a stream of changes. */
export class ObserveGroup extends HttpApiGroup.make("observe")
  .add(HttpApiEndpoint.get("metrics", "/metrics").setUrlParams(SinceParams).addSuccess(UsageHistoryJson))
  .add(HttpApiEndpoint.get("graph", "/graph").addSuccess(StackGraphJson))
  /** NDJSON: one `StackEvent` per line, until the client disconnects. Read it with a plain HttpClient. */
  .add(HttpApiEndpoint.get("events", "/events").addSuccess(Schema.String)) {}

/** The control API. */
export class ControlApi extends HttpApi.make("control").add(StackGroup).add(ServicesGroup).add(ObserveGroup) {}
