/**
 * Every object that `core deploy k8s` writes, validated offline against the Kubernetes 1.34 schemas in strict
 * mode (`kubernetes-validate --strict`: an unknown field or a wrong type fails), as generated and as
 * `kubectl kustomize` renders the base (the Secret of `secretGenerator` included).
 *
 * In CI this never skips: a missing tool fails it. Locally it skips, saying which tool is missing.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inCi } from "./support/DefaultStackCopy.js"
import { k8sCases, renderCase } from "./support/K8sCases.js"
import { missingKubeTools } from "./support/KubeApiServer.js"

const missing = missingKubeTools(["kubectl", "validate"])

/** `kubernetes-validate --strict` against 1.34 on the files; its output when it fails. */
const validate = (files: ReadonlyArray<string>) => {
  const run = spawnSync("kubernetes-validate", ["-k", "1.34.0", "--strict", "--quiet", ...files], { encoding: "utf8" })
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` }
}

if (missing.length > 0 && !inCi()) {
  describe.skip(`Kubernetes schemas: SKIPPED, missing ${missing.join(", ")}`, () => {
    it("runs when the tools are installed", () => {})
  })
} else {
  describe("Kubernetes 1.34 schemas, strict", () => {
    it("has its tools", () => {
      expect(missing).toEqual([])
    })

    for (const c of k8sCases) {
      it(`${c.name}: every generated object and the rendered base validate`, () => {
        const dir = mkdtempSync(join(tmpdir(), "core-k8s-schema-"))
        try {
          const rendered = renderCase(c, join(dir, "base"))
          writeFileSync(join(dir, "rendered.yaml"), rendered)
          const objects = readdirSync(join(dir, "base"))
            .filter((name) => name.endsWith(".yaml") && name !== "kustomization.yaml")
            .map((name) => join(dir, "base", name))
          expect(objects.length).toBeGreaterThan(3)
          const result = validate([...objects, join(dir, "rendered.yaml")])
          expect(result.output).toBe("")
          expect(result.ok).toBe(true)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      })
    }

    it("the validation is strict: an unknown field and a wrong type fail", () => {
      const dir = mkdtempSync(join(tmpdir(), "core-k8s-schema-"))
      try {
        renderCase(k8sCases.find((c) => c.name === "fixture-split")!, join(dir, "base"))
        const store = readFileSync(join(dir, "base", "store.yaml"), "utf8")
        writeFileSync(join(dir, "unknown.yaml"), store.replace("enableServiceLinks:", "enableServiceLink:"))
        writeFileSync(join(dir, "type.yaml"), store.replace("replicas: 1", 'replicas: "one"'))
        const unknown = validate([join(dir, "unknown.yaml")])
        expect(unknown.ok).toBe(false)
        expect(unknown.output).toContain("'enableServiceLink' was unexpected")
        const type = validate([join(dir, "type.yaml")])
        expect(type.ok).toBe(false)
        expect(type.output).toContain("is not of type 'integer'")
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}
