import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { mergeDotEnv, parseDotEnv } from "../src/manifest/DotEnv.js"

const vars = (text: string) => {
  const result = parseDotEnv(text)
  if (Either.isLeft(result)) throw new Error(`unexpected problems: ${JSON.stringify(result.left)}`)
  return result.right
}

const problems = (text: string) => {
  const result = parseDotEnv(text)
  if (Either.isRight(result)) throw new Error(`expected problems, got ${JSON.stringify(result.right)}`)
  return result.left
}

describe("parseDotEnv", () => {
  it("reads KEY=VALUE lines, export prefix, comments and blank lines", () => {
    const text = ["# a comment", "", "A=1", "export B=two", "  C = spaced value  ", "D=", "E=x=y"].join("\n")
    expect(vars(text)).toEqual({ A: "1", B: "two", C: "spaced value", D: "", E: "x=y" })
  })

  it("strips inline comments from bare values only after whitespace", () => {
    expect(vars("A=value # note\nB=a#b\nC= # only a comment")).toEqual({ A: "value", B: "a#b", C: "" })
  })

  it("handles double quotes with escapes and single quotes literally", () => {
    const text = [`A="hello world"`, `B='its'`, `C="line1\\nline2 \\"q\\""`, `D='no \\n escape'`]
    expect(vars(text.join("\n"))).toEqual({
      A: "hello world",
      B: "its",
      C: 'line1\nline2 "q"',
      D: "no \\n escape"
    })
  })

  it("keeps # inside quotes and allows a comment after the closing quote", () => {
    expect(vars(`A="a # b" # comment\nB='#'`)).toEqual({ A: "a # b", B: "#" })
  })

  it("accepts a double-quoted value across lines", () => {
    expect(vars(`A="one\ntwo"\nB=3`)).toEqual({ A: "one\ntwo", B: "3" })
  })

  it("accepts CRLF line ends, and a later key wins", () => {
    expect(vars("A=1\r\nA=2\r\n")).toEqual({ A: "2" })
  })

  it("reports every malformed line with its line number", () => {
    const found = problems(["A=1", "just words", "", "1BAD=x", "export =y", "C=ok"].join("\n"))
    expect(found.map((p) => p.line)).toEqual([2, 4, 5])
    expect(found[0]!.message).toContain("expected KEY=VALUE")
    expect(found[1]!.message).toContain(`invalid variable name "1BAD"`)
  })

  it("refuses the name __proto__, which an object would drop without a word", () => {
    expect(problems("A=1\n__proto__=x")).toEqual([
      { line: 2, message: `"__proto__" cannot be a name: it is reserved in JavaScript objects` }
    ])
    expect(vars("toString=x")).toEqual({ toString: "x" })
  })

  it("reports an unterminated quote and text after a closing quote", () => {
    expect(problems(`A=1\nB="open`)).toEqual([{ line: 2, message: "unterminated double quote" }])
    expect(problems(`A='x' y`)[0]).toMatchObject({
      line: 1,
      message: expect.stringContaining("after the closing quote")
    })
  })
})

describe("mergeDotEnv", () => {
  it("keeps a variable named __proto__ from the environment, as a variable", () => {
    const env: Record<string, string> = {}
    Object.defineProperty(env, "__proto__", { value: "x", enumerable: true })
    const merged = mergeDotEnv(env, { A: "file" })
    expect(Object.hasOwn(merged, "__proto__")).toBe(true)
    expect(Object.entries(merged)).toEqual([
      ["A", "file"],
      ["__proto__", "x"]
    ])
  })

  it("lets a variable already in the environment win", () => {
    expect(mergeDotEnv({ A: "env", B: undefined }, { A: "file", B: "file", C: "file" })).toEqual({
      A: "env",
      B: "file",
      C: "file"
    })
  })

  it("keeps an empty variable from the environment", () => {
    expect(mergeDotEnv({ A: "" }, { A: "file" })).toEqual({ A: "" })
  })
})
