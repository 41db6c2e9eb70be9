/**
 * Why a stack cannot run on Fly.io as `core deploy fly` writes it, each problem located in its manifest (or
 * the option): an app name or region flyctl refuses, a binary the image cannot provision, a public entry
 * that does not listen on `${bind}` or whose port another service takes.
 */
import type { Problem } from "../manifest/ManifestError.js"
import { placeholdersIn } from "../manifest/Placeholders.js"
import type { StackSpec } from "../manifest/ServiceSpec.js"
import type { FlyOptions } from "./FlyDefaults.js"
import { manifestFile, type PublicEntry } from "./PublicEntry.js"

/** The step that `core deploy fly`'s problems name. */
export const flyStep = "deploy-fly"

export const flyProblem = (file: string, path: string, message: string): Problem => ({
  step: flyStep,
  file,
  path,
  message
})

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const REGION = /^[a-z]{3}$/

/** An app name or a region that flyctl would refuse. */
export const optionProblems = (options: FlyOptions): ReadonlyArray<Problem> => [
  ...(APP_NAME.test(options.app)
    ? []
    : [
        flyProblem(
          "",
          "--app",
          `"${options.app}" is not a Fly app name (lowercase letters, digits and '-', at most 63)`
        )
      ]),
  ...(REGION.test(options.region)
    ? []
    : [flyProblem("", "--region", `"${options.region}" is not a Fly region code (three lowercase letters, e.g. iad)`)])
]

/** Binaries the image cannot provision: its build stage has no binary on PATH, only downloads and Go builds. */
export const binaryProblems = (stack: StackSpec): ReadonlyArray<Problem> =>
  stack.services.flatMap((service) =>
    Object.entries(service.binaries)
      .filter(([, binary]) => binary.download === undefined && binary.build === undefined)
      .map(([name]) =>
        flyProblem(
          manifestFile(stack, service),
          `binaries.${name}`,
          "the image provisions every binary in its build stage, where nothing is on PATH: give a download or a build"
        )
      )
  )

/** The public entry must listen on `${bind}` (all interfaces on Fly), and nothing else may take its port. */
export const entryProblems = (stack: StackSpec, entry: PublicEntry): ReadonlyArray<Problem> => {
  const file = manifestFile(stack, entry.service)
  const process = entry.service.manifest.process
  const texts = [process.command, ...(process.args ?? []), ...Object.values(process.env ?? {})]
  const listensOnBind = texts.some((text) => placeholdersIn(text).includes("bind"))
  const problems: Array<Problem> = []
  if (!listensOnBind) {
    problems.push(
      flyProblem(
        file,
        "process",
        `the public entry must listen on \${bind} (in its args or env): Fly's proxy reaches port ${entry.port} on the machine's own address, not on loopback`
      )
    )
  }
  for (const service of stack.services) {
    for (const [name, port] of Object.entries(service.ports)) {
      if (port !== entry.port || (service === entry.service && name === entry.portName)) continue
      problems.push(
        flyProblem(
          manifestFile(stack, service),
          `ports.${name}`,
          `port ${port} is the public entry's (${entry.service.name} ports.${entry.portName}), which listens on 0.0.0.0`
        )
      )
    }
  }
  return problems
}
