/**
 * Library entry point: the runtime for programs and tests.
 */
export { Caddy, DefaultStack, defaultStackDir, Nats, PocketBase } from "./library/DefaultServices.js"
export { type ServiceHandle, Stack, type StackOptions, type StackShape, serviceLayer } from "./library/Stack.js"
export type { LogLine } from "./logs/ServiceLog.js"
export * from "./manifest/ServiceManifest.js"
export * from "./manifest/ServiceSpec.js"
export { makeLocalSupervisor } from "./supervisor/LocalSupervisor.js"
export { ProcessRegistry } from "./process/ProcessRegistry.js"
export * from "./stack/ServiceStatus.js"
export * from "./supervisor/Supervisor.js"
