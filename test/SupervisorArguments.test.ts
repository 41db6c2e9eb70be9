/**
 * The background supervisor skips the CLI's parser only for the exact command line `spawnSupervisor` writes;
 * everything else goes through the CLI, whose parsing the supervisor's own tests (SupervisorSnapshot,
 * ControlPlane) exercise end to end.
 */
import { describe, expect, it } from "@effect/vitest"
import { supervisorArguments } from "../src/app/SupervisorSpawn.js"

const argv = (...args: Array<string>) => ["/usr/bin/node", "/opt/core/core-main.cjs", ...args]

describe("supervisorArguments", () => {
  it("reads `stack up --dir ROOT [SERVICE...]`", () => {
    expect(supervisorArguments(argv("stack", "up", "--dir", "/srv/stack"))).toEqual({ dir: "/srv/stack", services: [] })
    expect(supervisorArguments(argv("stack", "up", "--dir", "/srv/stack/", "api", "db"))).toEqual({
      dir: "/srv/stack",
      services: ["api", "db"]
    })
  })

  it("leaves anything else to the CLI", () => {
    for (const other of [
      argv("stack", "up"),
      argv("stack", "up", "--dir"),
      argv("stack", "up", "--dir", "relative"),
      argv("stack", "up", "-d", "--dir", "/srv/stack"),
      argv("stack", "up", "--dir", "/srv/stack", "-d"),
      argv("stack", "up", "--dir", "/srv/stack", "api", "--data", "/x"),
      argv("stack", "up", "--dir=/srv/stack"),
      argv("stack", "down", "--dir", "/srv/stack"),
      argv("up", "--dir", "/srv/stack"),
      argv("stack", "up", "--help", "--dir", "/srv/stack")
    ])
      expect(supervisorArguments(other), other.slice(2).join(" ")).toBeUndefined()
  })
})
