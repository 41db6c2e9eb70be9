/**
 * A service's `depends_on` in Kubernetes. In split mode each `process_healthy` dependency becomes an init
 * container that runs `core stack wait DEP` (the dependency's readiness probe against its Service); pods start
 * independently otherwise. The conditions of a service that runs to completion have no equivalent in either
 * mode and are reported.
 */
import type { DependencyCondition } from "../manifest/ServiceManifest.js"
import { ImageLayout } from "./ImageLayout.js"
import type { K8sContext, K8sService } from "./K8sContext.js"
import { containerSecurity } from "./K8sObjects.js"
import { configMapName, K8sDefaults } from "./K8sOptions.js"
import { secretEnv } from "./K8sStackEnv.js"

const conditionPath = (dependency: string) => `process.compose.depends_on.${dependency}.condition`

/** The problem of a condition that cannot map to Kubernetes, or undefined. */
const unmappable = (condition: DependencyCondition): string | undefined => {
  if (condition === "process_completed" || condition === "process_completed_successfully") {
    return `${condition}: Kubernetes has no equivalent of a service that runs to completion before its dependents start (run it as a Job, or as an init container of your own, and drop the dependency)`
  }
  return undefined
}

/** Reports the dependency of `service` on `dependency` when its condition cannot map; whether it did. */
export const reportUnmappable = (
  ctx: K8sContext,
  service: K8sService,
  dependency: string,
  condition: DependencyCondition
): boolean => {
  const why = unmappable(condition)
  if (why !== undefined)
    ctx.problems.push({ step: "deploy-k8s", file: service.file, path: conditionPath(dependency), message: why })
  return why !== undefined
}

/** The init containers of a split-mode pod: one `core stack wait DEP` per `process_healthy` dependency. */
export const waitContainers = (ctx: K8sContext, service: K8sService, notes: Array<string>) =>
  service.spec.dependsOn.flatMap(({ name: dependency, condition }) => {
    if (reportUnmappable(ctx, service, dependency, condition)) return []
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
