/**
 * The choices of `core deploy k8s`: its options (the command's flags), the defaults of what the options and
 * the manifests do not say, and the names of the objects every container reads its environment from.
 */

/** `split`: a workload per service; `pod`: the whole stack in one pod (see `K8sManifests`). */
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
