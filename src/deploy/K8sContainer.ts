/**
 * A service's own container: it runs `core <service> run --no-deps` in the deployment's image, with the
 * service's ports, its probes mapped one to one (and a startup probe for the readiness timeout), its
 * resources and the volumes it mounts.
 */
import { Either } from "effect"
import { formatPath } from "../manifest/ManifestError.js"
import { usesDataDir } from "../manifest/EnvReferences.js"
import { ImageLayout } from "./ImageLayout.js"
import { type Built, hintsOf, type K8sContext, type K8sService, placeholderContext } from "./K8sContext.js"
import { containerSecurity, resources } from "./K8sObjects.js"
import { configMapName } from "./K8sOptions.js"
import { invalidPortName, namedPorts, ownPortNames, type PortNames } from "./K8sPortNames.js"
import { type K8sProbe, mapProbe, startupProbe } from "./K8sProbes.js"
import { secretEnv } from "./K8sStackEnv.js"

interface Probes {
  readonly readiness?: K8sProbe
  readonly liveness?: K8sProbe
  readonly startup?: K8sProbe
}

const probesOf = (ctx: K8sContext, service: K8sService, names: PortNames, notes: Array<string>): Probes => {
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
  { name: state, mountPath: ImageLayout.stateVolume },
  ...(readOnlyRoot ? [{ name: "tmp", mountPath: "/tmp" }] : [])
]

/** The container that runs `core <service> run --no-deps`, and what it mounts. */
export const serviceContainer = (
  ctx: K8sContext,
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
