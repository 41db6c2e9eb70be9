/**
 * `--mode pod`: the whole stack in one pod sharing localhost (`stack.yaml`). The services others depend on
 * are native sidecars (init containers with `restartPolicy: Always`) in dependency order, each gated by its
 * startup probe; the services nothing depends on are the pod's containers. Only the public entry gets a
 * Service.
 */
import { usesDataDir } from "../manifest/EnvReferences.js"
import { topologicalOrder } from "../stack/StackGraph.js"
import type { GeneratedFile } from "./GeneratedFile.js"
import { ImageLayout } from "./ImageLayout.js"
import { serviceContainer } from "./K8sContainer.js"
import { hintsOf, type K8sContext, type K8sService } from "./K8sContext.js"
import { reportUnmappable } from "./K8sDependencies.js"
import { emptyDirs, graceSeconds, podBasics, serviceObject, workload } from "./K8sObjects.js"
import { podPortNames } from "./K8sPortNames.js"
import { type K8sProbe, wholeSeconds } from "./K8sProbes.js"
import { yamlFile } from "./K8sYamlFile.js"

/** The startup probe of a sidecar whose dependents wait for its log line: the line in core's log file. */
const logLineProbe = (service: string, pattern: string, timeoutSeconds: number): K8sProbe => ({
  exec: {
    command: [
      "node",
      "-e",
      'const [p, f] = process.argv.slice(1); const r = new RegExp(p); process.exit(require("fs").readFileSync(f, "utf8").split("\\n").some((l) => r.test(l)) ? 0 : 1)',
      pattern,
      `${ImageLayout.stateDir}/logs/${service}.log`
    ]
  },
  periodSeconds: 1,
  timeoutSeconds: 5,
  successThreshold: 1,
  failureThreshold: wholeSeconds(timeoutSeconds, 1)
})

/**
 * `stack.yaml`: the pod's workload and, when there is a public entry (`[service, port name]`), its Service.
 * The notes are added to `notes`, prefixed by the service's file.
 */
export const podModeFiles = (
  ctx: K8sContext,
  services: ReadonlyArray<K8sService>,
  publicPort: readonly [string, string] | undefined,
  notes: Array<string>
): ReadonlyArray<GeneratedFile> => {
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
      reportUnmappable(ctx, service, dependency, condition)
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
