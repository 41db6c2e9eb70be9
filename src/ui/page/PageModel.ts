/** What the page knows of the stack: the latest snapshot, the transitions since and the resource history. */
import type { ServiceStatus } from "../../stack/ServiceStatus.js"

/** A service's latest resource sample; `null` where it could not be measured. */
export interface Usage {
  cpu: number | null
  rss: number | null
}

export const model = {
  dir: "",
  order: [] as Array<string>,
  rows: new Map<string, ServiceStatus>(),
  usage: new Map<string, Usage>(),
  times: [] as Array<number>,
  cpu: new Map<string, Array<number | null>>(),
  rss: new Map<string, Array<number | null>>(),
  /** Samples kept per series: 15 minutes at the supervisor's sampling interval. */
  capacity: 450,
  graphKey: "",
  supervisorUp: false
}
