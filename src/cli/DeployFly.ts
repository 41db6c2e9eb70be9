/**
 * `core deploy fly [--app NAME] [--region R] [--out DIR] [--dir PATH]`: writes the Dockerfile, .dockerignore,
 * fly.toml and SECRETS.md that run the stack on one Fly.io machine (default into `deploy/fly/` of the stack
 * directory), and prints the `fly secrets set` line with the secrets' names.
 */
import { Command, Options } from "@effect/cli"
import { Path } from "@effect/platform"
import { Console, Effect, Option } from "effect"
import { FlyDefaults } from "../deploy/FlyDefaults.js"
import { defaultAppName, flyDeployment } from "../deploy/FlyDeploy.js"
import { loadStack } from "../manifest/StackLoader.js"
import { dirOption } from "./CliOptions.js"
import { writeGeneratedFiles } from "./WriteFiles.js"

const app = Options.text("app").pipe(
  Options.withDescription("Fly app name (default: the stack directory's name)"),
  Options.optional
)
const region = Options.text("region").pipe(
  Options.withDescription(`primary region (default: ${FlyDefaults.region})`),
  Options.withDefault(FlyDefaults.region)
)
const out = Options.text("out").pipe(
  Options.withDescription("output directory (default: deploy/fly in the stack directory)"),
  Options.optional
)

export const deployFlyCommand = Command.make("fly", { app, region, out, dir: dirOption }, ({ app, region, out, dir }) =>
  Effect.gen(function* () {
    const path = yield* Path.Path
    const stackDir = dir
    // read as the machine will: without this one's variables or .env, so that no local value (a port
    // override, a host, a secret) shapes or enters the files
    const stack = yield* loadStack(stackDir, { env: { PATH: process.env.PATH }, portable: true })
    const deployment = yield* flyDeployment(stack, {
      app: Option.getOrElse(app, () => defaultAppName(stackDir)),
      region
    })
    const outDir = Option.match(out, {
      onNone: () => path.join(stackDir, "deploy", "fly"),
      onSome: (given) => path.resolve(given)
    })
    const written = yield* writeGeneratedFiles(outDir, deployment.files)
    for (const file of written) yield* Console.log(path.relative(process.cwd(), file) || file)
    yield* Console.log(
      `kill_timeout ${deployment.killTimeoutSeconds} s (the stack's longest graceful shutdown, and 5 s)`
    )
    yield* Console.log(
      deployment.secretsCommand === undefined
        ? "no secrets to set"
        : `secrets (see SECRETS.md), with each value in a shell variable of its name:\n  ${deployment.secretsCommand}`
    )
  })
).pipe(Command.withDescription("Write deploy/fly: Dockerfile, .dockerignore, fly.toml, SECRETS.md"))
