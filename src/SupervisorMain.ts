/**
 * The background supervisor's program: `stack up --dir ROOT [SERVICE...]`, as `spawnSupervisor` writes it,
 * run as the foreground `up` without the CLI's parser. The supervisor's startup snapshot (`SupervisorSnapshot`)
 * is built from this module and not from the CLI (`Main`): no parser, no client verbs, no deployment
 * generators. Its heap is ~0.7 MB smaller (the blob 10.1 -> 9.3 MB), and the supervisor's Node start
 * deserializes it ~7 ms sooner (`--profile-deserialization`, 24 alternated starts in a slow phase of the
 * machine: 70.4 -> 63.7 ms).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Layer, Option } from "effect"
import type { SupervisorArguments } from "./app/SupervisorSpawn.js"
import { foreground } from "./cli/Foreground.js"
import { runProgram } from "./Program.js"

/**
 * What the background supervisor's program needs, and no more: building the whole `MainLive` (Node's command
 * executor, terminal and worker layers, the CLI's config) was ~10 ms of its start before the first spawn
 * (traced, 6 alternated runs each: 15-23 ms from the bundle to the command against 6-10 ms with this).
 */
export const SupervisorLive = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

/**
 * The background supervisor's `stack up --dir ROOT [SERVICE...]` without the CLI's parser (~45 ms of its
 * start, traced): the foreground `up` the CLI would run for those arguments.
 */
export const mainSupervisor = (args: SupervisorArguments) =>
  runProgram(foreground({ dir: args.dir, services: args.services, data: Option.none() }), SupervisorLive)
