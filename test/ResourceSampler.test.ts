/**
 * The sampler on real process groups: a busy group shows CPU, a group's memory includes its children, a
 * stopped service shows nothing, the history keeps one value per sweep.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Ref, Stream } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { makeResourceSampler, procScanner, type Watched } from "../src/supervisor/ResourceSampler.js"
import { eventually, survivors } from "./support/Processes.js"

const started: Array<ChildProcess> = []

/** `sh -c script` in its own process group. */
const group = (script: string) => {
  const child = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" })
  started.push(child)
  return child.pid!
}

const endAll = async () => {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid!, "SIGKILL")
    } catch {
      // gone already
    }
  }
}

describe("procScanner", () => {
  it("finds every member of the watched groups, grandchildren included, and nothing else", async () => {
    try {
      const g = group("sleep 30 & sleep 31 & wait")
      const other = group("sleep 32")
      const scan = procScanner(3)
      expect(await eventually(() => scan(new Set([g])).length === 3)).toBe(true)
      // later sweeps, which skip the processes found outside, still find the members
      for (let i = 0; i < 5; i++) expect(scan(new Set([g])).map((p) => p.pgid)).toEqual([g, g, g])
      const others = scan(new Set([other]))
      expect(others.map((p) => p.pid)).toContain(other)
      expect(new Set(others.map((p) => p.pgid))).toEqual(new Set([other]))
      expect(scan(new Set())).toEqual([])
    } finally {
      await endAll()
    }
    expect(await eventually(() => survivors(started.map((c) => c.pid!)).length === 0)).toBe(true)
  })
})

describe("makeResourceSampler", () => {
  it.live("a busy group shows CPU, memory of all members; a service without a process shows null", () =>
    Effect.gen(function* () {
      const busy = group("while :; do :; done")
      const idle = group("sleep 30 & sleep 31 & wait")
      const watched = yield* Ref.make<ReadonlyArray<Watched>>([
        { name: "busy", pid: busy },
        { name: "idle", pid: idle },
        { name: "stopped", pid: null }
      ])
      const sampler = yield* makeResourceSampler(Ref.get(watched), { intervalMs: 200 })
      // the third sample is the second with a CPU figure
      const samples = yield* sampler.samples.pipe(Stream.take(3), Stream.runCollect)
      const last = [...samples].at(-1)!
      const byName = new Map(last.services.map((s) => [s.name, s]))
      // a shared, loaded machine may lend it far less than a core (the arithmetic is tested on its own); it
      // still shows busy, and busier than the sleeping group
      expect(byName.get("busy")!.cpu).toBeGreaterThan(1)
      expect(byName.get("busy")!.cpu).toBeLessThan(150)
      expect(byName.get("busy")!.cpu).toBeGreaterThan(byName.get("idle")!.cpu!)
      // three processes (sh and two sleeps): more than one process's memory
      expect(byName.get("idle")!.rss).toBeGreaterThan(byName.get("busy")!.rss!)
      expect(byName.get("stopped")).toEqual({ name: "stopped", cpu: null, rss: null })
      expect((yield* sampler.latest).get("busy")?.cpu).toBe(byName.get("busy")!.cpu)

      const history = yield* sampler.history()
      expect(history.intervalMs).toBe(200)
      expect(history.times.length).toBeGreaterThanOrEqual(3)
      expect(history.services.map((s) => s.name)).toEqual(["busy", "idle", "stopped"])
      for (const s of history.services) {
        expect(s.cpu.length).toBe(history.times.length)
        expect(s.rss.length).toBe(history.times.length)
      }
      expect(history.services[0]!.cpu[0]).toBeNull() // no CPU on the first reading
      expect(history.services[2]!.rss.every((x) => x === null)).toBe(true)
      const later = yield* sampler.history(history.times[1]!)
      expect(later.times).toEqual(history.times.slice(2, later.times.length + 2))

      // the group ends: its values go null
      yield* Effect.sync(() => process.kill(-busy, "SIGKILL"))
      const after = yield* sampler.samples.pipe(
        Stream.map((s) => s.services.find((x) => x.name === "busy")!),
        Stream.filter((s) => s.rss === null),
        Stream.take(1),
        Stream.runCollect
      )
      expect([...after]).toEqual([{ name: "busy", cpu: null, rss: null }])
    }).pipe(Effect.scoped, Effect.ensuring(Effect.promise(endAll)))
  )
})
