/**
 * `core deploy k8s [--out DIR] [--namespace NS] [--image IMAGE] [--mode split|pod] [--host HOST]`: write the
 * stack as a kustomize base (default `deploy/k8s/`), print what was written, what did not map exactly, and
 * how to provide the secrets.
 */
import * as path from "node:path"
import { Command, Options } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { deployK8s } from "../app/DeployK8s.js"
import { K8sDefaults, type K8sMode } from "../deploy/K8sManifests.js"
import { resolveDirectory } from "../manifest/StackLoader.js"
import { dirOption } from "./CliOptions.js"

const DnsLabel = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, {
    message: () => "a namespace: lowercase letters, digits and '-', starting and ending with a letter or digit"
  }),
  Schema.maxLength(63)
)
const HostName = Schema.String.pipe(
  Schema.pattern(/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
    message: () => "a host name such as app.example.com (lowercase, no port, no scheme)"
  })
)
const ImageName = Schema.String.pipe(
  Schema.pattern(/^[^\s]+$/, { message: () => "an image reference without spaces, e.g. registry/core:1.0" })
)

const out = Options.text("out").pipe(
  Options.withDescription("output directory, relative to the stack directory"),
  Options.withDefault("deploy/k8s")
)
const namespace = Options.text("namespace").pipe(
  Options.withSchema(DnsLabel),
  Options.withDescription("namespace of every object"),
  Options.withDefault(K8sDefaults.namespace)
)
const image = Options.text("image").pipe(
  Options.withSchema(ImageName),
  Options.withDescription("the image built from the Dockerfile of `core deploy fly`"),
  Options.withDefault(K8sDefaults.image)
)
const mode = Options.choice("mode", ["split", "pod"] as const).pipe(
  Options.withDescription("split: a workload per service (default); pod: the whole stack in one pod"),
  Options.withDefault<K8sMode>(K8sDefaults.mode)
)
const host = Options.text("host").pipe(
  Options.withSchema(HostName),
  Options.withDescription("host of the Ingress rule of the public entry"),
  Options.withDefault(K8sDefaults.host)
)

/** `core deploy k8s`. */
export const deployK8sCommand = Command.make(
  "k8s",
  { dir: dirOption, out, namespace, image, mode, host },
  ({ dir, out, namespace, image, mode, host }) =>
    Effect.gen(function* () {
      const stackDir = yield* resolveDirectory(dir)
      const result = yield* deployK8s(stackDir, { out, namespace, image, mode, host })
      const relative = path.relative(process.cwd(), result.outDir)
      const shown = relative === "" ? "." : relative.startsWith("..") ? result.outDir : relative
      for (const file of result.files) yield* Console.log(`wrote ${path.join(shown, file.path)}`)
      for (const file of result.removed) yield* Console.log(`removed ${path.join(shown, file)} (no longer generated)`)
      for (const note of result.notes) yield* Console.log(`note: ${note}`)
      if (result.secrets.length > 0) {
        yield* Console.log(
          `secrets (${result.secrets.join(", ")}): copy ${path.join(shown, "secret.env.example")} to secret.env beside it and fill it in`
        )
      }
      yield* Console.log(`apply with: kubectl apply -k ${shown}`)
    })
).pipe(Command.withDescription("Write the stack as a kustomize base for Kubernetes (see docs/DEPLOYMENT.md)"))
