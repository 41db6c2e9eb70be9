/**
 * `core deploy k8s [--out DIR] [--namespace NS] [--image IMAGE] [--mode split|pod] [--host HOST]`: write the
 * stack as a kustomize base (default `deploy/k8s/` of the stack directory), print what was written, what did
 * not map exactly, and how to provide the secrets.
 *
 * The stack is read as the pods will read it: without this machine's variables or `.env`. A `.yaml` file of
 * the output directory that an earlier run generated (it starts with the generator's header) and this run does
 * not is removed, so that a removed service leaves nothing behind; other files (`secret.env` above all) are
 * never touched.
 */
import { Command, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import { Console, Effect, Either, Option, Schema } from "effect"
import { generateK8s } from "../deploy/K8sManifests.js"
import { K8sDefaults, type K8sMode } from "../deploy/K8sOptions.js"
import { generatedHeader } from "../deploy/K8sYamlFile.js"
import { ManifestError } from "../manifest/ManifestError.js"
import { loadStack } from "../manifest/StackLoader.js"
import { dirOption } from "./CliOptions.js"
import { writeGeneratedFiles } from "./WriteFiles.js"

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
  Options.withDescription("output directory (default: deploy/k8s in the stack directory)"),
  Options.optional
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

/** Removes the `.yaml` files of `outDir` that an earlier run generated and `keep` does not hold. */
const removeStale = (outDir: string, keep: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const removed: Array<string> = []
    const names = yield* fs.readDirectory(outDir).pipe(Effect.orElseSucceed(() => []))
    for (const name of [...names].sort()) {
      if (keep.includes(name) || !name.endsWith(".yaml")) continue
      const text = yield* fs.readFileString(path.join(outDir, name)).pipe(Effect.orElseSucceed(() => ""))
      if (!text.startsWith(`# ${generatedHeader}`)) continue
      yield* fs.remove(path.join(outDir, name))
      removed.push(name)
    }
    return removed
  })

/** `core deploy k8s`. */
export const deployK8sCommand = Command.make(
  "k8s",
  { dir: dirOption, out, namespace, image, mode, host },
  ({ dir, out, namespace, image, mode, host }) =>
    Effect.gen(function* () {
      const path = yield* Path.Path
      const stack = yield* loadStack(dir, { env: { PATH: process.env.PATH }, portable: true })
      const generated = generateK8s(stack, { namespace, image, mode, host })
      if (Either.isLeft(generated)) return yield* new ManifestError({ problems: generated.left })
      const result = generated.right
      const outDir = Option.match(out, {
        onNone: () => path.join(dir, "deploy", "k8s"),
        onSome: (given) => path.resolve(given)
      })
      const removed = yield* removeStale(
        outDir,
        result.files.map((file) => file.path)
      )
      const written = yield* writeGeneratedFiles(outDir, result.files)
      const shown = (file: string) => path.relative(process.cwd(), file) || file
      for (const file of written) yield* Console.log(`wrote ${shown(file)}`)
      for (const file of removed) yield* Console.log(`removed ${shown(path.join(outDir, file))} (no longer generated)`)
      for (const note of result.notes) yield* Console.log(`note: ${note}`)
      if (result.secrets.length > 0) {
        yield* Console.log(
          `secrets (${result.secrets.join(", ")}): copy ${shown(path.join(outDir, "secret.env.example"))} to secret.env beside it and fill it in`
        )
      }
      yield* Console.log(`apply with: kubectl apply -k ${shown(outDir)}`)
    })
).pipe(Command.withDescription("Write the stack as a kustomize base for Kubernetes (see docs/DEPLOYMENT.md)"))
