/**
 * Where things are inside the one image of a deployment (the Dockerfile that `core deploy fly` writes),
 * for the generators that run containers of it.
 */
export const ImageLayout = {
  /** The stack directory: services/, .dep/ (provisioned binaries), dist/; the working directory. */
  appDir: "/app",
  /** The non-root user and group the image runs as. */
  uid: 10001,
  /** How a container runs core (on PATH in the image; tini is PID 1 through the image's entrypoint). */
  core: ["core"] as ReadonlyArray<string>
} as const
