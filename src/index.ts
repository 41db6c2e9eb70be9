/**
 * Library entry point: the runtime for programs and tests.
 */
export * from "./manifest/ServiceManifest.js"
export * from "./manifest/ServiceSpec.js"
