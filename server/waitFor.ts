import { FINAL_STATUSES, type JobStatus, type JobView, type WaitForAnswer } from '../shared/index.js';
import type { LeaseDeps } from './leases.js';

const FINISHED: ReadonlySet<JobStatus> = new Set(FINAL_STATUSES);

/**
 * Waits until the job is finished or `timeoutMs` passed, reading it with
 * `read` (which also decides who may see it). Woken by this server's own
 * finishing moves and by `skipq_done` from other servers (see jobWaiters.ts);
 * re-reads every `pollIntervalMs` as well, like a waiting claim, so a lost
 * LISTEN connection or an unannounced finish (SQL `complete_task`) costs at
 * most one poll. Never a busy loop: between reads it sleeps on its watch.
 */
export async function waitForJob(
  deps: Pick<LeaseDeps, 'waiters' | 'pollIntervalMs' | 'isClosing'>,
  id: string,
  timeoutMs: number,
  read: () => Promise<JobView>,
  signal?: AbortSignal,
): Promise<WaitForAnswer> {
  const deadline = Date.now() + timeoutMs;
  // Registered before the first read: a finish between the read and the wait still wakes it.
  const watch = timeoutMs > 0 ? await deps.waiters?.watch(id) : undefined;
  try {
    for (;;) {
      const job = await read();
      if (FINISHED.has(job.status)) return { finished: true, job };
      const remaining = deadline - Date.now();
      if (remaining <= 0 || signal?.aborted || deps.isClosing()) return { finished: false, job };
      const nap = Math.min(remaining, deps.pollIntervalMs);
      if (watch) await watch.wait(nap, signal);
      else await new Promise((resolve) => setTimeout(resolve, nap));
    }
  } finally {
    watch?.cancel();
  }
}
