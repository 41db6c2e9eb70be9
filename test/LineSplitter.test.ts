import { describe, expect, it } from "@effect/vitest"
import { LineSplitter } from "../src/logs/LineSplitter.js"

const feed = (splitter: LineSplitter, ...chunks: Array<string | Buffer>) =>
  chunks.flatMap((chunk) => [...splitter.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk).lines])

describe("LineSplitter", () => {
  it("yields complete lines and holds back a partial one", () => {
    const s = new LineSplitter()
    expect(feed(s, "a\nb\nc")).toEqual(["a", "b"])
    expect(s.bufferedBytes).toBe(1)
    expect(feed(s, "d\n")).toEqual(["cd"])
    expect(s.bufferedBytes).toBe(0)
  })

  it("end() flushes the last line without a newline, once", () => {
    const s = new LineSplitter()
    expect(feed(s, "x\nlast")).toEqual(["x"])
    const end = s.end()
    expect(end.lines).toEqual(["last"])
    expect(end.bytes.toString()).toBe("last\n")
    expect(s.end().lines).toEqual([])
  })

  it("strips CR of CRLF, also when CR and LF arrive in different chunks, and keeps other CRs", () => {
    const s = new LineSplitter()
    expect(feed(s, "a\r\nb\r", "\nc\rd\r\n", "\r\n")).toEqual(["a", "b", "c\rd", ""])
    expect(feed(s, "tail\r")).toEqual([])
    expect(s.end().lines).toEqual(["tail"])
  })

  it("keeps empty lines", () => {
    expect(feed(new LineSplitter(), "\n\nx\n\n")).toEqual(["", "", "x", ""])
  })

  it("keeps a line over 64 KiB whole across many chunks", () => {
    const s = new LineSplitter()
    const long = "y".repeat(300 * 1024)
    const chunks: Array<string> = []
    for (let i = 0; i < long.length; i += 7000) chunks.push(long.slice(i, i + 7000))
    expect(feed(s, "before\n", ...chunks, "\nafter\n")).toEqual(["before", long, "after"])
  })

  it("decodes a UTF-8 character split across chunks", () => {
    const bytes = Buffer.from("héllo ✓\n")
    const s = new LineSplitter()
    const lines = feed(s, ...[...bytes].map((b) => Buffer.from([b])))
    expect(lines).toEqual(["héllo ✓"])
  })

  it("returns the raw bytes of the completed lines, CRs included", () => {
    const s = new LineSplitter()
    expect(s.push(Buffer.from("p")).bytes.length).toBe(0)
    const r = s.push(Buffer.from("q\r\nr\ns"))
    expect(r.bytes.toString()).toBe("pq\r\nr\n")
    expect(r.lines).toEqual(["pq", "r"])
  })

  it("is not fooled by a reused chunk buffer", () => {
    const s = new LineSplitter()
    const chunk = Buffer.from("a\nbc")
    s.push(chunk)
    chunk.write("ZZZZ")
    expect(s.push(Buffer.from("d\n")).lines).toEqual(["bcd"])
  })
})
