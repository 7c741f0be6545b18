import type { JobEvent } from '../../shared/events.js';
import { onJobEvent, source } from './live.js';
import { createStore } from './store.js';

/**
 * Finished jobs (completed + failed) per queue over the last 15 minutes, in
 * BUCKET_MS buckets, as the overview's chart draws them. While the events
 * subscription is connected each `completed` or `failed` event counts one job
 * in the bucket of its time: exact. While the dashboard polls instead, the
 * growth of the finished counts between two readings of queues.stats is put in
 * the bucket of the later reading: an estimate (a count also falls when
 * retention deletes rows or a retry takes a job out of failed; a fall counts
 * as zero). The server keeps no history: the chart starts when the page opens.
 */

/** How much history the chart keeps (the issue asks for 15 minutes). */
export const WINDOW_MS = 15 * 60_000;
/** One bar of the chart; 180 over the window. */
export const BUCKET_MS = 5_000;

/** The chart's data: finished jobs per queue per bucket (keyed by the bucket's start, ms), and since when it knows. */
export interface History {
  buckets: ReadonlyMap<number, ReadonlyMap<string, number>>;
  /** When counting began (the page opened): earlier buckets are unknown, not zero. */
  since: number;
}

/** The history, updated at most once a second (a busy queue finishes thousands of jobs a second). */
export const history = createStore<History>({ buckets: new Map(), since: Date.now() });

const buckets = new Map<number, Map<string, number>>();
let publishTimer: ReturnType<typeof setTimeout> | undefined;
// Time up to which polling estimated the counts: events replayed for that span after a reconnect are not counted twice.
let polledUntil = 0;
let lastFinished: Map<string, number> | null = null;

const bucketOf = (at: number): number => at - (at % BUCKET_MS);

function add(queue: string, n: number, at: number): void {
  if (n <= 0) return;
  const start = bucketOf(at);
  let bucket = buckets.get(start);
  if (!bucket) buckets.set(start, (bucket = new Map()));
  bucket.set(queue, (bucket.get(queue) ?? 0) + n);
  publishTimer ??= setTimeout(publish, 1000);
}

function publish(): void {
  publishTimer = undefined;
  const oldest = bucketOf(Date.now() - WINDOW_MS);
  for (const start of buckets.keys()) if (start < oldest) buckets.delete(start);
  history.set({ buckets: new Map(buckets), since: history.get().since });
}

/** Counts a job event: one finished job when it completed or failed for good. */
export function countEvent(event: JobEvent): void {
  if (event.kind !== 'completed' && event.kind !== 'failed') return;
  const at = event.at.getTime();
  if (at <= polledUntil) return;
  add(event.queue, 1, at);
}

/** Takes a reading of the finished counts per queue; counted only while events are not what drives the pages. */
export function countReading(finished: ReadonlyMap<string, number>, at: number): void {
  const before = lastFinished;
  lastFinished = new Map(finished);
  if (source.get().mode === 'events' || !before) return;
  for (const [queue, n] of finished) add(queue, n - (before.get(queue) ?? n), at);
  polledUntil = at;
}

/**
 * Jobs per second per bucket for each queue, over the window ending now:
 * `x` the bucket starts in seconds, one series per queue (null before counting began).
 */
export function series(h: History, queues: readonly string[], now = Date.now()): { x: number[]; ys: Array<Array<number | null>> } {
  const x: number[] = [];
  const ys = queues.map(() => [] as Array<number | null>);
  const known = bucketOf(h.since);
  for (let start = bucketOf(now - WINDOW_MS) + BUCKET_MS; start <= bucketOf(now); start += BUCKET_MS) {
    x.push(start / 1000);
    const bucket = h.buckets.get(start);
    // The current bucket has run only part of its length.
    const seconds = Math.max(1000, Math.min(BUCKET_MS, now - start)) / 1000;
    queues.forEach((queue, q) => (ys[q] as Array<number | null>).push(start < known ? null : (bucket?.get(queue) ?? 0) / seconds));
  }
  return { x, ys };
}

onJobEvent(countEvent);
