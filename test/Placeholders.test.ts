// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifest placeholders are the subject of these tests
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { envReferencesIn } from "../src/manifest/EnvReferences.js"
import {
  type PlaceholderContext,
  parseEnvReference,
  replacePlaceholders,
  resolvePlaceholders
} from "../src/manifest/Placeholders.js"

const ctx: PlaceholderContext = {
  dataDir: "/stack/.data",
  depDir: "/stack/.dep",
  serviceDir: "/stack/services/api",
  env: { HOME_DIR: "/home/me", EMPTY: "", UNSET: undefined },
  ports: { http: 8080, admin: 9090 },
  servicePorts: { api: { http: 8080, admin: 9090 }, nats: { client: 4222, monitor: 8222 } },
  binaries: new Set(["nats-server", "api"])
}

const ok = (text: string) => {
  const result = resolvePlaceholders(text, ctx)
  if (Either.isLeft(result)) throw new Error(`unexpected problems: ${result.left.join("; ")}`)
  return result.right
}

const bad = (text: string) => {
  const result = resolvePlaceholders(text, ctx)
  if (Either.isRight(result)) throw new Error(`expected problems, got ${JSON.stringify(result.right)}`)
  return result.left
}

describe("resolvePlaceholders", () => {
  it("leaves text without placeholders alone, including lone $", () => {
    expect(ok("plain --flag=$HOME $ 100$")).toBe("plain --flag=$HOME $ 100$")
    expect(ok("")).toBe("")
  })

  it("resolves paths: dep, data, dir", () => {
    expect(ok("${dep.nats-server}")).toBe("/stack/.dep/nats-server")
    expect(ok("--store_dir=${data}/nats")).toBe("--store_dir=/stack/.data/nats")
    expect(ok("${dir}/Caddyfile")).toBe("/stack/services/api/Caddyfile")
  })

  it("resolves env variables, with defaults for unset or empty ones", () => {
    expect(ok("${env.HOME_DIR}/x")).toBe("/home/me/x")
    expect(ok("${env.EMPTY}")).toBe("")
    expect(ok("${env.UNSET:-fallback}")).toBe("fallback")
    expect(ok("${env.EMPTY:-fallback}")).toBe("fallback")
    expect(ok("${env.HOME_DIR:-fallback}")).toBe("/home/me")
    expect(ok("${env.NOPE:-}")).toBe("")
    expect(ok("${env.NOPE:-a b:c}")).toBe("a b:c")
  })

  it("resolves this service's ports and other services' ports", () => {
    expect(ok("127.0.0.1:${port.http}")).toBe("127.0.0.1:8080")
    expect(ok("nats://127.0.0.1:${svc.nats.port.client}")).toBe("nats://127.0.0.1:4222")
    expect(ok("${port.http}-${port.admin}")).toBe("8080-9090")
  })

  it("turns $${...} into a literal ${...}", () => {
    expect(ok("$${port.http}")).toBe("${port.http}")
    expect(ok("echo $${HOME} ${port.http}")).toBe("echo ${HOME} 8080")
    expect(ok("$${nonsense}")).toBe("${nonsense}")
  })

  it("reports an unset variable without default", () => {
    const problems = bad("${env.UNSET}")
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain("${env.UNSET}")
    expect(problems[0]).toContain("UNSET is not set")
  })

  it("reports unknown ports, services and binaries with what is known", () => {
    expect(bad("${port.grpc}")[0]).toBe('${port.grpc}: this service has no port "grpc" (ports: admin, http)')
    expect(bad("${svc.db.port.sql}")[0]).toBe('${svc.db.port.sql}: unknown service "db" (known: api, nats)')
    expect(bad("${svc.nats.port.http}")[0]).toContain('service "nats" has no port "http" (ports: client, monitor)')
    expect(bad("${svc.nats.client}")[0]).toContain("expected ${svc.SERVICE.port.NAME}")
    expect(bad("${dep.caddy}")[0]).toBe(
      '${dep.caddy}: no service declares a binary "caddy" (declared: api, nats-server)'
    )
  })

  it("reports unknown placeholder kinds", () => {
    const [problem] = bad("${home}")
    expect(problem).toContain("unknown placeholder ${home}")
    expect(problem).toContain("${svc.SERVICE.port.NAME}")
    expect(bad("${}")[0]).toContain("unknown placeholder ${}")
    expect(bad("${data.x}")[0]).toContain("unknown placeholder ${data.x}")
  })

  it("reports an env placeholder whose name is no variable name", () => {
    expect(bad("${env.1X}")[0]).toContain("invalid variable name in ${env.1X}")
    expect(bad("${env.A-B:-x}")[0]).toContain("invalid variable name")
    expect(bad("${env.}")[0]).toContain("invalid variable name")
    expect(ok("${env.NOPE:-a:-b}")).toBe("a:-b")
  })

  it("reports an unterminated placeholder", () => {
    expect(bad("x ${port.http")[0]).toContain("unterminated placeholder")
  })

  it("collects every problem of one string", () => {
    expect(bad("${env.UNSET} ${port.nope} ${what} ${port.http}")).toHaveLength(3)
  })
})

describe("services with an invalid manifest", () => {
  it("says so instead of calling them unknown", () => {
    const result = resolvePlaceholders("${svc.db.port.sql}", { ...ctx, unavailable: new Set(["db"]) })
    expect(Either.isLeft(result) && result.left[0]).toContain('the manifest of service "db" is invalid')
  })
})

describe("env references", () => {
  it("parses env.NAME and env.NAME:-default, nothing else", () => {
    expect(parseEnvReference("env.TOKEN")).toEqual({ name: "TOKEN", fallback: undefined })
    expect(parseEnvReference("env.LEVEL:-")).toEqual({ name: "LEVEL", fallback: "" })
    expect(parseEnvReference("env.URL:-http://a:-b}")).toEqual({ name: "URL", fallback: "http://a:-b}" })
    expect(parseEnvReference("env.1X")).toBeUndefined()
    expect(parseEnvReference("env.A-B")).toBeUndefined()
    expect(parseEnvReference("port.http")).toBeUndefined()
  })

  it("finds them in one string, $${...} excepted", () => {
    expect(envReferencesIn("${env.A} $${env.B} ${port.http} ${env.C:-c} ${env.bad-name} ${env.D")).toEqual([
      { name: "A", fallback: undefined },
      { name: "C", fallback: "c" }
    ])
  })
})

describe("replacePlaceholders", () => {
  const upper = (body: string) => (body.startsWith("env.") ? body.toUpperCase() : undefined)

  it("replaces what the function answers for and keeps everything else as written", () => {
    expect(replacePlaceholders("a ${env.x} ${port.http} $${env.y} $ b", upper)).toBe(
      "a ENV.X ${port.http} $${env.y} $ b"
    )
    expect(replacePlaceholders("${env.x}${env.y}", upper)).toBe("ENV.XENV.Y")
    expect(replacePlaceholders("", upper)).toBe("")
  })

  it("keeps an unterminated placeholder as written", () => {
    expect(replacePlaceholders("${env.x} and ${env.y", upper)).toBe("ENV.X and ${env.y")
  })
})
