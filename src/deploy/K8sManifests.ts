/**
 * A stack as a kustomize base for Kubernetes (`core deploy k8s`): pure, the stack in, files out, the same
 * bytes for the same input.
 *
 * Every container runs the one image of the deployment (`ImageLayout`) with `core <service> run --no-deps`,
 * so that placeholders resolve inside the pod: `${svc.NAME.host}` from `CORE_HOST_<NAME>` (the other
 * service's Service name), `${bind}` from `CORE_BIND` (all interfaces), `${data}` from `CORE_DATA_DIR`,
 * where the data volume is mounted.
 *
 * Two modes:
 * - `split` (default): per service a Deployment, or a StatefulSet with a volume claim template when it uses
 *   `${data}`, and a ClusterIP Service with its named ports. A `process_healthy` dependency becomes an init
 *   container that runs `core stack wait DEP` (the dependency's readiness probe against its Service).
 * - `pod`: the whole stack in one pod sharing localhost: the services others depend on are native sidecars
 *   (init containers with `restartPolicy: Always`) in dependency order, each gated by its startup probe;
 *   the services nothing depends on are the pod's containers.
 *
 * What does not map is reported: as a note when the deployment still behaves as the stack does (printed and
 * written as a comment), as a located problem when it cannot.
 */
import { Either } from "effect"
import { Document } from "yaml"
import { formatPath, type Problem } from "../manifest/ManifestError.js"
import type { DependencyCondition, Deploy, ServiceManifest } from "../manifest/ServiceManifest.js"
import type { ServiceSpec, StackSpec } from "../manifest/ServiceSpec.js"
import { envReferences, usesDataDir } from "../manifest/EnvReferences.js"
import { hostVariable, type PlaceholderContext } from "../manifest/Placeholders.js"
import { topologicalOrder } from "../stack/StackGraph.js"
import type { GeneratedFile } from "./GeneratedFile.js"
import { ImageLayout } from "./ImageLayout.js"
import { manifestFile, publicEntry } from "./PublicEntry.js"
import { stackVariables } from "./StackVariables.js"
import { type K8sProbe, mapProbe, startupProbe, wholeSeconds } from "./K8sProbes.js"

export type K8sMode = "split" | "pod"

/** Options of `generateK8s` (the flags of `core deploy k8s`). */
export interface K8sOptions {
  readonly namespace: string
  /** The image every container runs (built from the Dockerfile of `core deploy fly`). */
  readonly image: string
  readonly mode: K8sMode
  /** Host name of the Ingress rule of the public entry. */
  readonly host: string
}

/** Defaults of the options and of what a manifest does not say; documented in docs/DEPLOYMENT.md. */
export const K8sDefaults = {
  namespace: "core",
  image: "core:latest",
  mode: "split" as K8sMode,
  host: "core.example.com",
  /** `requests.memory` (and `limits.memory`) without a `deploy.memory_mb` hint. */
  memoryMb: 256,
  /** `requests.cpu` without a `deploy.cpus` hint. */
  cpus: 0.25,
  /** Size of a data volume claim. */
  storage: "1Gi",
  /** How long an init container waits for a dependency before it fails (and the kubelet retries it). */
  waitTimeoutSeconds: 300,
  /** Added to the shutdown timeouts for core's own stop, in `terminationGracePeriodSeconds`. */
  graceMarginSeconds: 5
} as const

/** The ConfigMap every container reads its environment from, and the Secret of the secrets. */
export const configMapName = "core-env"
export const secretName = "core-secrets"

/** One service to deploy: as loaded (defaults applied) and as written. */
interface K8sService {
  readonly spec: ServiceSpec
  readonly manifest: ServiceManifest
  /** Its manifest, relative to the stack directory (`services/<name>/service.json`), for problems. */
  readonly file: string
}

export interface K8sResult {
  readonly files: ReadonlyArray<GeneratedFile>
  /** What maps only approximately, one sentence each, prefixed by the service's file. */
  readonly notes: ReadonlyArray<string>
  /** The secrets (names) the Secret must hold. */
  readonly secrets: ReadonlyArray<string>
}

const hintsOf = (manifest: ServiceManifest): Deploy => manifest.deploy ?? {}

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const PORT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/

/**
 * Why `name` cannot name a Kubernetes Service (an RFC 1035 label) and the names made from it (`wait-<name>`,
 * `state-<name>`, 6 characters more, within the 63 of a label), or undefined.
 */
export const invalidServiceName = (name: string): string | undefined =>
  DNS_LABEL.test(name) && name.length <= 57
    ? undefined
    : `"${name}" cannot name a Kubernetes Service: at most 57 lowercase letters, digits and '-' (63 with the prefixes core adds), starting with a letter and not ending with '-'`

/** Why `name` cannot name a container port (IANA service name), or undefined. */
export const invalidPortName = (name: string): string | undefined =>
  PORT_NAME.test(name) && name.length <= 15 && /[a-z]/.test(name) && !name.includes("--")
    ? undefined
    : `port name "${name}" cannot name a Kubernetes port: at most 15 lowercase letters, digits and '-', with a letter, no '--', not starting or ending with '-'`

const labels = (name: string) => ({
  "app.kubernetes.io/name": name,
  "app.kubernetes.io/part-of": "core",
  "app.kubernetes.io/managed-by": "core"
})
const selector = (name: string) => ({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "core" })

const cpuQuantity = (cpus: number): string =>
  Number.isInteger(cpus) ? String(cpus) : `${Math.max(1, Math.round(cpus * 1000))}m`

const yamlDocument = (object: unknown, comment?: string): string => {
  const doc = new Document(object, { aliasDuplicateObjects: false })
  if (comment !== undefined && comment !== "") doc.commentBefore = comment
  return doc.toString({ lineWidth: 0 })
}

/** The first line of every YAML file written (after `# `): how an earlier run's files are recognised. */
export const generatedHeader =
  "Generated by `core deploy k8s` from services/*/service.json: regenerate it rather than edit it."

const yamlFile = (path: string, objects: ReadonlyArray<unknown>, notes: ReadonlyArray<string> = []): GeneratedFile => ({
  path,
  content: objects
    .map((object, index) =>
      yamlDocument(
        object,
        index === 0 ? [` ${generatedHeader}`, ...notes.map((note) => ` Note: ${note}`)].join("\n") : undefined
      )
    )
    .join("---\n")
})

// ---------------------------------------------------------------------------------------------
// the stack's environment

interface StackEnv {
  /** The variables each service reads (secrets and settings alike), by service. */
  readonly reads: ReadonlyMap<string, ReadonlySet<string>>
  /** Read somewhere without a default: from the Secret. */
  readonly secrets: ReadonlyArray<string>
  /** Always read with a default that every manifest agrees on: the ConfigMap's own entries. */
  readonly defaults: ReadonlyArray<readonly [string, string]>
  readonly notes: ReadonlyArray<string>
}

const stackEnv = (stack: StackSpec): StackEnv => {
  const variables = stackVariables(stack)
  return {
    reads: new Map(
      stack.services.map((service) => [
        service.name as string,
        new Set(envReferences(service.manifest).map((r) => r.name))
      ])
    ),
    secrets: variables.secrets.map((secret) => secret.name),
    defaults: variables.settings.flatMap((setting) =>
      setting.value === undefined ? [] : [[setting.name, setting.value] as const]
    ),
    notes: variables.settings
      .filter((setting) => setting.value === undefined)
      .map(
        (setting) =>
          `\${env.${setting.name}} has different defaults in different manifests: it is left out of the ConfigMap`
      )
  }
}

/** The `env` of a container: each secret of the stack, from the Secret when the service reads it, else empty. */
const secretEnv = (env: StackEnv, service: string | undefined) => {
  const reads = service === undefined ? undefined : env.reads.get(service)
  return env.secrets.map((name) =>
    reads?.has(name) === true ? { name, valueFrom: { secretKeyRef: { name: secretName, key: name } } } : { name }
  )
}

// ---------------------------------------------------------------------------------------------
// one service's container

interface Built<A> {
  readonly value: A
  readonly notes: ReadonlyArray<string>
}

interface Context {
  readonly options: K8sOptions
  readonly env: StackEnv
  readonly byName: ReadonlyMap<string, K8sService>
  readonly problems: Array<Problem>
  /** The environment the pods get from the ConfigMap (for placeholders resolved here). */
  readonly podEnv: Readonly<Record<string, string>>
}

const placeholderContext = (ctx: Context, service: K8sService): PlaceholderContext => {
  const appDir = ImageLayout.appDir
  const manifests = [...ctx.byName.values()]
  return {
    dataDir: ImageLayout.dataDir,
    bind: ctx.podEnv["CORE_BIND"],
    depDir: `${appDir}/.dep`,
    serviceDir: `${appDir}/services/${service.spec.name}`,
    env: ctx.podEnv,
    ports: service.manifest.ports ?? {},
    servicePorts: Object.fromEntries(manifests.map((other) => [other.spec.name, other.manifest.ports ?? {}])),
    binaries: new Set(manifests.flatMap((other) => Object.keys(other.manifest.binaries ?? {})))
  }
}

interface Probes {
  readonly readiness?: K8sProbe
  readonly liveness?: K8sProbe
  readonly startup?: K8sProbe
}

/**
 * The names the container gives its ports: the manifest's, or in a pod of several services a name unique in
 * the pod (a Service selects a port by name across the whole pod): `<service>-<port>` where a name is taken
 * twice, or none (then probes and Services use the number) when that is not a valid port name.
 */
type PortNames = Readonly<Record<string, string | undefined>>

const ownPortNames = (service: K8sService): PortNames =>
  Object.fromEntries(Object.keys(service.manifest.ports ?? {}).map((name) => [name, name]))

const podPortNames = (services: ReadonlyArray<K8sService>): ReadonlyMap<string, PortNames> => {
  const count = new Map<string, number>()
  for (const service of services) {
    for (const name of Object.keys(service.manifest.ports ?? {})) count.set(name, (count.get(name) ?? 0) + 1)
  }
  return new Map(
    services.map((service) => [
      service.spec.name as string,
      Object.fromEntries(
        Object.keys(service.manifest.ports ?? {}).map((name) => {
          if (count.get(name) === 1) return [name, name]
          const unique = `${service.spec.name}-${name}`
          return [name, invalidPortName(unique) === undefined ? unique : undefined]
        })
      )
    ])
  )
}

/** The named ports of a container, by the names it gives them (unnamed ones left out). */
const namedPorts = (service: K8sService, names: PortNames): Record<string, number> =>
  Object.fromEntries(
    Object.entries(service.manifest.ports ?? {}).flatMap(([name, port]) =>
      names[name] === undefined ? [] : [[names[name]!, port] as const]
    )
  )

const probesOf = (ctx: Context, service: K8sService, names: PortNames, notes: Array<string>): Probes => {
  const compose = service.manifest.process.compose ?? {}
  const probeContext = {
    file: service.file,
    placeholders: placeholderContext(ctx, service),
    appDir: ImageLayout.appDir,
    workingDir: compose.working_dir,
    ports: namedPorts(service, names)
  }
  const map = (kind: "readiness_probe" | "liveness_probe") => {
    const raw = compose[kind]
    if (raw === undefined) return undefined
    const mapped = mapProbe(raw, `process.compose.${kind}`, probeContext, { liveness: kind === "liveness_probe" })
    if (Either.isLeft(mapped)) {
      ctx.problems.push(...mapped.left)
      return undefined
    }
    notes.push(...mapped.right.notes)
    return mapped.right.probe
  }
  const readiness = map("readiness_probe")
  const liveness = map("liveness_probe")
  return {
    ...(readiness !== undefined && {
      readiness,
      startup: startupProbe(readiness, service.spec.readinessTimeoutMs / 1000)
    }),
    ...(liveness !== undefined && { liveness })
  }
}

const resources = (hints: Deploy) => {
  const memory = `${hints.memory_mb ?? K8sDefaults.memoryMb}Mi`
  return { requests: { cpu: cpuQuantity(hints.cpus ?? K8sDefaults.cpus), memory }, limits: { memory } }
}

const containerSecurity = (readOnlyRoot: boolean) => ({
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: readOnlyRoot,
  capabilities: { drop: ["ALL"] }
})

const podSecurity = {
  runAsNonRoot: true,
  runAsUser: ImageLayout.uid,
  runAsGroup: ImageLayout.gid,
  fsGroup: ImageLayout.gid,
  seccompProfile: { type: "RuntimeDefault" }
}

const restartNotes = (service: K8sService): ReadonlyArray<string> => {
  const policy = service.spec.restart.policy
  if (policy === "no") {
    return [
      'availability.restart "no": core does not restart the process inside the pod, but the kubelet restarts a container whenever it ends, and its liveness probe (if any) restarts it too'
    ]
  }
  return []
}

/** The volumes a service's container mounts: name → mount path. */
const mountsOf = (needsData: boolean, readOnlyRoot: boolean, state: string) => [
  ...(needsData ? [{ name: "data", mountPath: ImageLayout.dataDir }] : []),
  { name: state, mountPath: `${ImageLayout.appDir}/.core-stack` },
  ...(readOnlyRoot ? [{ name: "tmp", mountPath: "/tmp" }] : [])
]

/** The container that runs `core <service> run --no-deps`, and what it mounts. */
const serviceContainer = (
  ctx: Context,
  service: K8sService,
  stateVolume: string,
  names: PortNames = ownPortNames(service)
): Built<Record<string, unknown>> => {
  const name = service.spec.name
  const notes: Array<string> = [...restartNotes(service)]
  const hints = hintsOf(service.manifest)
  const readOnlyRoot = hints.read_only_root === true
  const probes = probesOf(ctx, service, names, notes)
  const ports = Object.entries(service.manifest.ports ?? {})
  for (const [portName, port] of ports) {
    const why = invalidPortName(portName)
    if (why !== undefined)
      ctx.problems.push({ step: "deploy-k8s", file: service.file, path: formatPath(["ports", portName]), message: why })
    if (port < 1024) notes.push(`ports.${portName} is ${port}: a non-root container cannot listen below 1024`)
  }
  const env = secretEnv(ctx.env, name)
  return {
    value: {
      name,
      image: ctx.options.image,
      args: [...ImageLayout.core, name, "run", "--no-deps"],
      workingDir: ImageLayout.appDir,
      ...(ports.length > 0 && {
        ports: ports.map(([portName, port]) => ({
          ...(names[portName] !== undefined && { name: names[portName] }),
          containerPort: port,
          protocol: "TCP"
        }))
      }),
      envFrom: [{ configMapRef: { name: configMapName } }],
      ...(env.length > 0 && { env }),
      resources: resources(hints),
      securityContext: containerSecurity(readOnlyRoot),
      ...(probes.startup !== undefined && { startupProbe: probes.startup }),
      ...(probes.readiness !== undefined && { readinessProbe: probes.readiness }),
      ...(probes.liveness !== undefined && { livenessProbe: probes.liveness }),
      volumeMounts: mountsOf(usesDataDir(service.manifest), readOnlyRoot, stateVolume)
    },
    notes
  }
}

/** The pod's own volumes besides the data claim: emptyDirs for core's state and, where needed, /tmp. */
const emptyDirs = (names: ReadonlyArray<string>) => names.map((name) => ({ name, emptyDir: {} }))

const graceSeconds = (services: ReadonlyArray<K8sService>): number =>
  services.reduce((sum, service) => sum + wholeSeconds(service.spec.shutdown.timeoutMs / 1000, 0), 0) +
  K8sDefaults.graceMarginSeconds

const dataClaim = {
  metadata: { name: "data" },
  spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: K8sDefaults.storage } } }
}

/** A Deployment, or a StatefulSet with the data claim when `withData` (governed by the Service `serviceName`). */
const workload = (name: string, withData: boolean, podSpec: Record<string, unknown>, serviceName = name) => {
  const template = { metadata: { labels: labels(name) }, spec: podSpec }
  return withData
    ? {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        metadata: { name, labels: labels(name) },
        spec: {
          serviceName,
          replicas: 1,
          selector: { matchLabels: selector(name) },
          template,
          volumeClaimTemplates: [dataClaim]
        }
      }
    : {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, labels: labels(name) },
        spec: { replicas: 1, selector: { matchLabels: selector(name) }, template }
      }
}

/** A ClusterIP Service of the pods `podName`, the ports by their manifest names, each to the container's port. */
const serviceObject = (
  name: string,
  podName: string,
  ports: ReadonlyArray<readonly [string, number]>,
  names: PortNames
) => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, labels: labels(name) },
  spec: {
    type: "ClusterIP",
    selector: selector(podName),
    ports: ports.map(([portName, port]) => ({
      name: portName,
      port,
      targetPort: names[portName] ?? port,
      protocol: "TCP"
    }))
  }
})

const ingressObject = (ctx: Context, service: string, port: string) => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "Ingress",
  metadata: { name: service, labels: labels(service) },
  spec: {
    rules: [
      {
        host: ctx.options.host,
        http: {
          paths: [{ path: "/", pathType: "Prefix", backend: { service: { name: service, port: { name: port } } } }]
        }
      }
    ]
  }
})

const podBasics = (terminationGracePeriodSeconds: number) => ({
  automountServiceAccountToken: false,
  enableServiceLinks: false,
  terminationGracePeriodSeconds,
  securityContext: podSecurity
})

// ---------------------------------------------------------------------------------------------
// dependencies

const conditionPath = (dependency: string) => `process.compose.depends_on.${dependency}.condition`

/** The problem of a condition that cannot map to Kubernetes, or undefined. */
const unmappable = (condition: DependencyCondition): string | undefined => {
  if (condition === "process_completed" || condition === "process_completed_successfully") {
    return `${condition}: Kubernetes has no equivalent of a service that runs to completion before its dependents start (run it as a Job, or as an init container of your own, and drop the dependency)`
  }
  return undefined
}

/** The init containers of a split-mode pod: one `core stack wait DEP` per `process_healthy` dependency. */
const waitContainers = (ctx: Context, service: K8sService, notes: Array<string>) =>
  service.spec.dependsOn.flatMap(({ name: dependency, condition }) => {
    const why = unmappable(condition)
    if (why !== undefined) {
      ctx.problems.push({ step: "deploy-k8s", file: service.file, path: conditionPath(dependency), message: why })
      return []
    }
    const target = ctx.byName.get(dependency)
    if (target === undefined) return []
    if (condition === "process_started") {
      notes.push(
        `depends_on.${dependency} process_started: pods start independently; ${service.spec.name} must retry until ${dependency} answers (its restart policy does)`
      )
      return []
    }
    const readiness = target.manifest.process.compose?.readiness_probe
    const problem = (message: string) => {
      ctx.problems.push({ step: "deploy-k8s", file: service.file, path: conditionPath(dependency), message })
      return []
    }
    if (condition === "process_log_ready") {
      if (readiness === undefined || readiness.exec !== undefined) {
        return problem(
          `process_log_ready: a pod cannot read another pod's output, and "${dependency}" has no http_get or tcp readiness probe to wait for instead; give it one, or use --mode pod`
        )
      }
      notes.push(
        `depends_on.${dependency} process_log_ready: a pod cannot read another pod's output; ${dependency}'s readiness probe is waited for instead`
      )
    }
    if (readiness === undefined) {
      notes.push(
        `depends_on.${dependency} process_healthy: ${dependency} has no readiness probe, so nothing is waited for (as in core)`
      )
      return []
    }
    if (readiness.exec !== undefined) {
      return problem(
        `process_healthy: the readiness probe of "${dependency}" is an exec probe, which runs inside its own pod and cannot be checked from another; give it an http_get or tcp probe, or use --mode pod`
      )
    }
    return [
      {
        name: `wait-${dependency}`,
        image: ctx.options.image,
        args: [...ImageLayout.core, "stack", "wait", dependency, "--timeout", String(K8sDefaults.waitTimeoutSeconds)],
        workingDir: ImageLayout.appDir,
        envFrom: [{ configMapRef: { name: configMapName } }],
        ...(ctx.env.secrets.length > 0 && { env: secretEnv(ctx.env, undefined) }),
        resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { memory: "256Mi" } },
        securityContext: containerSecurity(true)
      }
    ]
  })

// ---------------------------------------------------------------------------------------------
// the files

const namespaceFile = (ctx: Context): GeneratedFile =>
  yamlFile("namespace.yaml", [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ctx.options.namespace, labels: { "app.kubernetes.io/part-of": "core" } }
    }
  ])

const configFile = (ctx: Context): GeneratedFile =>
  yamlFile("config.yaml", [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: configMapName,
        labels: { "app.kubernetes.io/part-of": "core", "app.kubernetes.io/managed-by": "core" }
      },
      data: Object.fromEntries(
        [...Object.entries(ctx.podEnv), ...ctx.env.defaults].sort(([a], [b]) => (a < b ? -1 : 1))
      )
    }
  ])

const kustomizationFile = (ctx: Context, resources: ReadonlyArray<string>): GeneratedFile =>
  yamlFile("kustomization.yaml", [
    {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      namespace: ctx.options.namespace,
      resources,
      ...(ctx.env.secrets.length > 0 && { secretGenerator: [{ name: secretName, envs: ["secret.env"] }] })
    }
  ])

const secretFiles = (ctx: Context): ReadonlyArray<GeneratedFile> =>
  ctx.env.secrets.length === 0
    ? []
    : [
        {
          path: "secret.env.example",
          content: [
            "# The secrets of the stack: every ${env.NAME} without a default in services/*/service.json.",
            "# Copy to secret.env (never committed), give each a value; kustomize makes the Secret core-secrets of it.",
            ...ctx.env.secrets.map((name) => `${name}=`),
            ""
          ].join("\n")
        },
        { path: ".gitignore", content: "secret.env\n" }
      ]

/** The public entry: `[service, port name]`, or undefined when no manifest declares one (not an error here). */
const publicPortOf = (ctx: Context, stack: StackSpec): readonly [string, string] | undefined => {
  if (!stack.services.some((service) => service.deploy.public !== undefined)) return undefined
  const entry = publicEntry(stack, "deploy-k8s")
  if (Either.isLeft(entry)) {
    ctx.problems.push(...entry.left)
    return undefined
  }
  return [entry.right.service.name, entry.right.portName]
}

const splitFiles = (ctx: Context, services: ReadonlyArray<K8sService>, notes: Array<string>) => {
  const files: Array<GeneratedFile> = []
  for (const service of services) {
    const name = service.spec.name
    const own: Array<string> = []
    const container = serviceContainer(ctx, service, "state")
    own.push(...container.notes)
    const waits = waitContainers(ctx, service, own)
    const usesData = usesDataDir(service.manifest)
    const readOnlyRoot = hintsOf(service.manifest).read_only_root === true
    const podSpec = {
      ...podBasics(graceSeconds([service])),
      ...(waits.length > 0 && { initContainers: waits }),
      containers: [container.value],
      volumes: emptyDirs(readOnlyRoot ? ["state", "tmp"] : ["state"])
    }
    const ports = Object.entries(service.manifest.ports ?? {})
    const objects: Array<unknown> = [workload(name, usesData, podSpec)]
    if (ports.length > 0) objects.push(serviceObject(name, name, ports, ownPortNames(service)))
    files.push(yamlFile(`${name}.yaml`, objects, own))
    notes.push(...own.map((note) => `${service.file}: ${note}`))
  }
  return files
}

const podFiles = (
  ctx: Context,
  services: ReadonlyArray<K8sService>,
  publicPort: readonly [string, string] | undefined,
  notes: Array<string>
) => {
  const name = "core"
  const own: Array<string> = []
  const nodes = services.map((service) => ({ name: service.spec.name as string, dependsOn: service.spec.dependsOn }))
  const order = topologicalOrder(nodes)
  const dependedOn = new Set(
    services.flatMap((service) => service.spec.dependsOn.map((dependency) => dependency.name as string))
  )
  const waitsForLog = new Set<string>()
  for (const service of services) {
    for (const { name: dependency, condition } of service.spec.dependsOn) {
      const why = unmappable(condition)
      if (why !== undefined)
        ctx.problems.push({ step: "deploy-k8s", file: service.file, path: conditionPath(dependency), message: why })
      if (condition === "process_log_ready") waitsForLog.add(dependency)
    }
  }
  const portNames = podPortNames(services)
  const sidecars: Array<unknown> = []
  const containers: Array<unknown> = []
  const volumes: Array<string> = []
  for (const serviceName of order) {
    const service = ctx.byName.get(serviceName)!
    const state = `state-${serviceName}`
    const built = serviceContainer(ctx, service, state, portNames.get(serviceName)!)
    const note = (text: string) => {
      own.push(`${serviceName}: ${text}`)
      notes.push(`${service.file}: ${text}`)
    }
    for (const text of built.notes) note(text)
    let container = built.value
    const readOnlyRoot = hintsOf(service.manifest).read_only_root === true
    volumes.push(state)
    if (readOnlyRoot && !volumes.includes("tmp")) volumes.push("tmp")
    if (waitsForLog.has(serviceName)) {
      const pattern = service.spec.readyLogLine
      if (pattern === undefined) {
        ctx.problems.push({
          step: "deploy-k8s",
          file: service.file,
          path: "process.compose.ready_log_line",
          message: "a dependent waits for process_log_ready, but this service has no ready_log_line"
        })
      } else if (container["startupProbe"] !== undefined) {
        note("its dependents wait for its readiness probe, not its ready_log_line")
      } else {
        container = {
          ...container,
          startupProbe: logLineProbe(serviceName, pattern, service.spec.readinessTimeoutMs / 1000)
        }
      }
    }
    if (dependedOn.has(serviceName)) sidecars.push({ ...container, restartPolicy: "Always" })
    else containers.push(container)
  }
  const usesData = services.some((service) => usesDataDir(service.manifest))
  const podSpec = {
    ...podBasics(graceSeconds(services)),
    ...(sidecars.length > 0 && { initContainers: sidecars }),
    containers,
    volumes: emptyDirs(volumes)
  }
  const objects: Array<unknown> = [workload(name, usesData, podSpec, publicPort?.[0])]
  if (publicPort !== undefined) {
    const service = ctx.byName.get(publicPort[0])!
    const port = service.manifest.ports![publicPort[1]]!
    objects.push(serviceObject(publicPort[0], name, [[publicPort[1], port]], portNames.get(publicPort[0])!))
  }
  return [yamlFile("stack.yaml", objects, own)]
}

/** The startup probe of a sidecar whose dependents wait for its log line: the line in core's log file. */
const logLineProbe = (service: string, pattern: string, timeoutSeconds: number): K8sProbe => ({
  exec: {
    command: [
      "node",
      "-e",
      'const [p, f] = process.argv.slice(1); const r = new RegExp(p); process.exit(require("fs").readFileSync(f, "utf8").split("\\n").some((l) => r.test(l)) ? 0 : 1)',
      pattern,
      `${ImageLayout.appDir}/.core-stack/logs/${service}.log`
    ]
  },
  periodSeconds: 1,
  timeoutSeconds: 5,
  successThreshold: 1,
  failureThreshold: wholeSeconds(timeoutSeconds, 1)
})

/**
 * The kustomize base for `stack`, loaded portably (disabled services are left out). Fails with every problem
 * found, each naming its manifest and JSON path.
 */
export const generateK8s = (
  stack: StackSpec,
  options: K8sOptions
): Either.Either<K8sResult, ReadonlyArray<Problem>> => {
  const all: ReadonlyArray<K8sService> = stack.services.map((spec) => ({
    spec,
    manifest: spec.manifest,
    file: manifestFile(stack, spec)
  }))
  const services = all.filter((service) => !service.spec.disabled).sort((a, b) => (a.spec.name < b.spec.name ? -1 : 1))
  const env = stackEnv(stack)
  const podEnv: Record<string, string> = { CORE_BIND: "0.0.0.0", CORE_DATA_DIR: ImageLayout.dataDir }
  if (options.mode === "split")
    for (const service of services) podEnv[hostVariable(service.spec.name)] = service.spec.name
  const ctx: Context = {
    options,
    env,
    byName: new Map(services.map((service) => [service.spec.name as string, service])),
    problems: [],
    podEnv
  }
  const notes: Array<string> = [...env.notes]
  for (const service of all) {
    if (service.spec.disabled) notes.push(`${service.file}: disabled, not deployed`)
  }
  for (const service of services) {
    const why = invalidServiceName(service.spec.name)
    if (why !== undefined) ctx.problems.push({ step: "deploy-k8s", file: service.file, path: "", message: why })
  }
  const entry = publicPortOf(ctx, stack)
  const serviceFiles =
    options.mode === "split" ? splitFiles(ctx, services, notes) : podFiles(ctx, services, entry, notes)
  if (entry === undefined)
    notes.push("no service declares deploy.public: no Ingress, nothing is reachable from outside the cluster")
  const ingress = entry === undefined ? [] : [yamlFile("ingress.yaml", [ingressObject(ctx, entry[0], entry[1])])]
  if (ctx.problems.length > 0) return Either.left(ctx.problems)
  const resources = [
    "namespace.yaml",
    "config.yaml",
    ...serviceFiles.map((file) => file.path),
    ...ingress.map((file) => file.path)
  ]
  const files = [
    kustomizationFile(ctx, resources),
    namespaceFile(ctx),
    configFile(ctx),
    ...serviceFiles,
    ...ingress,
    ...secretFiles(ctx)
  ]
  return Either.right({ files, notes, secrets: env.secrets })
}
