/**
 * The split-mode pods of the default stack without Kubernetes: each pod's containers run as the kubelet would
 * run them (the container's `args` in its `workingDir`, the ConfigMap as environment), each pod in its own copy
 * of the image's layout (its own state folder, in a volume writable by all as the kubelet makes an emptyDir;
 * its own data volume). The init container `core stack wait`
 * fails while its dependency is down and returns once it is up; each service then starts alone
 * (`run --no-deps`) and reaches its dependency through `${svc.NAME.host}`; every probe of the generated objects
 * answers; SIGTERM (what the kubelet sends through tini) stops each pod within its grace period; nothing is
 * left running.
 *
 * What differs from a cluster: `CORE_HOST_<NAME>` is 127.0.0.1 (no cluster DNS here: each Service name becomes
 * loopback), ports are overridden so that the test runs beside others, and the kubelet's probes are made by
 * the test. In CI this never skips: missing binaries fail it. Locally it skips, saying so.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, cpSync, existsSync, mkdirSync, rmSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { parse, parseAllDocuments } from "yaml"
import { hostVariable } from "../src/manifest/Placeholders.js"
import { portOverrideVariable } from "../src/manifest/ServiceResolver.js"
import { inCi, missingBinaries, repoRoot } from "./support/DefaultStackCopy.js"
import { generateCase, k8sCases } from "./support/K8sCases.js"
import { eventually, processesMentioning } from "./support/Processes.js"
import { freshPort, tempDir } from "./support/Specs.js"

const missing = missingBinaries()

/** A container process: its output so far and its end. */
interface Container {
  readonly child: ChildProcess
  readonly output: () => string
  readonly ended: Promise<{ code: number | null; at: number }>
}

const run = (args: ReadonlyArray<string>, cwd: string, env: Record<string, string>): Container => {
  const [program, ...rest] = args
  const child = spawn(program === "node" ? process.execPath : program!, rest, {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let text = ""
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on("data", (chunk) => {
      text += chunk
    })
  }
  const ended = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once("exit", (code) => resolve({ code, at: Date.now() }))
  )
  return { child, output: () => text, ended }
}

/** An http probe as the kubelet makes it (status 200-399), on 127.0.0.1. */
const httpProbe = async (port: number, probe: any): Promise<boolean> => {
  try {
    const headers = Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h: any) => [h.name, h.value]))
    const response = await fetch(`http://127.0.0.1:${port}${probe.httpGet.path}`, {
      headers,
      signal: AbortSignal.timeout(probe.timeoutSeconds * 1000)
    })
    return response.status >= 200 && response.status < 400
  } catch {
    return false
  }
}

const containers: Array<Container> = []
const roots: Array<string> = []
afterAll(async () => {
  for (const container of containers) {
    if (container.child.exitCode === null && container.child.signalCode === null) container.child.kill("SIGKILL")
    await container.ended
  }
  // the copies of the image's layout (the provisioned binaries, once per pod)
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})

if (missing.length > 0 && !inCi()) {
  describe.skip(`Kubernetes pods without Kubernetes: SKIPPED, .dep/ lacks ${missing.join(", ")}`, () => {
    it("runs when the binaries are provisioned", () => {})
  })
} else {
  describe("the default stack's split-mode pods, run as their containers", () => {
    it("init containers wait for their dependency, each service runs alone, every probe answers, SIGTERM stops each pod in time", async () => {
      const { files } = await generateCase(k8sCases.find((c) => c.name === "default")!)
      const file = (path: string) => files.find((f) => f.path === path)!.content
      const configMap = parse(file("config.yaml")).data as Record<string, string>
      const root = tempDir("core-k8s-pods-")
      roots.push(root)
      const ports: Record<string, Record<string, number>> = {
        nats: { client: freshPort(), monitor: freshPort() },
        pocketbase: { http: freshPort() },
        caddy: { http: freshPort(), admin: freshPort() }
      }
      const overrides = Object.fromEntries(
        Object.entries(ports).flatMap(([service, named]) =>
          Object.entries(named).map(([name, port]) => [portOverrideVariable(service, name), String(port)])
        )
      )
      const pods: Array<{ name: string; main: Container; grace: number }> = []
      for (const name of ["nats", "pocketbase", "caddy"]) {
        const [workload] = parseAllDocuments(file(`${name}.yaml`)).map((doc) => doc.toJS())
        const spec = workload.spec.template.spec
        const container = spec.containers[0]
        // the image's layout, one copy per pod: dist, services, the provisioned binaries
        const app = join(root, name, "app")
        mkdirSync(app, { recursive: true })
        cpSync(join(repoRoot, "dist"), join(app, "dist"), { recursive: true })
        cpSync(join(repoRoot, "services"), join(app, "services"), { recursive: true })
        cpSync(join(repoRoot, ".dep"), join(app, ".dep"), {
          recursive: true,
          dereference: true,
          preserveTimestamps: true,
          filter: (path) => path !== join(repoRoot, ".dep", "tools")
        })
        const volume = join(root, name, "data")
        mkdirSync(volume)
        // core's state: the container mounts an emptyDir where CORE_STATE_DIR's folder goes, and the kubelet makes
        // it writable by all (root's, in a cluster): core makes its own folder in it
        expect(container.volumeMounts).toContainEqual({ name: "state", mountPath: dirname(configMap.CORE_STATE_DIR!) })
        const stateVolume = join(root, name, "state")
        mkdirSync(stateVolume)
        chmodSync(stateVolume, 0o777)
        const env: Record<string, string> = {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: app,
          ...configMap,
          ...Object.fromEntries(
            Object.keys(configMap)
              .filter((k) => k.startsWith("CORE_HOST_"))
              .map((k) => [k, "127.0.0.1"])
          ),
          CORE_DATA_DIR: volume,
          CORE_STATE_DIR: join(stateVolume, basename(configMap.CORE_STATE_DIR!)),
          ...overrides
        }
        expect(container.workingDir).toBe("/app")
        for (const init of spec.initContainers ?? []) {
          const dependency = init.args[init.args.indexOf("wait") + 1]
          expect(env[hostVariable(dependency)]).toBe("127.0.0.1")
          if (!pods.some((pod) => pod.name === dependency))
            throw new Error(`${name} waits for ${dependency}, not started`)
          const waiting = run(init.args, app, env)
          containers.push(waiting)
          const { code } = await waiting.ended
          expect(code, waiting.output()).toBe(0)
          expect(waiting.output()).toContain(`${dependency}: ready after`)
        }
        if (name === "nats") {
          // pocketbase's init container, while nats is not up yet: it fails, naming nats (with --timeout 1)
          const [pocketbase] = parseAllDocuments(file("pocketbase.yaml")).map((doc) => doc.toJS())
          const args: Array<string> = pocketbase.spec.template.spec.initContainers[0].args
          const early = run([...args.slice(0, args.indexOf("--timeout")), "--timeout", "1"], app, env)
          expect((await early.ended).code).toBe(1)
          expect(early.output()).toContain("core: nats is not ready after 1 s")
        }
        const main = run(container.args, app, env)
        containers.push(main)
        // the startup probe: every second, up to failureThreshold
        const port = (portName: string | number) => (typeof portName === "number" ? portName : ports[name]![portName]!)
        const startup = container.startupProbe
        let started = false
        for (let i = 0; i < startup.failureThreshold && !started; i++) {
          started = await httpProbe(port(startup.httpGet.port), startup)
          if (!started) await new Promise((resolve) => setTimeout(resolve, startup.periodSeconds * 1000))
        }
        expect(started, main.output()).toBe(true)
        for (const probe of [container.readinessProbe, container.livenessProbe].filter(Boolean)) {
          expect(await httpProbe(port(probe.httpGet.port), probe), JSON.stringify(probe)).toBe(true)
        }
        // its data in its own volume
        expect(existsSync(join(volume, name === "caddy" ? "caddy" : name))).toBe(true)
        pods.push({ name, main, grace: spec.terminationGracePeriodSeconds })
      }
      const health = await fetch(`http://127.0.0.1:${ports.caddy!.http}/api/health`)
      expect(health.status).toBe(200)

      for (const pod of pods.reverse()) {
        const sent = Date.now()
        pod.main.child.kill("SIGTERM")
        const { code, at } = await pod.main.ended
        expect(code, pod.main.output()).toBe(0)
        expect(at - sent).toBeLessThan(pod.grace * 1000)
      }
      expect(await eventually(() => processesMentioning(root).length === 0, 10_000)).toBe(true)
    }, 240_000)
  })
}
