/**
 * Where things are inside the one image of a deployment (the Dockerfile of `core deploy fly`), for the
 * generators that run containers of it.
 */
import { FlyDefaults } from "./FlyDefaults.js"

const [uid, gid] = FlyDefaults.user.split(":").map(Number) as [number, number]

export const ImageLayout = {
  /** The stack directory (services/, .dep/, dist/): the image's working directory and `CORE_DIR`. */
  appDir: FlyDefaults.workdir,
  /** The data directory the image prepares (owned by its user): where a data volume is mounted. */
  dataDir: FlyDefaults.dataMount,
  /** The image's unprivileged user and group, by number. */
  uid,
  gid,
  /**
   * Where a Kubernetes container mounts the emptyDir for core's state (`CORE_STATE_DIR` is a folder in it,
   * which core makes its own: the kubelet makes the emptyDir itself root's and writable by all).
   */
  stateVolume: "/run/core",
  stateDir: "/run/core/stack",
  /** How a container runs core, from the working directory (tini is PID 1 through the image's entrypoint). */
  core: ["node", "dist/core.cjs"] as ReadonlyArray<string>
} as const
