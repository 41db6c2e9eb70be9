import { describe, expect, it } from "vitest"
import { parseDetachedUp } from "../src/app/SupervisorSpawn.js"

describe("parseDetachedUp (what the launcher may start before loading the CLI)", () => {
  const env = { CORE_DIR: "/stacks/env" }

  it("recognises stack up -d with --dir, --dir=, CORE_DIR or the current directory, and service names", () => {
    expect(parseDetachedUp(["stack", "up", "-d", "--dir", "/s"], {}, "/cwd")).toEqual({ root: "/s", services: [] })
    expect(parseDetachedUp(["stack", "up", "api", "--detach", "--dir=rel", "web"], {}, "/cwd")).toEqual({
      root: "/cwd/rel",
      services: ["api", "web"]
    })
    expect(parseDetachedUp(["stack", "up", "-d"], env, "/cwd")).toEqual({ root: "/stacks/env", services: [] })
    expect(parseDetachedUp(["stack", "up", "-d"], {}, "/cwd")).toEqual({ root: "/cwd", services: [] })
  })

  it("leaves everything else to the CLI", () => {
    const leftToCli = [
      ["stack", "up"],
      ["stack", "up", "api"],
      ["stack", "status", "-d"],
      ["stack", "up", "-d", "--help"],
      ["stack", "up", "-d", "--dir"],
      ["stack", "up", "-d", "--dir", "--detach"],
      ["stack", "up", "-d", "--dir", "/a", "--dir", "/b"],
      ["stack", "up", "-d", "--dir="],
      ["stack", "up", "-d", "--wizard"],
      ["stack", "up", "-d", "../x"],
      ["api", "run", "-d"]
    ]
    for (const argv of leftToCli) expect(parseDetachedUp(argv, env, "/cwd"), argv.join(" ")).toBeUndefined()
  })
})
