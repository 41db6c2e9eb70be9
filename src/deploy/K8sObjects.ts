/**
 * The Kubernetes objects of a deployment, as plain values ready for YAML: a service's workload (a Deployment,
 * or a StatefulSet with a data claim), its ClusterIP Service, the Ingress of the public entry, and the pieces
 * every pod and container shares (labels, security contexts, resources, volumes).
 */
import type { Deploy } from "../manifest/ServiceManifest.js"
import { ImageLayout } from "./ImageLayout.js"
import type { K8sService } from "./K8sContext.js"
import { K8sDefaults } from "./K8sOptions.js"
import type { PortNames } from "./K8sPortNames.js"
import { wholeSeconds } from "./K8sProbes.js"

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/

/**
 * Why `name` cannot name a Kubernetes Service (an RFC 1035 label) and the names made from it (`wait-<name>`,
 * `state-<name>`, 6 characters more, within the 63 of a label), or undefined.
 */
export const invalidServiceName = (name: string): string | undefined =>
  DNS_LABEL.test(name) && name.length <= 57
    ? undefined
    : `"${name}" cannot name a Kubernetes Service: at most 57 lowercase letters, digits and '-' (63 with the prefixes core adds), starting with a letter and not ending with '-'`

const labels = (name: string) => ({
  "app.kubernetes.io/name": name,
  "app.kubernetes.io/part-of": "core",
  "app.kubernetes.io/managed-by": "core"
})
const selector = (name: string) => ({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "core" })

const cpuQuantity = (cpus: number): string =>
  Number.isInteger(cpus) ? String(cpus) : `${Math.max(1, Math.round(cpus * 1000))}m`

/** A container's requests and memory limit, from the manifest's hints or the defaults. */
export const resources = (hints: Deploy) => {
  const memory = `${hints.memory_mb ?? K8sDefaults.memoryMb}Mi`
  return { requests: { cpu: cpuQuantity(hints.cpus ?? K8sDefaults.cpus), memory }, limits: { memory } }
}

export const containerSecurity = (readOnlyRoot: boolean) => ({
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

/** What every pod spec starts with. */
export const podBasics = (terminationGracePeriodSeconds: number) => ({
  automountServiceAccountToken: false,
  enableServiceLinks: false,
  terminationGracePeriodSeconds,
  securityContext: podSecurity
})

/** The pod's own volumes besides the data claim: emptyDirs for core's state and, where needed, /tmp. */
export const emptyDirs = (names: ReadonlyArray<string>) => names.map((name) => ({ name, emptyDir: {} }))

/** A pod's `terminationGracePeriodSeconds`: its services' shutdown timeouts, and core's own margin. */
export const graceSeconds = (services: ReadonlyArray<K8sService>): number =>
  services.reduce((sum, service) => sum + wholeSeconds(service.spec.shutdown.timeoutMs / 1000, 0), 0) +
  K8sDefaults.graceMarginSeconds

const dataClaim = {
  metadata: { name: "data" },
  spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: K8sDefaults.storage } } }
}

/** A Deployment, or a StatefulSet with the data claim when `withData` (governed by the Service `serviceName`). */
export const workload = (name: string, withData: boolean, podSpec: Record<string, unknown>, serviceName = name) => {
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
export const serviceObject = (
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

/** The Ingress that routes every path of `host` to the Service `service`'s port `port`. */
export const ingressObject = (host: string, service: string, port: string) => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "Ingress",
  metadata: { name: service, labels: labels(service) },
  spec: {
    rules: [
      {
        host,
        http: {
          paths: [{ path: "/", pathType: "Prefix", backend: { service: { name: service, port: { name: port } } } }]
        }
      }
    ]
  }
})
