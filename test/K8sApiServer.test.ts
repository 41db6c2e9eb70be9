/**
 * A real kube-apiserver (v1.34, built from its Go module) with etcd accepts everything `core deploy k8s`
 * writes: each base rendered by `kubectl kustomize`, applied server-side (first `--dry-run=server`, then for
 * real) and read back unchanged. It also rejects what schema checks miss (a port over 65535, a probe with two
 * handlers), so the check can fail. No kubelet runs: no pod starts (see docs/DEPLOYMENT.md).
 *
 * In CI this never skips: a missing tool fails it. Locally it skips, saying which tool is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { parseAllDocuments, stringify } from "yaml"
import { inCi } from "./support/DefaultStackCopy.js"
import { k8sCases, renderCase } from "./support/K8sCases.js"
import { type KubeApiServer, missingKubeTools, startKubeApiServer } from "./support/KubeApiServer.js"
import { survivors } from "./support/Processes.js"

const missing = missingKubeTools(["apiserver", "etcd", "kubectl"])

/** A Kubernetes quantity as a number (`1Gi`, `1024Mi`, `250m`, `2`), for comparing what the server normalised. */
const quantity = (text: string): number | undefined => {
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$/.exec(text)
  if (match === null) return undefined
  const unit = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }[match[2] ?? ""] ?? 1
  return Number(match[1]) * unit
}

/** Where `stored` lacks or changed something `sent` said (defaults the server added are fine). */
const differences = (sent: unknown, stored: unknown, path = ""): Array<string> => {
  if (Array.isArray(sent)) {
    if (!Array.isArray(stored) || stored.length !== sent.length) return [`${path}: ${JSON.stringify(stored)}`]
    return sent.flatMap((item, i) => differences(item, stored[i], `${path}[${i}]`))
  }
  if (typeof sent === "object" && sent !== null) {
    if (typeof stored !== "object" || stored === null) return [`${path}: ${JSON.stringify(stored)}`]
    return Object.entries(sent).flatMap(([key, value]) => differences(value, (stored as any)[key], `${path}.${key}`))
  }
  if (sent === stored) return []
  if (
    typeof sent === "string" &&
    typeof stored === "string" &&
    quantity(sent) !== undefined &&
    quantity(sent) === quantity(stored)
  ) {
    return []
  }
  return [`${path}: sent ${JSON.stringify(sent)}, stored ${JSON.stringify(stored)}`]
}

if (missing.length > 0 && !inCi()) {
  describe.skip(`kube-apiserver: SKIPPED, missing ${missing.join(", ")}`, () => {
    it("runs when the tools are there", () => {})
  })
} else {
  describe("a real kube-apiserver", () => {
    let server: KubeApiServer | undefined
    let pids: ReadonlyArray<number> = []

    beforeAll(async () => {
      if (missing.length > 0) return
      server = await startKubeApiServer()
      pids = server.pids
    }, 240_000)

    afterAll(async () => {
      await server?.stop()
      expect(survivors(pids)).toEqual([])
    }, 60_000)

    it("has its tools", () => {
      expect(missing).toEqual([])
    })

    for (const c of k8sCases) {
      it(`accepts ${c.name}: server-side dry run, apply, every object read back`, () => {
        const kube = server!
        const out = join(kube.dir, c.name)
        mkdirSync(out)
        const rendered = renderCase(c, out)
        const objects = parseAllDocuments(rendered).map((doc) => doc.toJS())
        const namespaces = objects.filter((o) => o.kind === "Namespace")
        expect(namespaces.map((o) => o.metadata.name)).toEqual([c.options.namespace])
        const apply = ["apply", "--server-side", "--field-manager=core-test", "-f", "-"]
        // a dry run cannot create objects in a namespace that does not exist yet: the namespace goes first
        kube.kubectl(apply, stringify(namespaces[0]))
        // accepted without a warning (the server warns, for instance, of a port name two containers share)
        expect(kube.kubectl([...apply, "--dry-run=server"], rendered).warnings).toEqual([])
        expect(kube.kubectl(apply, rendered).warnings).toEqual([])
        const stored = JSON.parse(kube.kubectl(["get", "-f", "-", "-o", "json"], rendered).stdout).items as Array<any>
        expect(stored.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(
          objects.map((o) => `${o.kind}/${o.metadata.name}`)
        )
        objects.forEach((object, i) => {
          const { metadata, ...rest } = object
          expect(differences(rest, stored[i]), `${object.kind}/${metadata.name}`).toEqual([])
          expect(stored[i].metadata.namespace ?? c.options.namespace).toBe(c.options.namespace)
        })
        // kustomize renamed the generated Secret (a hash of its content) and every reference to it
        const secrets = new Set(stored.filter((o) => o.kind === "Secret").map((o) => o.metadata.name))
        const references = JSON.stringify(stored).match(/"secretKeyRef":\{[^}]*\}/g) ?? []
        for (const reference of references) expect(secrets).toContain(JSON.parse(`{${reference}}`).secretKeyRef.name)
        expect(references.length > 0).toBe(c.name.startsWith("fixture"))
        // the workloads are there, as many as the mode makes
        const workloads = stored
          .filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet")
          .map((o) => o.metadata.name)
        expect(workloads.length).toBe(c.options.mode === "pod" ? 1 : c.name === "default" ? 3 : 4)
      }, 120_000)
    }

    it("rejects what a schema check lets through: a port over 65535, a probe with two handlers", () => {
      const kube = server!
      const out = join(kube.dir, "rejected")
      mkdirSync(out)
      const case_ = k8sCases.find((c) => c.name === "fixture-split")!
      const objects = parseAllDocuments(renderCase(case_, out)).map((doc) => doc.toJS())
      const api = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "api")
      const dryRun = ["apply", "--server-side", "--field-manager=core-test", "--dry-run=server", "-f", "-"]
      const badPort = structuredClone(api)
      badPort.spec.template.spec.containers[0].ports[0].containerPort = 70000
      expect(() => kube.kubectl(dryRun, stringify(badPort))).toThrow(/must be between 1 and 65535/)
      const twoHandlers = structuredClone(api)
      twoHandlers.spec.template.spec.containers[0].readinessProbe.tcpSocket = { port: "http" }
      expect(() => kube.kubectl(dryRun, stringify(twoHandlers))).toThrow(/may not specify more than 1 handler type/)
      // and the unchanged object passes the same dry run
      kube.kubectl(dryRun, stringify(api))
    }, 120_000)
  })
}
