/**
 * The files of the kustomize base that do not belong to one service: `kustomization.yaml`, the Namespace,
 * the ConfigMap of the pods' environment, and the example of the secrets file kustomize makes the Secret of.
 */
import type { GeneratedFile } from "./GeneratedFile.js"
import type { K8sContext } from "./K8sContext.js"
import { configMapName, secretName } from "./K8sOptions.js"
import { yamlFile } from "./K8sYamlFile.js"

export const namespaceFile = (ctx: K8sContext): GeneratedFile =>
  yamlFile("namespace.yaml", [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ctx.options.namespace, labels: { "app.kubernetes.io/part-of": "core" } }
    }
  ])

/** The ConfigMap: the pods' own settings and the manifests' agreed defaults, sorted by name. */
export const configFile = (ctx: K8sContext): GeneratedFile =>
  yamlFile("config.yaml", [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: configMapName,
        labels: { "app.kubernetes.io/part-of": "core", "app.kubernetes.io/managed-by": "core" }
      },
      // the pods' own settings stand over a manifest's default for the same variable (CORE_BIND 127.0.0.1 made
      // every pod unreachable, CORE_DATA_DIR one outside the volume lost the data)
      data: Object.fromEntries(
        [...ctx.env.defaults.filter(([name]) => !Object.hasOwn(ctx.podEnv, name)), ...Object.entries(ctx.podEnv)].sort(
          ([a], [b]) => (a < b ? -1 : 1)
        )
      )
    }
  ])

/** `kustomization.yaml`: the namespace, the `resources` in order, the Secret's generator when there are secrets. */
export const kustomizationFile = (ctx: K8sContext, resources: ReadonlyArray<string>): GeneratedFile =>
  yamlFile("kustomization.yaml", [
    {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      namespace: ctx.options.namespace,
      resources,
      ...(ctx.env.secrets.length > 0 && { secretGenerator: [{ name: secretName, envs: ["secret.env"] }] })
    }
  ])

/** `secret.env.example` and the `.gitignore` that keeps `secret.env` out of git, when the stack has secrets. */
export const secretFiles = (ctx: K8sContext): ReadonlyArray<GeneratedFile> =>
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
