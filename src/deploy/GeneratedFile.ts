/** One file a deployment generator writes: a path relative to its output directory, and its text. */
export interface GeneratedFile {
  readonly path: string
  readonly content: string
}
