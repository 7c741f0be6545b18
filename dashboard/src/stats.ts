import { useEffect } from 'preact/hooks';
import type { QueueSettings, QueueView } from '../../shared/queues.js';
import type { JobStatus } from '../../shared/statuses.js';
import { api, report, type Failure, type Stats } from './api.js';
import { onChange, takesChange } from './live.js';
import { createStore, useStore } from './store.js';
import { countReading } from './throughput.js';

/**
 * The queues as every page sees them: queues.stats (counts per queue, type
 * and status) and queues.list (each queue's settings), read together in one
 * request and shared across pages. Read again on each change of live.ts
 * (coalesced events, or the polling fallback) while a page that shows them is
 * open. Both procedures scan task_queue: an admin page's cost, paid a few
 * times a second at most while jobs move, and once a minute when nothing does.
 */

/** One queue's line of the overview. */
export interface QueueRow {
  queue: string;
  counts: Record<JobStatus, number>;
  /** claimed + processing: jobs a worker holds. */
  held: number;
  /** The earliest scheduled_for among its pending jobs (in the future when all are delayed). */
  oldestPending: Date | null;
  types: string[];
  /** Paused state and limits (queues.list); null until read, or for a queue it does not know yet. */
  settings: QueueSettings | null;
}

/** The latest reading. `rows`: queues holding jobs (from stats); `queues`: every queue queues.list knows, with or without jobs. */
export interface QueuesState {
  stats: Stats | null;
  rows: QueueRow[];
  queues: QueueView[];
  failure: Failure | null;
  updatedAt: Date | null;
}

const EMPTY_COUNTS = (): Record<JobStatus, number> => ({ pending: 0, claimed: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 });

/** Folds queues.stats (counts per queue, type and status) into one row per queue, with its settings from `queues`. */
export function summarize(stats: Stats, queues: readonly QueueView[] = []): QueueRow[] {
  const settings = new Map(queues.map((q) => [q.name, q]));
  const rows = new Map<string, QueueRow>();
  for (const line of stats.counts) {
    let row = rows.get(line.queue);
    if (!row) {
      const s = settings.get(line.queue);
      row = {
        queue: line.queue,
        counts: EMPTY_COUNTS(),
        held: 0,
        oldestPending: null,
        types: [],
        settings: s ? { paused: s.paused, concurrency: s.concurrency, rateLimit: s.rateLimit, keyConcurrency: s.keyConcurrency, retentionDays: s.retentionDays, failedRetentionDays: s.failedRetentionDays } : null,
      };
      rows.set(line.queue, row);
    }
    const status = line.status as JobStatus;
    row.counts[status] = (row.counts[status] ?? 0) + line.count;
    if (!row.types.includes(line.type)) row.types.push(line.type);
    if (status === 'pending' && line.oldestScheduledFor && (!row.oldestPending || line.oldestScheduledFor < row.oldestPending)) {
      row.oldestPending = line.oldestScheduledFor;
    }
  }
  for (const row of rows.values()) row.held = row.counts.claimed + row.counts.processing;
  return [...rows.values()].sort((a, b) => a.queue.localeCompare(b.queue));
}

/** The latest reading, shared by every page. */
export const queuesLive = createStore<QueuesState>({ stats: null, rows: [], queues: [], failure: null, updatedAt: null });

function record(stats: Stats, queues: QueueView[]): void {
  const at = Date.now();
  const rows = summarize(stats, queues);
  const finished = new Map(rows.map((r) => [r.queue, r.counts.completed + r.counts.failed]));
  countReading(finished, at);
  queuesLive.set({ stats, rows, queues: [...queues].sort((a, b) => a.name.localeCompare(b.name)), failure: null, updatedAt: new Date(at) });
}

let inFlight: Promise<void> | null = null;

/** Reads queues.stats and queues.list once now (one reading at a time; both calls share one HTTP request). */
export function refreshQueues(): Promise<void> {
  inFlight ??= Promise.all([api.queues.stats.query(), api.queues.list.query()])
    .then(
      ([stats, list]) => record(stats, list.queues),
      (error: unknown) => queuesLive.set({ ...queuesLive.get(), failure: report(error) }),
    )
    .finally(() => {
      inFlight = null;
    });
  return inFlight;
}

/** After an action: waits for a reading already under way (it may predate the action), then reads again. */
export async function reloadQueues(): Promise<void> {
  if (inFlight) await inFlight;
  await refreshQueues();
}

/**
 * The queues. With `live`, read again on every change while the calling
 * component is mounted; without, once on mount when the last reading is older than 10 s.
 */
export function useQueues(live: boolean): QueuesState {
  useEffect(() => {
    const last = queuesLive.get().updatedAt;
    if (live || !last || Date.now() - last.getTime() > 10_000) void refreshQueues();
    if (!live) return;
    return onChange((change) => {
      if (takesChange(change) && !inFlight) void refreshQueues();
    });
  }, [live]);
  return useStore(queuesLive);
}
