/**
 * `core stack ui [--port N] [--no-open]`: the dashboard of the running stack, on 127.0.0.1 only, until Ctrl-C.
 * Prints its URL (with the token); opens a browser when there is a display, through a private file so that the
 * token never appears on a command line that other users could read.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { withClient } from "../api/ControlClient.js"
import { stateDirOf } from "../state/StateDir.js"
import { mintToken } from "../ui/UiSecurity.js"
import { loadAssets, serveUi } from "../ui/UiServer.js"
import { dirOption } from "./CliOptions.js"

const port = Options.integer("port").pipe(
  Options.withSchema(
    Schema.Int.pipe(Schema.between(0, 65535, { message: () => "--port wants a port number (0 to 65535)" }))
  ),
  Options.withDefault(0),
  Options.withDescription("port on 127.0.0.1 (default: a free one)")
)
const noOpen = Options.boolean("no-open").pipe(Options.withDescription("only print the URL; do not open a browser"))

/** Whether a browser can be shown: a desktop session, or macOS. */
const hasDisplay = () =>
  process.platform === "darwin" || Boolean(process.env.DISPLAY) || Boolean(process.env.WAYLAND_DISPLAY)

/**
 * Opens `url` in the desktop's browser through a 0600 file in `.core-stack/` that redirects to it, removed when
 * the scope closes. Failing to open is not an error: the URL is printed anyway.
 */
const openBrowser = (stateDir: string, url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const file = path.join(stateDir, "ui-open.html")
      try {
        fs.writeFileSync(file, `<!doctype html><meta http-equiv="refresh" content="0; url=${url}">\n`, { mode: 0o600 })
        const opener = process.platform === "darwin" ? "open" : "xdg-open"
        const child = spawn(opener, [file], { detached: true, stdio: "ignore" })
        child.on("error", () => undefined)
        child.unref()
      } catch {
        // no opener: the printed URL is enough
      }
      return file
    }),
    (file) => Effect.sync(() => fs.rmSync(file, { force: true }))
  )

export const uiCommand = Command.make("ui", { dir: dirOption, port, noOpen }, ({ dir, port, noOpen }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const root = dir
      // like every verb: with no supervisor, say so at once
      yield* withClient(root, () => Effect.void)
      const assets = yield* loadAssets()
      const server = yield* serveUi({ dir: root, port, token: mintToken(), assets })
      yield* Console.log(
        `core: dashboard of ${root} on ${server.url}\ncore: Ctrl-C to stop it (the stack keeps running)`
      )
      if (!noOpen && hasDisplay()) yield* openBrowser(stateDirOf(root), server.url)
      return yield* Effect.never
    })
  )
).pipe(Command.withDescription("Serve a live dashboard of the running stack on 127.0.0.1 and print its URL"))
