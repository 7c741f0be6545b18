import type { JobStatus } from '../../../shared/statuses.js';

/** A job status as a badge: colour and word (the word alone carries the meaning). */
export function Status({ status }: { status: JobStatus }) {
  return <span class={`status status-${status}`}>{status}</span>;
}
