import { describe, expect, it } from "@effect/vitest"
import type { DependencyCondition } from "../src/manifest/ServiceManifest.js"
import {
  conditionVerdict,
  type DependencyState,
  settledVerdict,
  type Verdict
} from "../src/stack/DependencyCondition.js"
import { ServiceState } from "../src/stack/ServiceStatus.js"

const conditions: ReadonlyArray<DependencyCondition> = [
  "process_started",
  "process_healthy",
  "process_log_ready",
  "process_completed",
  "process_completed_successfully"
]

/**
 * One row per dependency situation: its state (and exit code, log-line facts where they matter), then the
 * expected verdict of each condition in the order above and of `settledVerdict`: M met, W wait, F failed.
 */
const table: ReadonlyArray<readonly [string, Omit<DependencyState, "status"> & { exitCode: number | null }, string]> = [
  ["pending", { exitCode: null, logReady: false, hasLogLine: false }, "WWWWW W"],
  ["waiting", { exitCode: null, logReady: false, hasLogLine: false }, "WWWWW W"],
  ["starting", { exitCode: null, logReady: false, hasLogLine: false }, "MWWWW W"],
  ["starting", { exitCode: null, logReady: false, hasLogLine: true }, "MWWWW W"],
  ["starting", { exitCode: null, logReady: true, hasLogLine: true }, "MWMWW W"],
  ["running", { exitCode: null, logReady: false, hasLogLine: false }, "MMMWW M"],
  ["running", { exitCode: null, logReady: false, hasLogLine: true }, "MMWWW M"],
  ["running", { exitCode: null, logReady: true, hasLogLine: true }, "MMMWW M"],
  ["ready", { exitCode: null, logReady: false, hasLogLine: false }, "MMMWW M"],
  ["ready", { exitCode: null, logReady: false, hasLogLine: true }, "MMWWW M"],
  ["ready", { exitCode: null, logReady: true, hasLogLine: true }, "MMMWW M"],
  ["restarting", { exitCode: 1, logReady: false, hasLogLine: false }, "WWWWW W"],
  ["stopping", { exitCode: null, logReady: true, hasLogLine: true }, "WWWWW W"],
  ["stopped", { exitCode: null, logReady: false, hasLogLine: false }, "FFFFF F"],
  ["completed", { exitCode: 0, logReady: false, hasLogLine: false }, "MFFMM M"],
  ["completed", { exitCode: 3, logReady: false, hasLogLine: false }, "MFFMF F"],
  ["failed", { exitCode: null, logReady: false, hasLogLine: false }, "FFFFF F"],
  ["failed", { exitCode: 2, logReady: false, hasLogLine: false }, "MFFMF F"],
  ["skipped", { exitCode: null, logReady: false, hasLogLine: false }, "FFFFF F"],
  ["disabled", { exitCode: null, logReady: false, hasLogLine: false }, "FFFFF F"]
]

const letter = (verdict: Verdict) => (verdict === "met" ? "M" : verdict === "wait" ? "W" : "F")

describe("DependencyCondition", () => {
  it("the table covers every service state", () => {
    expect(new Set(table.map(([state]) => state))).toEqual(new Set(ServiceState.literals))
  })

  it.each(table)("%s %o: %s", (state, facts, expected) => {
    const status = { state: state as ServiceState, exitCode: facts.exitCode, reason: null }
    const dependency: DependencyState = { status, logReady: facts.logReady, hasLogLine: facts.hasLogLine }
    const verdicts = conditions.map((condition) => letter(conditionVerdict(condition, dependency))).join("")
    expect(`${verdicts} ${letter(settledVerdict(status))}`).toBe(expected)
  })

  it("a condition that can no longer be met says why", () => {
    const status = { state: "failed" as const, exitCode: null, reason: "command not found" }
    expect(conditionVerdict("process_healthy", { status, logReady: false, hasLogLine: false })).toEqual({
      failed: "it is failed (command not found)"
    })
    expect(settledVerdict({ state: "stopped", exitCode: null, reason: null })).toEqual({ failed: "it is stopped" })
  })
})
