/**
 * `lineBatcher` (src/cli/Output.ts): the foreground and background supervisor's output path joins the lines of
 * one turn of the event loop into one write, in order, and writes at once past its size limit.
 */
import { describe, expect, it } from "@effect/vitest"
import { lineBatcher } from "../src/cli/Output.js"

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("lineBatcher", () => {
  it("joins the lines pushed in one turn into one write, in order", async () => {
    const writes: Array<string> = []
    const out = lineBatcher((text) => writes.push(text))
    for (let i = 0; i < 1000; i++) out.push(`line ${i}\n`)
    expect(writes).toEqual([])
    await nextTurn()
    expect(writes.length).toBe(1)
    expect(writes[0]!.split("\n").slice(0, -1)).toEqual(Array.from({ length: 1000 }, (_, i) => `line ${i}`))
  })

  it("writes at once when the limit is reached, and keeps the order across writes", async () => {
    const writes: Array<string> = []
    const out = lineBatcher((text) => writes.push(text), 10)
    out.push("aaaa\n")
    out.push("bbbb\n") // 10 characters queued: written now
    expect(writes).toEqual(["aaaa\nbbbb\n"])
    out.push("cc\n")
    await nextTurn()
    await nextTurn()
    expect(writes).toEqual(["aaaa\nbbbb\n", "cc\n"])
  })

  it("flush writes what is queued at once, and nothing when nothing is", () => {
    const writes: Array<string> = []
    const out = lineBatcher((text) => writes.push(text))
    out.flush()
    expect(writes).toEqual([])
    out.push("last line before exit\n")
    out.flush()
    expect(writes).toEqual(["last line before exit\n"])
  })
})
