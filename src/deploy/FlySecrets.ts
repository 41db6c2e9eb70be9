/**
 * `SECRETS.md`: every variable a manifest reads without a default (a secret), where it is read, and the
 * `fly secrets set` line that sets them all, with the names only (each value read from a shell variable).
 */
import { type FlyOptions, flyHeader } from "./FlyDefaults.js"
import type { StackVariables } from "./StackVariables.js"

/** The `fly secrets set` line for `secrets`, or undefined when there is none. */
export const secretsCommand = (options: FlyOptions, secrets: ReadonlyArray<string>): string | undefined =>
  secrets.length === 0
    ? undefined
    : `fly secrets set --app ${options.app} ${secrets.map((name) => `${name}="$${name}"`).join(" ")}`

/** The page; `command` is `secretsCommand`'s line. */
export const renderSecrets = (options: FlyOptions, variables: StackVariables, command: string | undefined): string => {
  const lines = [
    "# Secrets",
    "",
    `<!-- ${flyHeader} -->`,
    "",
    "Every variable that a manifest reads as `${env.NAME}` without a default is a secret. Its value is never",
    "written into a generated file (nor taken from `.env`): set it on Fly, where the machine reads it as an",
    "environment variable."
  ]
  if (command === undefined) {
    return [...lines, "", `The stack reads no secret: app \`${options.app}\` needs no \`fly secrets set\`.`, ""].join(
      "\n"
    )
  }
  return [
    ...lines,
    "",
    "| name | read by |",
    "|---|---|",
    ...variables.secrets.map(
      (secret) =>
        `| \`${secret.name}\` | ${secret.uses.map((use) => `${use.service} (\`${use.field}\` in ${use.file})`).join(", ")} |`
    ),
    "",
    "With each value in a shell variable of the same name (never in a file that is committed):",
    "",
    "```sh",
    command,
    "```",
    "",
    "`fly secrets set` restarts the machine with the new values; `fly secrets list` shows the names set.",
    ""
  ].join("\n")
}
