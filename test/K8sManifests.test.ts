/**
 * `core deploy k8s`: golden files of the default stack and of the fixture stack in both modes, the mappings
 * that the goldens hold checked field by field, determinism, secrets never written, and the located problems
 * of what does not map.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { execFileSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseAllDocuments } from "yaml"
import { generateK8s } from "../src/deploy/K8sManifests.js"
import type { ServiceSpec, StackSpec } from "../src/manifest/ServiceSpec.js"
import { repoRoot } from "./support/DefaultStackCopy.js"
import { deployStack, fixtureStack, generateCase, k8sCases, k8sFixtures } from "./support/K8sCases.js"

const golden = join(k8sFixtures, "golden")

/** Every object of a generated file. */
const objects = (content: string): Array<any> => parseAllDocuments(content).map((doc) => doc.toJS())

const fileOf = (files: ReadonlyArray<{ path: string; content: string }>, path: string) => {
  const file = files.find((f) => f.path === path)
  if (file === undefined) throw new Error(`no ${path} among ${files.map((f) => f.path).join(", ")}`)
  return file.content
}

const splitCase = k8sCases.find((c) => c.name === "fixture-split")!

/** The fixture stack with `change` applied to each service. */
const changedFixture = async (change: (s: ServiceSpec) => ServiceSpec): Promise<StackSpec> => {
  const stack = await deployStack(fixtureStack)
  return { ...stack, services: stack.services.map(change) }
}

/** A service with its manifest's `process.compose` changed. */
const withCompose = (s: ServiceSpec, compose: object): ServiceSpec => ({
  ...s,
  manifest: {
    ...s.manifest,
    process: { ...s.manifest.process, compose: { ...s.manifest.process.compose, ...compose } }
  }
})
const podCase = k8sCases.find((c) => c.name === "fixture-pod")!

describe("golden files", () => {
  for (const c of k8sCases) {
    it(`${c.name} matches test/fixtures/k8s/golden/${c.name}/`, async () => {
      const { files } = await generateCase(c)
      const dir = join(golden, c.name)
      if (process.env.UPDATE_GOLDEN === "1") {
        rmSync(dir, { recursive: true, force: true })
        mkdirSync(dir, { recursive: true })
        for (const file of files) writeFileSync(join(dir, file.path), file.content)
      }
      expect(files.map((f) => f.path).sort()).toEqual(readdirSync(dir).sort())
      for (const file of files) expect(file.content, file.path).toBe(readFileSync(join(dir, file.path), "utf8"))
    })
  }
})

describe("the mappings", () => {
  it("split mode: workloads, Services, probes one to one, startup probe, grace period, init containers", async () => {
    const { files, secrets } = await generateCase(splitCase)
    expect(secrets).toEqual(["API_TOKEN", "STORE_PASSWORD"])
    const [store, storeService] = objects(fileOf(files, "store.yaml"))
    expect(store.kind).toBe("StatefulSet") // uses ${data}
    expect(store.spec.volumeClaimTemplates[0].metadata.name).toBe("data")
    const pod = store.spec.template.spec
    expect(pod.terminationGracePeriodSeconds).toBe(30 + 5)
    const container = pod.containers[0]
    expect(container.args).toEqual(["node", "dist/core.cjs", "store", "run", "--no-deps"])
    expect(container.volumeMounts).toContainEqual({ name: "data", mountPath: "/data" })
    expect(container.readinessProbe).toEqual({
      tcpSocket: { port: "client" },
      periodSeconds: 2,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 5
    })
    // readiness_timeout_seconds 120: probed every second, up to 120 failures
    expect(container.startupProbe).toMatchObject({
      tcpSocket: { port: "client" },
      periodSeconds: 1,
      failureThreshold: 120
    })
    expect(container.livenessProbe.exec.command).toEqual([
      "sh",
      "-c",
      'test -d /data/store && /app/.dep/store ping --password "${STORE_PASSWORD}"'
    ])
    expect(container.livenessProbe).toMatchObject({ initialDelaySeconds: 10, periodSeconds: 15, timeoutSeconds: 3 })
    expect(container.resources).toEqual({ requests: { cpu: "1", memory: "1024Mi" }, limits: { memory: "1024Mi" } })
    expect(container.env).toEqual([
      { name: "API_TOKEN" },
      { name: "STORE_PASSWORD", valueFrom: { secretKeyRef: { name: "core-secrets", key: "STORE_PASSWORD" } } }
    ])
    expect(storeService.spec).toMatchObject({
      type: "ClusterIP",
      ports: [{ name: "client", port: 15432, targetPort: "client" }]
    })

    const [api] = objects(fileOf(files, "api.yaml"))
    expect(api.kind).toBe("Deployment")
    const apiPod = api.spec.template.spec
    expect(apiPod.initContainers).toHaveLength(1)
    expect(apiPod.initContainers[0].args).toEqual([
      "node",
      "dist/core.cjs",
      "stack",
      "wait",
      "store",
      "--timeout",
      "300"
    ])
    const apiContainer = apiPod.containers[0]
    expect(apiContainer.securityContext.readOnlyRootFilesystem).toBe(true)
    expect(apiContainer.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" })
    expect(apiContainer.readinessProbe).toEqual({
      httpGet: { path: "/ready", port: "http", scheme: "HTTP", httpHeaders: [{ name: "X-Probe", value: "kubelet" }] },
      periodSeconds: 5,
      timeoutSeconds: 1,
      successThreshold: 2,
      failureThreshold: 3
    })
    expect(apiContainer.livenessProbe).toMatchObject({
      tcpSocket: { port: "metrics" },
      periodSeconds: 20,
      failureThreshold: 6
    })
    expect(apiContainer.resources.requests).toEqual({ cpu: "500m", memory: "128Mi" })

    const [worker] = objects(fileOf(files, "worker.yaml"))
    const workerContainer = worker.spec.template.spec.containers[0]
    expect(workerContainer.readinessProbe.exec.command).toEqual([
      "sh",
      "-c",
      // the command on its own line after the cd, as process-compose runs it in its working_dir
      "cd '/app/services/worker' || exit 1\ntest -f ready.flag"
    ])
    expect(workerContainer.livenessProbe).toMatchObject({
      httpGet: { scheme: "HTTPS", port: "health" },
      successThreshold: 1
    })
    // process_started imposes no order; process_healthy on store waits for it
    expect(worker.spec.template.spec.initContainers.map((c: any) => c.name)).toEqual(["wait-store"])
    // process_log_ready on api waits for api's readiness probe instead
    const [notifier] = objects(fileOf(files, "notifier.yaml"))
    expect(notifier.spec.template.spec.initContainers.map((c: any) => c.name)).toEqual(["wait-api"])
    expect(files.some((f) => f.path === "legacy.yaml")).toBe(false)

    const [ingress] = objects(fileOf(files, "ingress.yaml"))
    expect(ingress.spec.rules[0]).toMatchObject({ host: "api.example.com" })
    expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({ name: "api", port: { name: "http" } })
    const [config] = objects(fileOf(files, "config.yaml"))
    expect(config.data).toMatchObject({
      CORE_BIND: "0.0.0.0",
      CORE_HOST_STORE: "store",
      LOG_LEVEL: "info",
      STORE_CACHE_MB: "64"
    })
    const [kustomization] = objects(fileOf(files, "kustomization.yaml"))
    expect(kustomization.secretGenerator).toEqual([{ name: "core-secrets", envs: ["secret.env"] }])
    expect(fileOf(files, "secret.env.example")).toContain("API_TOKEN=\nSTORE_PASSWORD=\n")
  })

  it("pod mode: one pod, dependencies as native sidecars in order, the others as containers, one Service", async () => {
    const { files } = await generateCase(podCase)
    expect(files.map((f) => f.path)).toEqual([
      "kustomization.yaml",
      "namespace.yaml",
      "config.yaml",
      "stack.yaml",
      "ingress.yaml",
      "secret.env.example",
      ".gitignore"
    ])
    const [workload, service] = objects(fileOf(files, "stack.yaml"))
    expect(workload.kind).toBe("StatefulSet")
    const pod = workload.spec.template.spec
    expect(pod.initContainers.map((c: any) => [c.name, c.restartPolicy])).toEqual([
      ["store", "Always"],
      ["api", "Always"]
    ])
    expect(pod.initContainers.every((c: any) => c.startupProbe !== undefined)).toBe(true)
    expect(pod.containers.map((c: any) => c.name)).toEqual(["notifier", "worker"])
    // the kubelet stops the containers, then the sidecars in reverse order, within one grace period
    expect(pod.terminationGracePeriodSeconds).toBe(30 + 5 + 10 + 10 + 5)
    expect(new Set(pod.volumes.map((v: any) => v.name))).toEqual(
      new Set(["state-store", "state-api", "state-notifier", "state-worker", "tmp"])
    )
    expect(service.metadata.name).toBe("api")
    expect(service.spec.ports).toEqual([{ name: "http", port: 19000, targetPort: "http", protocol: "TCP" }])
    const [config] = objects(fileOf(files, "config.yaml"))
    expect(Object.keys(config.data).filter((key) => key.startsWith("CORE_HOST_"))).toEqual([])
  })

  it("pod mode: a port name taken by two services becomes <service>-<port>, unique in the pod; the Service targets it", async () => {
    const { files } = await generateCase(k8sCases.find((c) => c.name === "default-pod")!)
    const [workload, service] = objects(fileOf(files, "stack.yaml"))
    const pod = workload.spec.template.spec
    const containers = [...pod.initContainers, ...pod.containers]
    const names = containers.flatMap((c: any) => c.ports.map((p: any) => p.name))
    expect(names.sort()).toEqual(["admin", "caddy-http", "client", "monitor", "pocketbase-http"])
    const caddy = containers.find((c: any) => c.name === "caddy")
    expect(caddy.readinessProbe.httpGet.port).toBe("caddy-http")
    expect(service.spec.ports).toEqual([{ name: "http", port: 8080, targetPort: "caddy-http", protocol: "TCP" }])
  })

  it("pod mode: a process_log_ready dependency without a readiness probe gates on its log line", async () => {
    const stack = await changedFixture((s) =>
      s.name === "api" ? { ...withCompose(s, { readiness_probe: undefined }), readiness: undefined } : s
    )
    const result = generateK8s(stack, podCase.options)
    if (Either.isLeft(result)) throw new Error(JSON.stringify(result.left))
    const [workload] = objects(fileOf(result.right.files, "stack.yaml"))
    const api = workload.spec.template.spec.initContainers.find((c: any) => c.name === "api")
    const command = api.startupProbe.exec.command
    expect(command.slice(0, 2)).toEqual(["node", "-e"])
    expect(command.slice(3)).toEqual(["^api listening on ", "/run/core/stack/logs/api.log"])
    // the script finds the line in such a file
    const dir = mkdtempSync(join(tmpdir(), "core-k8s-log-"))
    try {
      writeFileSync(join(dir, "api.log"), "starting\napi listening on :19000\n")
      execFileSync(process.execPath, ["-e", command[2], command[3], join(dir, "api.log")])
      writeFileSync(join(dir, "api.log"), "starting\n")
      expect(() => execFileSync(process.execPath, ["-e", command[2], command[3], join(dir, "api.log")])).toThrow()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("determinism and secrets", () => {
  it("gives the same bytes whatever the environment and .env say, and never writes a secret's value", async () => {
    const dir = mkdtempSync(join(tmpdir(), "core-k8s-env-"))
    try {
      cpSync(fixtureStack, dir, { recursive: true })
      const planted = `planted-${process.pid}-${Date.now()}`
      writeFileSync(
        join(dir, ".env"),
        `STORE_PASSWORD=${planted}-store\nAPI_TOKEN=${planted}-token\nLOG_LEVEL=${planted}\n`
      )
      const env = { PATH: "/usr/bin:/bin", PROBE_NAME: planted, CORE_PORT_API_HTTP: "19555", CORE_BIND: "10.1.2.3" }
      const plain = await generateCase(splitCase)
      const planted1 = await generateCase({ ...splitCase, dir }, env)
      expect(planted1.files).toEqual(plain.files)
      for (const file of planted1.files) expect(file.content).not.toContain(planted)
      const pod = await generateCase({ ...podCase, dir }, env)
      for (const file of pod.files) expect(file.content).not.toContain(planted)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("what does not map", () => {
  const problemsOf = async (change: (s: ServiceSpec) => ServiceSpec, mode: "split" | "pod" = "split") => {
    const result = generateK8s(await changedFixture(change), { ...splitCase.options, mode })
    return Either.isLeft(result) ? result.left.map((p) => `${p.file}: ${p.path}: ${p.message}`) : []
  }
  const withCondition = (service: string, dependency: string, condition: any) => (s: ServiceSpec) =>
    s.name !== service
      ? s
      : { ...s, dependsOn: s.dependsOn.map((d) => (d.name === dependency ? { ...d, condition } : d)) }

  for (const condition of ["process_completed", "process_completed_successfully"]) {
    for (const mode of ["split", "pod"] as const) {
      it(`${condition} is a located error (${mode})`, async () => {
        const problems = await problemsOf(withCondition("api", "store", condition), mode)
        expect(problems).toEqual([
          expect.stringMatching(
            new RegExp(
              `^services/api/service\\.json: process\\.compose\\.depends_on\\.store\\.condition: ${condition}: Kubernetes has no equivalent`
            )
          )
        ])
      })
    }
  }

  it("process_healthy on a service whose readiness probe is exec is a located error in split mode only", async () => {
    const change = withCondition("notifier", "api", "process_healthy")
    const execApi = (s: ServiceSpec) => {
      const changed = change(s)
      return changed.name === "api" ? withCompose(changed, { readiness_probe: { exec: { command: "true" } } }) : changed
    }
    expect(await problemsOf(execApi)).toEqual([
      expect.stringMatching(
        /^services\/notifier\/service\.json: process\.compose\.depends_on\.api\.condition: process_healthy: the readiness probe of "api" is an exec probe/
      )
    ])
    expect(await problemsOf(execApi, "pod")).toEqual([])
  })

  it("names Kubernetes cannot take, a secret in a probe header, two public entries", async () => {
    const problems = await problemsOf((s) => {
      if (s.name === "store") {
        const ports = { client_port: 15432 }
        const deploy = { public: "client_port" }
        return { ...s, ports, deploy, manifest: { ...s.manifest, ports, deploy } }
      }
      if (s.name !== "api") return s
      const probe = s.manifest.process.compose!.readiness_probe!
      return withCompose(s, {
        readiness_probe: {
          ...probe,
          http_get: { ...probe.http_get!, headers: { Authorization: "Bearer ${env.API_TOKEN}" } }
        }
      })
    })
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^services\/api\/service\.json: process\.compose\.readiness_probe\.http_get\.headers\.Authorization: \$\{env\.API_TOKEN\} is a secret/
        ),
        expect.stringMatching(
          /^services\/store\/service\.json: ports\.client_port: port name "client_port" cannot name a Kubernetes port/
        ),
        expect.stringMatching(/^services\/store\/service\.json: deploy\.public: a stack has one public entry, found 2/)
      ])
    )
  })

  it("a manifest's default for a variable the pods set (CORE_BIND, CORE_DATA_DIR) does not override the pods' value", async () => {
    const stack = await changedFixture((s) =>
      s.name !== "worker"
        ? s
        : {
            ...s,
            manifest: {
              ...s.manifest,
              process: {
                ...s.manifest.process,
                args: [...(s.manifest.process.args ?? []), "${env.CORE_BIND:-127.0.0.1}", "${env.CORE_DATA_DIR:-/srv}"]
              }
            }
          }
    )
    const result = generateK8s(stack, splitCase.options)
    if (Either.isLeft(result)) throw new Error(result.left.map((p) => p.message).join("\n"))
    const [config] = objects(fileOf(result.right.files, "config.yaml"))
    expect(config.data).toMatchObject({ CORE_BIND: "0.0.0.0", CORE_DATA_DIR: "/data" })
  })

  it("a service name with '_' cannot name a Service", async () => {
    const problems = await problemsOf((s) => (s.name === "worker" ? { ...s, name: "work_er" as any } : s))
    expect(problems).toEqual([expect.stringMatching(/"work_er" cannot name a Kubernetes Service/)])
  })
})

describe("core deploy k8s (the command)", () => {
  it("writes the golden files whatever the environment and .env say, removes what it no longer generates, keeps secret.env", () => {
    const dir = mkdtempSync(join(tmpdir(), "core-k8s-cli-"))
    try {
      cpSync(fixtureStack, dir, { recursive: true })
      const planted = `planted-${process.pid}-${Date.now()}`
      writeFileSync(join(dir, ".env"), `STORE_PASSWORD=${planted}\nAPI_TOKEN=${planted}\nLOG_LEVEL=${planted}\n`)
      const env = {
        ...process.env,
        API_TOKEN: planted,
        PROBE_NAME: planted,
        CORE_PORT_API_HTTP: "19555",
        CORE_BIND: "10.1.2.3",
        CORE_HOST_STORE: planted
      }
      const o = splitCase.options
      const flags = ["--namespace", o.namespace, "--image", o.image, "--mode", o.mode, "--host", o.host]
      const run = (...args: Array<string>) =>
        execFileSync(process.execPath, [join(repoRoot, "dist", "core.cjs"), "deploy", "k8s", "--dir", dir, ...args], {
          encoding: "utf8",
          env
        })
      const out = join(dir, "deploy", "k8s")
      mkdirSync(out, { recursive: true })
      writeFileSync(join(out, "secret.env"), "API_TOKEN=x\nSTORE_PASSWORD=y\n")
      writeFileSync(
        join(out, "old.yaml"),
        "# Generated by `core deploy k8s` from services/*/service.json: regenerate it rather than edit it.\n"
      )
      writeFileSync(join(out, "mine.yaml"), "# kept\n")
      const printed = run(...flags)
      expect(printed).toContain("note: services/legacy/service.json: disabled, not deployed")
      expect(printed).toContain("secrets (API_TOKEN, STORE_PASSWORD)")
      expect(printed).toMatch(/removed .*old\.yaml \(no longer generated\)/)
      expect(existsSync(join(out, "old.yaml"))).toBe(false)
      expect(readFileSync(join(out, "secret.env"), "utf8")).toBe("API_TOKEN=x\nSTORE_PASSWORD=y\n")
      expect(existsSync(join(out, "mine.yaml"))).toBe(true)
      for (const name of readdirSync(join(golden, "fixture-split"))) {
        const written = readFileSync(join(out, name), "utf8")
        expect(written, name).toBe(readFileSync(join(golden, "fixture-split", name), "utf8"))
        expect(written, name).not.toContain(planted)
      }

      let failure = ""
      try {
        run("--namespace", "Bad_NS")
      } catch (error: any) {
        failure = String(error.stderr)
      }
      expect(failure).toMatch(/namespace/)
      writeFileSync(
        join(dir, "services", "api", "service.json"),
        readFileSync(join(fixtureStack, "services", "api", "service.json"), "utf8").replace(
          '"condition": "process_healthy"',
          '"condition": "process_completed"'
        )
      )
      try {
        run()
        failure = ""
      } catch (error: any) {
        failure = String(error.stderr)
      }
      expect(failure).toContain(
        "services/api/service.json: process.compose.depends_on.store.condition: process_completed"
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
