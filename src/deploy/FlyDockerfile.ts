/**
 * The one image of a deployment, as `core deploy fly` writes it (Kubernetes runs the same image).
 *
 * - `Dockerfile`: a build stage (Node and Go) that installs with `npm ci`, builds the CLI and runs
 *   `core stack provision`, so the image holds the binaries the manifests pin, built with their flags; a slim
 *   runtime stage with Node, tini as PID 1, the unprivileged `node` user and `core stack up` as the command.
 *   On Kubernetes each pod runs `core <service> run --no-deps` instead.
 * - `.dockerignore` (and `Dockerfile.dockerignore`, the name a local `docker build -f` reads): `.dep`, `.data`,
 *   `.core-stack`, `node_modules`, `.env` and the other local state never enter the build context.
 */
import { FlyDefaults, flyHeader } from "./FlyDefaults.js"

/** The two-stage Dockerfile; every choice from `FlyDefaults`. */
export const renderDockerfile = (): string => {
  const d = FlyDefaults
  return [
    "# syntax=docker/dockerfile:1",
    `# ${flyHeader}`,
    "# Build from the stack directory: fly deploy --config deploy/fly/fly.toml (see docs/DEPLOYMENT.md).",
    "# One image for Fly.io (core stack up) and Kubernetes (core <service> run --no-deps).",
    "",
    `FROM ${d.goImage} AS go`,
    "",
    "# Build stage: core's CLI, and every binary of the stack provisioned as the manifests pin it",
    "# (downloads checked against their sha256, Go builds with the manifests' flags).",
    `FROM ${d.nodeImage} AS build`,
    "COPY --from=go /usr/local/go /usr/local/go",
    "ENV PATH=/usr/local/go/bin:$PATH",
    `WORKDIR ${d.workdir}`,
    "COPY package.json package-lock.json ./",
    "RUN npm ci --no-audit --no-fund",
    "COPY tsconfig.json ./",
    "COPY src ./src",
    "COPY services ./services",
    "RUN npm run build && node dist/core.cjs stack provision",
    "",
    "# Runtime stage: Node, tini as PID 1 (signals forwarded, zombies reaped), the unprivileged user node.",
    `FROM ${d.runtimeImage}`,
    "# Debian's tini of the base image's release; its version follows the base image (hence no pin).",
    "# hadolint ignore=DL3008",
    "RUN apt-get update \\",
    "  && apt-get install -y --no-install-recommends tini \\",
    "  && rm -rf /var/lib/apt/lists/*",
    `WORKDIR ${d.workdir}`,
    `COPY --from=build ${d.workdir}/dist ./dist`,
    `COPY --from=build ${d.workdir}/services ./services`,
    `COPY --from=build ${d.workdir}/.dep ./.dep`,
    "# `core` on PATH (for fly ssh console); .core-stack: core's runtime state; the data directory: a volume",
    "# on Fly (mounted owned by the image's user), an empty directory otherwise",
    `RUN ln -s ${d.workdir}/dist/core.cjs /usr/local/bin/core \\`,
    `  && mkdir -p .core-stack ${d.dataMount} \\`,
    `  && chown ${d.user} .core-stack ${d.dataMount}`,
    `USER ${d.user}`,
    `ENV NODE_ENV=production CORE_DIR=${d.workdir}`,
    `ENTRYPOINT ["/usr/bin/tini", "--"]`,
    `CMD ["node", "dist/core.cjs", "stack", "up"]`,
    ""
  ].join("\n")
}

/** The build context's exclusions. */
export const renderDockerignore = (): string =>
  [
    `# ${flyHeader}`,
    "# Local state and secrets never enter the build context.",
    ".dep",
    ".data",
    ".core-stack",
    "node_modules",
    ".env",
    ".env.*",
    "dist",
    "deploy",
    ".git",
    "scratchpad",
    "test",
    "*.log",
    ""
  ].join("\n")
