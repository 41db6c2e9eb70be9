/**
 * `core deploy fly`: the files that run a stack on one Fly.io machine, under `core stack up`.
 *
 * - `Dockerfile` and `.dockerignore` (`FlyDockerfile`): the one image, built with the binaries the manifests
 *   pin; the same image serves Kubernetes.
 * - `fly.toml` (`FlyToml`): flyctl's app configuration, the public entry as `[http_service]`.
 * - `SECRETS.md` (`FlySecrets`): every variable read without a default (a secret), where it is read, and how
 *   to set it.
 *
 * Pure: the same stack and options give the same bytes. Nothing from `.env` or the environment is written:
 * the only values come from the manifests and the options.
 */
import { Either } from "effect"
import { ManifestError, type Problem } from "../manifest/ManifestError.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import { FlyDefaults, type FlyOptions } from "./FlyDefaults.js"
import { renderDockerfile, renderDockerignore } from "./FlyDockerfile.js"
import { binaryProblems, entryProblems, flyProblem, flyStep, optionProblems } from "./FlyProblems.js"
import { renderSecrets, secretsCommand } from "./FlySecrets.js"
import { type FlyChecks, longestShutdownMs, noChecks, renderChecks, renderFlyToml } from "./FlyToml.js"
import type { GeneratedFile } from "./GeneratedFile.js"
import { manifestFile, publicEntry } from "./PublicEntry.js"
import { stackVariables } from "./StackVariables.js"

/** What `core deploy fly` writes and prints. */
export interface FlyDeployment {
  readonly files: ReadonlyArray<GeneratedFile>
  /** Names of the secrets, sorted. */
  readonly secrets: ReadonlyArray<string>
  /** The `fly secrets set` line to run, with the names only (each value read from a shell variable). */
  readonly secretsCommand: string | undefined
  /** Seconds written as `kill_timeout`. */
  readonly killTimeoutSeconds: number
}

/** The default app name for a stack directory: its folder name as a Fly app name. */
export const defaultAppName = (stackDir: string): string => {
  const base =
    stackDir
      .split("/")
      .filter((part) => part !== "")
      .pop() ?? ""
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
  return name === "" ? "core-stack" : name
}

/**
 * The files of `core deploy fly` for `stack`, or a `ManifestError` listing why it cannot be deployed this way
 * (no or two public entries, a binary the image cannot provision, a public entry not on `${bind}`, a port
 * taken from the public entry, a readiness probe Fly cannot run, a shutdown longer than Fly waits).
 */
export const flyDeployment = (stack: StackSpec, options: FlyOptions): Either.Either<FlyDeployment, ManifestError> => {
  const problems: Array<Problem> = [...optionProblems(options), ...binaryProblems(stack)]
  const entry = publicEntry(stack, flyStep)
  if (Either.isLeft(entry)) problems.push(...entry.left)
  let checks: FlyChecks = noChecks
  if (Either.isRight(entry)) {
    problems.push(...entryProblems(stack, entry.right))
    const rendered = renderChecks(entry.right)
    if (Either.isRight(rendered)) checks = rendered.right
    else problems.push({ ...rendered.left, file: manifestFile(stack, entry.right.service) })
  }
  const shutdownMs = longestShutdownMs(stack.services)
  const killTimeoutSeconds = Math.ceil(shutdownMs / 1000) + FlyDefaults.killMarginSeconds
  if (killTimeoutSeconds > FlyDefaults.maxKillTimeoutSeconds) {
    problems.push(
      flyProblem(
        "services/",
        "",
        `the stack's graceful shutdown takes up to ${Math.ceil(shutdownMs / 1000)} s (dependents first); core writes a kill_timeout of at most ${FlyDefaults.maxKillTimeoutSeconds} s: shorten process.compose.shutdown.timeout_seconds`
      )
    )
  }
  if (problems.length > 0 || Either.isLeft(entry)) return Either.left(new ManifestError({ problems }))

  const variables = stackVariables(stack)
  const secrets = variables.secrets.map((secret) => secret.name)
  const command = secretsCommand(options, secrets)
  const dockerignore = renderDockerignore()
  const flyToml = renderFlyToml({
    stack,
    options,
    entry: entry.right,
    variables,
    checks,
    killTimeoutSeconds,
    shutdownMs
  })
  return Either.right({
    files: [
      { path: ".dockerignore", content: dockerignore },
      { path: "Dockerfile", content: renderDockerfile() },
      { path: "Dockerfile.dockerignore", content: dockerignore },
      { path: "SECRETS.md", content: renderSecrets(options, variables, command) },
      { path: "fly.toml", content: flyToml }
    ],
    secrets,
    secretsCommand: command,
    killTimeoutSeconds
  })
}
