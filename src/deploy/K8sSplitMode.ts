/**
 * `--mode split`: per service a file with a Deployment, or a StatefulSet with a volume claim template when it
 * uses `${data}`, and a ClusterIP Service with its named ports when it has any. The services reach each other
 * through their Services (`CORE_HOST_<NAME>` in the ConfigMap).
 */
import { usesDataDir } from "../manifest/EnvReferences.js"
import type { GeneratedFile } from "./GeneratedFile.js"
import { serviceContainer } from "./K8sContainer.js"
import { hintsOf, type K8sContext, type K8sService } from "./K8sContext.js"
import { waitContainers } from "./K8sDependencies.js"
import { emptyDirs, graceSeconds, podBasics, serviceObject, workload } from "./K8sObjects.js"
import { ownPortNames } from "./K8sPortNames.js"
import { yamlFile } from "./K8sYamlFile.js"

/** One `<service>.yaml` per service; its notes are added to `notes`, prefixed by the service's file. */
export const splitModeFiles = (
  ctx: K8sContext,
  services: ReadonlyArray<K8sService>,
  notes: Array<string>
): ReadonlyArray<GeneratedFile> => {
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
