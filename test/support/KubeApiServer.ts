/**
 * A real Kubernetes API server for tests, on loopback: etcd (Debian's `etcd-server`) as its store and
 * kube-apiserver built from its Go module into `.dep/tools` (test/fixtures/k8s/build-kube-apiserver.sh).
 * No kubelet, scheduler or controller-manager: objects are validated, defaulted and stored, no pod runs.
 *
 * Free loopback ports, a temp directory for everything, and `stop` ends the API server before etcd (an API
 * server whose etcd is gone can hang on SIGTERM), escalating to SIGKILL, and removes the directory.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { accessSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { repoRoot } from "./DefaultStackCopy.js"

export const kubeApiServerBinary = join(repoRoot, ".dep", "tools", "kube-apiserver")

const onPath = (command: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

const executable = (file: string): boolean => {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The tools these tests need that this machine lacks, each with how to get it. */
export const missingKubeTools = (tools: ReadonlyArray<"apiserver" | "etcd" | "kubectl" | "validate">) => {
  const present = {
    apiserver: () => executable(kubeApiServerBinary),
    etcd: () => onPath("etcd"),
    kubectl: () => onPath("kubectl"),
    validate: () => onPath("kubernetes-validate")
  }
  const how = {
    apiserver: "kube-apiserver (bash test/fixtures/k8s/build-kube-apiserver.sh)",
    etcd: "etcd (apt-get install etcd-server)",
    kubectl: "kubectl",
    validate: "kubernetes-validate (pip install kubernetes-validate)"
  }
  return tools.filter((tool) => !present[tool]()).map((tool) => how[tool])
}

/** A free TCP port on 127.0.0.1 (released before it is returned). */
export const freeLoopbackPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const get = (url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> =>
  new Promise((resolve) => {
    const client = url.startsWith("https:") ? https : http
    const request = client.get(url, { headers, rejectUnauthorized: false, agent: false, timeout: 5000 }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => {
        body += chunk
      })
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }))
      response.on("error", () => resolve({ status: 0, body: "" }))
    })
    request.on("timeout", () => request.destroy())
    request.on("error", () => resolve({ status: 0, body: "" }))
  })

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

const waitExit = (child: ChildProcess, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    if (exited(child)) return resolve(true)
    const timer = setTimeout(() => resolve(exited(child)), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
const stopProcess = async (child: ChildProcess, graceMs: number): Promise<void> => {
  if (exited(child)) return
  child.kill("SIGTERM")
  if (await waitExit(child, graceMs)) return
  child.kill("SIGKILL")
  await waitExit(child, 10_000)
}

const tail = (file: string, lines = 30): string => {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}

/** Polls `check` until it is true; fails after `ms`, or at once when `dead()` says the process ended. */
const until = async (what: string, check: () => Promise<boolean>, dead: () => string | undefined, ms: number) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const death = dead()
    if (death !== undefined) throw new Error(`${what}: ${death}`)
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${what}: not ready within ${ms / 1000} s`)
}

export interface KubeApiServer {
  /** A kubeconfig file for kubectl (admin token, TLS not verified). */
  readonly kubeconfig: string
  readonly dir: string
  /** The pids of etcd and kube-apiserver. */
  readonly pids: ReadonlyArray<number>
  /** kubectl with this server's kubeconfig: its stdout and the server's warnings; throws with stderr on a failure. */
  readonly kubectl: (
    args: ReadonlyArray<string>,
    input?: string
  ) => { readonly stdout: string; readonly warnings: ReadonlyArray<string> }
  /** Stops kube-apiserver, then etcd, and removes the directory. */
  readonly stop: () => Promise<void>
}

/** Starts etcd and kube-apiserver; waits until the API server's `/readyz` answers 200 (up to `readyMs`). */
export const startKubeApiServer = async (readyMs = 180_000): Promise<KubeApiServer> => {
  const dir = mkdtempSync(join(tmpdir(), "core-kube-"))
  const [etcdClient, etcdPeer, securePort] = [
    await freeLoopbackPort(),
    await freeLoopbackPort(),
    await freeLoopbackPort()
  ]
  const children: Array<ChildProcess> = []
  const stop = async () => {
    // the API server first: with its etcd gone it may hang on SIGTERM
    for (const child of [...children].reverse()) await stopProcess(child, 20_000)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const etcdLog = join(dir, "etcd.log")
    const etcd = spawn(
      "etcd",
      [
        "--name=core-test",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=core-test=http://127.0.0.1:${etcdPeer}`
      ],
      { stdio: ["ignore", openSync(etcdLog, "a"), openSync(etcdLog, "a")] }
    )
    children.push(etcd)
    await until(
      "etcd",
      async () => (await get(`http://127.0.0.1:${etcdClient}/health`)).body.includes('"health":"true"'),
      () => (exited(etcd) ? `exited (${etcd.exitCode ?? etcd.signalCode}):\n${tail(etcdLog)}` : undefined),
      60_000
    )

    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
    writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }))
    writeFileSync(join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }))
    const token = randomBytes(16).toString("hex")
    writeFileSync(join(dir, "tokens.csv"), `${token},admin,admin,system:masters\n`)
    mkdirSync(join(dir, "certs"))
    const apiLog = join(dir, "kube-apiserver.log")
    const apiserver = spawn(
      kubeApiServerBinary,
      [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${securePort}`,
        `--cert-dir=${join(dir, "certs")}`,
        `--token-auth-file=${join(dir, "tokens.csv")}`,
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${join(dir, "sa.pub")}`,
        `--service-account-signing-key-file=${join(dir, "sa.key")}`,
        "--service-cluster-ip-range=10.96.0.0/16"
      ],
      { stdio: ["ignore", openSync(apiLog, "a"), openSync(apiLog, "a")] }
    )
    children.push(apiserver)
    await until(
      "kube-apiserver",
      async () =>
        (await get(`https://127.0.0.1:${securePort}/readyz`, { authorization: `Bearer ${token}` })).status === 200,
      () =>
        exited(apiserver) ? `exited (${apiserver.exitCode ?? apiserver.signalCode}):\n${tail(apiLog)}` : undefined,
      readyMs
    )

    const kubeconfig = join(dir, "kubeconfig")
    writeFileSync(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `  - name: local`,
        "    cluster:",
        `      server: https://127.0.0.1:${securePort}`,
        "      insecure-skip-tls-verify: true",
        "users:",
        "  - name: admin",
        "    user:",
        `      token: ${token}`,
        "contexts:",
        "  - name: local",
        "    context: { cluster: local, user: admin }",
        "current-context: local",
        ""
      ].join("\n")
    )
    const kubectl = (args: ReadonlyArray<string>, input?: string) => {
      const run = spawnSync("kubectl", ["--kubeconfig", kubeconfig, ...args], {
        encoding: "utf8",
        input,
        maxBuffer: 64 * 1024 * 1024
      })
      if (run.status !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${run.stderr || run.error?.message}`)
      return { stdout: run.stdout, warnings: run.stderr.split("\n").filter((line) => line.startsWith("Warning:")) }
    }
    return { kubeconfig, dir, pids: children.map((child) => child.pid!), kubectl, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
