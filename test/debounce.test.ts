import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, type QueueClient } from '../client/index.js';
import { defineJobs } from '../shared/index.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  reindex: { payload: z.object({ doc: z.string(), n: z.number().int() }) },
});

type Row = { id: string; status: string; payload: { n: number }; scheduled_for: Date };
const rowsOf = async (t: TestServer): Promise<Row[]> =>
  (await t.db.pool.query<Row>('SELECT id, status, payload, scheduled_for FROM task_queue ORDER BY created_at')).rows;

describe('debounce (real time)', () => {
  let t: TestServer;
  let queue: QueueClient<typeof jobs>;
  beforeAll(async () => {
    t = await startTestServer({ jobs });
    queue = createQueueClient({ url: t.url, jobs });
  });
  afterAll(async () => {
    await queue.close();
    await t.stop();
  });
  beforeEach(() => t.db.pool.query('DELETE FROM task_queue'));

  it('20 calls in 200 ms make one job with the last payload, due debounceMs after the last call', async () => {
    const answers = [];
    const began = Date.now();
    for (let n = 0; n < 20; n++) {
      answers.push(await queue.enqueue('reindex', { doc: 'a', n }, { uniqueKey: 'doc:a', debounceMs: 1500 }));
      await new Promise((r) => setTimeout(r, Math.max(0, began + (n + 1) * 10 - Date.now())));
    }
    const lastCall = Date.now();
    expect(new Set(answers.map((a) => a.id)).size).toBe(1);
    expect(answers.map((a) => a.created)).toEqual([true, ...Array(19).fill(false)]);
    const rows = await rowsOf(t);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.payload.n).toBe(19);
    // Pushed on by each call: due about 1.5 s after the last one, not the first.
    const due = rows[0]!.scheduled_for.getTime();
    expect(due).toBeGreaterThan(began + 1500 + 150);
    expect(due).toBeLessThanOrEqual(lastCall + 1500 + 50);
    // Nothing runs during the burst; the one job runs after it.
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w1' })).jobs).toEqual([]);
    const { jobs: claimed } = await t.trpc.worker.claim.mutate({ workerId: 'w1', waitMs: 5000 });
    expect(claimed).toHaveLength(1);
    expect(claimed[0]?.payload).toEqual({ doc: 'a', n: 19 });
  });

  it('keys are separate, and a running holder is answered as for any uniqueKey', async () => {
    const a = await queue.enqueue('reindex', { doc: 'a', n: 1 }, { uniqueKey: 'doc:a', debounceMs: 1 });
    const b = await queue.enqueue('reindex', { doc: 'b', n: 1 }, { uniqueKey: 'doc:b', debounceMs: 1 });
    expect(a.id).not.toBe(b.id);
    await new Promise((r) => setTimeout(r, 20));
    const { jobs: claimed } = await t.trpc.worker.claim.mutate({ workerId: 'w1', limit: 10 });
    expect(claimed).toHaveLength(2);
    const again = await queue.enqueue('reindex', { doc: 'a', n: 2 }, { uniqueKey: 'doc:a', debounceMs: 1 });
    expect(again).toEqual({ id: a.id, created: false });
  });

  it('refuses debounceMs without a uniqueKey, and inside enqueueMany', async () => {
    await expect(t.trpc.jobs.enqueue.mutate({ type: 'reindex', payload: { doc: 'a', n: 1 }, debounceMs: 100 })).rejects.toThrow(/need a uniqueKey/);
    await expect(
      t.trpc.jobs.enqueueMany.mutate({ jobs: [{ type: 'reindex', payload: { doc: 'a', n: 1 }, uniqueKey: 'k', debounceMs: 100 }] }),
    ).rejects.toThrow(/jobs\[0\]: debounceMs and throttleMs are taken by jobs.enqueue only/);
  });
});

describe('throttle (clock)', () => {
  const START = new Date('2031-03-01T12:00:00.000Z');
  let clock = START;
  let t: TestServer;
  let queue: QueueClient<typeof jobs>;
  beforeAll(async () => {
    t = await startTestServer({ jobs, now: () => clock });
    queue = createQueueClient({ url: t.url, jobs });
  });
  afterAll(async () => {
    await queue.close();
    await t.stop();
  });
  beforeEach(async () => {
    clock = START;
    await t.db.pool.query('DELETE FROM task_queue');
    await t.db.pool.query('DELETE FROM throttle_windows');
  });

  it('makes one job per key per window, also after the first completed', async () => {
    const opts = { uniqueKey: 'doc:a', throttleMs: 60_000 };
    const first = await queue.enqueue('reindex', { doc: 'a', n: 0 }, opts);
    expect(first.created).toBe(true);
    const burst = await Promise.all(Array.from({ length: 10 }, (_, n) => queue.enqueue('reindex', { doc: 'a', n: n + 1 }, opts)));
    expect(burst).toEqual(Array(10).fill({ id: first.id, created: false }));

    // The job completes inside the window: later calls still get it.
    const { jobs: claimed } = await t.trpc.worker.claim.mutate({ workerId: 'w1' });
    await t.trpc.worker.complete.mutate({ workerId: 'w1', id: claimed[0]!.id, attempt: claimed[0]!.attempt, result: null });
    clock = new Date(START.getTime() + 59_999);
    expect(await queue.enqueue('reindex', { doc: 'a', n: 20 }, opts)).toEqual({ id: first.id, created: false });
    // Another key has its own window.
    expect((await queue.enqueue('reindex', { doc: 'b', n: 0 }, { uniqueKey: 'doc:b', throttleMs: 60_000 })).created).toBe(true);

    // The next window makes the next job, and so on.
    clock = new Date(START.getTime() + 60_000);
    const second = await queue.enqueue('reindex', { doc: 'a', n: 21 }, opts);
    expect(second.created).toBe(true);
    expect(await queue.enqueue('reindex', { doc: 'a', n: 22 }, opts)).toEqual({ id: second.id, created: false });
    const rows = await rowsOf(t);
    expect(rows.map((r) => r.payload.n)).toEqual([0, 0, 21]);
  });

  it('past the window, a job that is still live keeps the key (uniqueKey)', async () => {
    const opts = { uniqueKey: 'doc:a', throttleMs: 1000 };
    const first = await queue.enqueue('reindex', { doc: 'a', n: 0 }, opts);
    clock = new Date(START.getTime() + 5000);
    expect(await queue.enqueue('reindex', { doc: 'a', n: 1 }, opts)).toEqual({ id: first.id, created: false });
    expect(await rowsOf(t)).toHaveLength(1);
  });

  it('the cron leader deletes windows that ended over an hour ago, and only those', async () => {
    await queue.enqueue('reindex', { doc: 'a', n: 0 }, { uniqueKey: 'old', throttleMs: 1000 });
    clock = new Date(START.getTime() + 2 * 3_600_000);
    await queue.enqueue('reindex', { doc: 'a', n: 0 }, { uniqueKey: 'fresh', throttleMs: 1000 });
    await t.server.maintenance.tickSchedules();
    const { rows } = await t.db.pool.query<{ unique_key: string }>('SELECT unique_key FROM throttle_windows');
    expect(rows.map((r) => r.unique_key)).toEqual(['fresh']);
  });
});
