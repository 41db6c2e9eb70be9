import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import {
  describeJsonError,
  describeParseIssue,
  formatPath,
  formatProblem,
  locateJsonError
} from "../src/manifest/ManifestError.js"
import { ServiceManifest } from "../src/manifest/ServiceManifest.js"

const jsonError = (text: string): string => {
  try {
    JSON.parse(text)
  } catch (error) {
    return describeJsonError(text, error)
  }
  throw new Error(`valid JSON: ${text}`)
}

const schemaLines = (input: unknown): ReadonlyArray<string> => {
  const result = Schema.decodeUnknownEither(ServiceManifest, { errors: "all", onExcessProperty: "error" })(input)
  if (Either.isRight(result)) throw new Error("decoded")
  return describeParseIssue(result.left.issue).map((line) => `${line.path}: ${line.message}`)
}

describe("JSON errors", () => {
  it("gives line and column of the first error", () => {
    expect(jsonError('{\n  "a": 1,\n  "b": }')).toBe(
      'invalid JSON at line 3, column 8: unexpected "}", expected a value'
    )
    expect(jsonError('{\n "a": 1\n "b": 2}')).toBe(
      `invalid JSON at line 3, column 2: unexpected "\\"", expected ',' or '}' after a value`
    )
    expect(jsonError("")).toBe("invalid JSON at line 1, column 1: unexpected end of input, expected a value")
  })

  it("names trailing commas, bad literals, unquoted keys and trailing text", () => {
    expect(jsonError('{"a": [1, 2,]}')).toContain("column 13: trailing comma before ']'")
    expect(jsonError('{"a": 1,}')).toContain("trailing comma before '}'")
    expect(jsonError('{"a": tru}')).toContain('column 7: unexpected "tru}", expected true')
    expect(jsonError("{a: 1}")).toContain('column 2: unexpected "a", expected a quoted key')
    expect(jsonError('{"a": 1} x')).toContain("after the end of the JSON value")
    expect(jsonError('{"a": "x\ny"}')).toContain("control character in string")
  })

  it("accepts what JSON.parse accepts", () => {
    for (const text of ['{"a": [1, -2.5e3, "\\u00e9\\n", true, false, null, {}], "b": []}', " 0 ", '"x"']) {
      expect(locateJsonError(text)).toBeUndefined()
    }
  })
})

describe("schema issues", () => {
  it("lists the allowed keys for an unknown key", () => {
    expect(schemaLines({ process: { command: "x", comand: "y" } })).toEqual([
      "process.comand: is unexpected: unknown key (allowed: command, args, env, compose, x-*)"
    ])
  })

  it("merges the alternatives of a literal union into one line", () => {
    expect(schemaLines({ process: { command: "x", compose: { availability: { restart: "never" } } } })).toEqual([
      'process.compose.availability.restart: expected one of "no", "on_failure", "always", "exit_on_failure", actual "never"'
    ])
  })

  it("merges a number-or-string union and reports every problem", () => {
    expect(
      schemaLines({
        process: { command: 1, compose: { readiness_probe: { tcp: { port: true } }, disabled: "yes" } },
        ports: { a: 1.5 }
      })
    ).toEqual([
      "process.command: expected a string, actual 1",
      "process.compose.readiness_probe.tcp.port: expected a number between 1 and 65535 or a string, actual true",
      'process.compose.disabled: expected a boolean, actual "yes"',
      "ports.a: expected an integer, actual 1.5"
    ])
  })

  it("describes a missing key and a wrong container type without dumping the schema", () => {
    expect(schemaLines({})).toEqual(["process: is missing (expected an object)"])
    expect(schemaLines([])).toEqual([": expected an object, actual []"])
    expect(schemaLines({ process: { command: "x", env: [] } })).toEqual([
      "process.env: expected an object (a map of names to values), actual []"
    ])
  })
})

describe("formatting", () => {
  it("formats JSON paths", () => {
    expect(formatPath(["process", "args", 0])).toBe("process.args[0]")
    expect(formatPath(["process", "env", "MY.VAR"])).toBe('process.env["MY.VAR"]')
    expect(formatPath(["binaries", "nats-server", "version"])).toBe("binaries.nats-server.version")
    expect(formatPath([])).toBe("")
  })

  it("leaves empty parts out of a problem line", () => {
    expect(formatProblem({ step: "s", file: "services/", path: "", message: "m" })).toBe("services/: m")
    expect(formatProblem({ step: "s", file: "", path: "", message: "m" })).toBe("m")
  })
})
