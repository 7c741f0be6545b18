import { useEffect } from 'preact/hooks';
import { api, report, type Failure, type Stats } from './api.js';
import type { JobStatus } from '../../shared/statuses.js';
import { createStore, useStore } from './store.js';

/**
 * LIVE UPDATES, FOR NOW BY POLLING. While a page that shows counts is on
 * screen (and the tab is visible), queues.stats is read every POLL_MS and the
 * throughput chart is fed from the differences between readings.
 *
 * The events subscription (`events.jobs`, the results/events issue) replaces
 * this file's poller: subscribe once, apply each event to the counts, and feed
 * the chart from the events themselves instead of from sampled counts.
 * queues.stats scans task_queue, so polling it is an admin-page cost, not a
 * hot-path one; that is another reason for the subscription.
 */
export const POLL_MS = 1500;

/** How much history the throughput chart keeps (the issue asks for 15 minutes). */
export const WINDOW_MS = 15 * 60_000;

/** One queue's line of the overview. */
export interface QueueRow {
  queue: string;
  counts: Record<JobStatus, number>;
  /** claimed + processing: jobs a worker holds. */
  held: number;
  /** The earliest scheduled_for among its pending jobs (in the future when all are delayed). */
  oldestPending: Date | null;
  types: string[];
}

/** One reading of queues.stats: finished jobs (completed + failed) per queue. */
export interface Sample {
  at: number;
  finished: Map<string, number>;
}

interface LiveState {
  stats: Stats | null;
  rows: QueueRow[];
  failure: Failure | null;
  updatedAt: Date | null;
}

const EMPTY_COUNTS = (): Record<JobStatus, number> => ({ pending: 0, claimed: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 });

/** Folds queues.stats (counts per queue, type and status) into one row per queue. */
export function summarize(stats: Stats): QueueRow[] {
  const rows = new Map<string, QueueRow>();
  for (const line of stats.counts) {
    let row = rows.get(line.queue);
    if (!row) {
      row = { queue: line.queue, counts: EMPTY_COUNTS(), held: 0, oldestPending: null, types: [] };
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
export const live = createStore<LiveState>({ stats: null, rows: [], failure: null, updatedAt: null });

/** Readings of the last {@link WINDOW_MS}, oldest first, kept while the dashboard is open. */
export const samples = createStore<readonly Sample[]>([]);

let watchers = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
let inFlight: Promise<void> | null = null;

function record(stats: Stats, rows: QueueRow[]): void {
  const at = Date.now();
  const finished = new Map(rows.map((r) => [r.queue, r.counts.completed + r.counts.failed]));
  const kept = samples.get().filter((s) => s.at > at - WINDOW_MS);
  samples.set([...kept, { at, finished }]);
  live.set({ stats, rows, failure: null, updatedAt: new Date(at) });
}

/** Reads queues.stats once now (one reading at a time). */
export function refreshStats(): Promise<void> {
  inFlight ??= api.queues.stats
    .query()
    .then(
      (stats) => record(stats, summarize(stats)),
      (error: unknown) => live.set({ ...live.get(), failure: report(error) }),
    )
    .finally(() => {
      inFlight = null;
    });
  return inFlight;
}

function schedule(): void {
  clearTimeout(timer);
  if (watchers === 0) return;
  timer = setTimeout(() => {
    if (document.visibilityState === 'hidden') return schedule();
    void refreshStats().finally(schedule);
  }, POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && watchers > 0) void refreshStats().finally(schedule);
});

/**
 * The live counts. With `poll`, they are read every POLL_MS while the calling
 * component is mounted; without, once on mount when the last reading is older than 10 s.
 */
export function useLiveStats(poll: boolean): LiveState {
  useEffect(() => {
    if (!poll) {
      const last = live.get().updatedAt;
      if (!last || Date.now() - last.getTime() > 10_000) void refreshStats();
      return;
    }
    watchers++;
    void refreshStats().finally(schedule);
    return () => {
      watchers--;
      if (watchers === 0) clearTimeout(timer);
    };
  }, [poll]);
  return useStore(live);
}
