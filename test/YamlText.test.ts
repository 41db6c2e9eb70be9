import { describe, expect, it } from "@effect/vitest"
import { parse, parseDocument } from "yaml"
import { scalar, yamlText } from "../src/deploy/YamlText.js"

/** What process-compose's envsubst does to the file's text before parsing it: `\\` and `\/` are escapes. */
const envsubst = (text: string): string => text.replace(/\\([\\/])/g, "$1")

/**
 * Reads `text` back under both YAML versions that process-compose's and our readers may apply, as it is and
 * as process-compose sees it after envsubst (the writer must leave it nothing to change).
 */
const readBoth = (text: string): ReadonlyArray<unknown> => {
  expect(envsubst(text)).toBe(text)
  return (["1.1", "1.2"] as const).map((version) => {
    const doc = parseDocument(text, { version, uniqueKeys: true })
    expect(doc.errors).toEqual([])
    return doc.toJS()
  })
}

const tricky = [
  "",
  " ",
  " lead",
  "trail ",
  "a b",
  "yes",
  "No",
  "ON",
  "off",
  "y",
  "N",
  "null",
  "~",
  "true",
  "False",
  "=",
  "<<",
  ".inf",
  "-.Inf",
  ".NaN",
  "0",
  "-1",
  "+2",
  "1_000",
  "0x1F",
  "0o17",
  "0b101",
  "190:20:30",
  ".5",
  "-.5",
  "1e3",
  "e0",
  ".",
  "..",
  "+",
  ".e1",
  "-E+2",
  "127.0.0.1",
  "250m",
  "1Gi",
  "1E",
  "1e",
  "10e5x",
  "1_0a",
  "0x",
  "2001-12-14",
  "2001-12-14t21:59:43.10-05:00",
  "-",
  "-c",
  "--http=127.0.0.1:8090",
  "?",
  "?x",
  ":",
  ":x",
  "a:",
  "a: b",
  "a:b",
  "http://x:1/y",
  "a #b",
  "a#b",
  "#x",
  "!tag",
  "&anchor",
  "*alias",
  "|",
  ">",
  "'single'",
  '"double"',
  "%s\\n",
  "@x",
  "`x",
  ",x",
  "[x]",
  "{x}",
  "{{ .x }}",
  'renders {{"{{"}} .Values }} literally',
  "QUOTES=\"double\" 'single'",
  "line 1\nline 2",
  "ends\n",
  "ends twice\n\n",
  "ends thrice\n\n\n",
  "\nstarts",
  " indented\nnext",
  "\tfirst\nnext",
  "a\n  indented\n\n   \nb  \n",
  "---\n...\n# not a comment\n- not an item",
  "x\n\ty",
  "tab\there",
  "cr\rhere",
  "nul\0here",
  "bell\x07",
  "del\x7f",
  "nel\u0085",
  "ls\u2028ps\u2029",
  "bom\ufeff",
  "lone \ud800 surrogate",
  "émoji 😀 中文",
  "back\\slash",
  "\\\\ a\\/b \\d+ prêt",
  "C:\\dir\\",
  "--- x",
  "... x",
  "---",
  "$HOME ${USER} $$",
  "a=b=c"
]

describe("YamlText", () => {
  it("writes every tricky string so that YAML 1.1 and 1.2 both read the same string back", () => {
    for (const s of tricky) {
      const text = yamlText({ value: s, list: [s], [s === "" ? "empty" : s]: 1 })
      for (const back of readBoth(text)) {
        expect(back, `${JSON.stringify(s)} written as ${text}`).toEqual({
          value: s,
          list: [s],
          [s === "" ? "empty" : s]: 1
        })
      }
    }
  })

  it("round-trips random strings of awkward characters, under both versions", () => {
    const alphabet = [..." -?:#,'\"{}[]!&*|>%@`\\\n\t.0123456789aeEoyYnNxb=<~+_/"]
    let seed = 42
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let i = 0; i < 20_000; i++) {
      const length = Math.floor(random() * 10)
      const s = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join("")
      const text = yamlText({ k: s, l: [s] })
      for (const back of readBoth(text))
        expect(back, `${JSON.stringify(s)} written as ${text}`).toEqual({ k: s, l: [s] })
    }
  })

  it("writes a string of several lines as a literal block when it can, clipped, stripped or kept", () => {
    expect(yamlText({ a: "x\ny", b: "x\n", c: "x\n\n", d: ["p\nq"] })).toBe(
      "a: |-\n  x\n  y\nb: |\n  x\nc: |+\n  x\n\nd:\n  - |-\n    p\n    q\n"
    )
    expect(yamlText({ a: " x\ny" })).toBe('a: " x\\ny"\n')
  })

  it("writes nested mappings and sequences, empty ones, numbers, booleans and null as the yaml library reads them", () => {
    const value = {
      version: "0.5",
      flag: true,
      off: false,
      none: null,
      count: 3,
      ratio: 0.25,
      negative: -7,
      empty: {},
      nothing: [],
      nested: { list: ["a", { b: 1, c: ["d"] }, [], {}, ["x", "y"]], deep: { deeper: { deepest: "z" } } }
    }
    for (const back of readBoth(yamlText(value))) expect(back).toEqual(value)
    expect(parse(yamlText(value))).toEqual(value)
  })

  it("writes the header and the comments above keys as comments", () => {
    const text = yamlText(
      { processes: { api: { a: 1 }, db: { b: 2 } } },
      { header: [" one", " two"], comments: new Map([["/processes/db", [" why", "  more"]]]) }
    )
    expect(text).toBe("# one\n# two\n\nprocesses:\n  api:\n    a: 1\n  # why\n  #  more\n  db:\n    b: 2\n")
    for (const back of readBoth(text)) expect(back).toEqual({ processes: { api: { a: 1 }, db: { b: 2 } } })
  })

  it("writes a key longer than YAML's 1024 characters of an implicit key as an explicit one", () => {
    const long = "k".repeat(1500)
    const value = { [long]: "v", nested: { [long]: { a: [long] } }, list: [{ [long]: 1 }] }
    for (const back of readBoth(yamlText(value))) expect(back).toEqual(value)
  })

  it("keeps a comment that holds line breaks a comment, leaves undefined out, writes an empty mapping as {}", () => {
    const text = yamlText(
      { a: 1, b: undefined },
      { header: [" one\nx: 2", " two\r\ny: 3\u2028z: 4"], comments: new Map([["/a", [" c\nd: 5"]]]) }
    )
    for (const back of readBoth(text)) expect(back).toEqual({ a: 1 })
    expect(yamlText({})).toBe("{}\n")
    expect(parse(yamlText({}))).toEqual({})
  })

  it("refuses what YAML data cannot hold", () => {
    expect(() => scalar(Number.NaN)).toThrow(/finite/)
    expect(() => scalar(() => 1)).toThrow(/cannot write/)
  })
})
