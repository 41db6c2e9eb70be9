/**
 * What the deployment generators produce: files, each a path relative to the output directory and its text.
 * Generators are pure (stack in, files out); the `deploy` commands write the files.
 */

/** One generated file. */
export interface GeneratedFile {
  /** Relative to the output directory, `/`-separated. */
  readonly path: string
  readonly content: string
}
