import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient } from '../client/index.js';
import { defineJobs } from '../shared/index.js';
import { countJobs, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';
import { workerSpawner } from './support/workers.js';

// The worker's local buffer (client/worker/localQueue.ts): jobs claimed ahead
// of free slots, under the same lease, handed back on stop.
const jobs = defineJobs({
  sleep: { payload: z.object({ n: z.number().int(), ms: z.number() }) },
  count: { payload: z.object({ n: z.number().int() }) },
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a prefetching worker', () => {
  let t: TestServer;
  const queue = () => createQueueClient({ url: t.url, jobs });
  const { spawn, stopAll } = workerSpawner(() => t.url, jobs);
  /** Jobs the database says this worker holds now. */
  const heldBy = async (workerId: string): Promise<number> => {
    const { rows } = await t.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM task_queue WHERE worker_id = $1 AND status IN ('claimed', 'processing')`,
      [workerId],
    );
    return rows[0]?.n ?? 0;
  };

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await stopAll();
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it('holds at most concurrency + prefetch jobs at any time, and runs at most concurrency', async () => {
    const q = queue();
    const total = 150;
    let running = 0;
    let mostRunning = 0;
    spawn({
      concurrency: 2,
      prefetch: 4,
      workerId: 'bounded',
      handlers: {
        sleep: async ({ ms }) => {
          mostRunning = Math.max(mostRunning, ++running);
          await sleep(ms);
          running--;
        },
      },
    });
    await q.enqueueMany(Array.from({ length: total }, (_, n) => ({ type: 'sleep' as const, payload: { n, ms: 5 } })));
    const samples: number[] = [];
    while ((await countJobs(t.db.pool, 'completed')) < total) {
      samples.push(await heldBy('bounded'));
      if (samples.length > 20_000) throw new Error('the drain did not finish');
    }
    expect(Math.max(...samples)).toBeLessThanOrEqual(2 + 4);
    // It did buffer: more held than running, most of the time.
    expect(samples.filter((n) => n > 2).length).toBeGreaterThan(samples.length / 4);
    expect(mostRunning).toBe(2);
    await q.close();
  });

  it('hands its buffered jobs back on stop, and another worker takes them long before their lease ends', async () => {
    const q = queue();
    let finishFirst: () => void = () => {};
    const first = new Promise<void>((resolve) => (finishFirst = resolve));
    const a = spawn({
      concurrency: 1,
      prefetch: 4,
      leaseMs: 60_000,
      workerId: 'stopping',
      handlers: { sleep: () => first },
    });
    await q.enqueueMany(Array.from({ length: 5 }, (_, n) => ({ type: 'sleep' as const, payload: { n, ms: 0 } })));
    await waitFor(async () => a.running === 1 && (await heldBy('stopping')) === 5, 5000, 'one running and four buffered');
    const ranOnB: number[] = [];
    spawn({ concurrency: 4, prefetch: 0, workerId: 'taker', handlers: { sleep: ({ n }) => void ranOnB.push(n) } });
    const stopAt = Date.now();
    const stopped = a.stop();
    // While A's running job still runs (stop() waits for it), B has its four.
    await waitFor(() => ranOnB.length === 4, 5000, 'the buffered jobs completed by the other worker');
    const takenAfterMs = Date.now() - stopAt;
    finishFirst();
    await stopped;
    expect(takenAfterMs).toBeLessThan(5000);
    expect(ranOnB.sort()).toEqual([1, 2, 3, 4]);
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === 5, 5000, 'all five completed');
    const { rows } = await t.db.pool.query<{ worker_id: string; n: number; retries: number }>(
      `SELECT worker_id, count(*)::int AS n, max(retry_count)::int AS retries FROM task_queue GROUP BY worker_id ORDER BY worker_id`,
    );
    expect(rows).toEqual([{ worker_id: 'stopping', n: 1, retries: 0 }, { worker_id: 'taker', n: 4, retries: 0 }]);
    const { rows: released } = await t.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM job_attempts WHERE worker_id = 'stopping' AND outcome = 'released'`,
    );
    expect(released[0]?.n).toBe(4);
    await q.close();
  });

  it('never starts a buffered job whose lease could have run out: it hands it back, and each job runs once', async () => {
    const q = queue();
    const leaseMs = 300;
    const started: Array<{ id: string; attempt: number; at: number }> = [];
    const runs = new Map<number, number>();
    spawn({
      concurrency: 1,
      prefetch: 1,
      leaseMs,
      workerId: 'short-lease',
      handlers: {
        sleep: async ({ n, ms }, ctx) => {
          started.push({ id: ctx.id, attempt: ctx.attempt, at: Date.now() });
          runs.set(n, (runs.get(n) ?? 0) + 1);
          await sleep(ms);
        },
      },
    });
    // The first holds the only slot for four leases (heartbeats keep its own);
    // the second, buffered behind it, cannot start within its lease.
    const [, second] = await q.enqueueMany([
      { type: 'sleep', payload: { n: 0, ms: 4 * leaseMs } },
      { type: 'sleep', payload: { n: 1, ms: 0 } },
    ]);
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === 2, 10_000, 'both completed');
    expect([...runs.entries()].sort()).toEqual([[0, 1], [1, 1]]);
    // The database's clock and this process's are the same machine's.
    const { rows: attempts } = await t.db.pool.query<{ job_id: string; attempt: number; started_at: Date; outcome: string }>(
      `SELECT job_id, attempt, started_at, outcome FROM job_attempts ORDER BY job_id, attempt`,
    );
    for (const s of started) {
      const claim = attempts.find((a) => a.job_id === s.id && a.attempt === s.attempt);
      expect(claim?.outcome).toBe('completed');
      expect(s.at - (claim as { started_at: Date }).started_at.getTime()).toBeLessThan(leaseMs);
    }
    const handedBack = attempts.filter((a) => a.job_id === second?.id && a.outcome === 'released');
    expect(handedBack.length).toBeGreaterThan(0);
    expect((await q.get(second!.id)).retryCount).toBe(0);
    await q.close();
  });

  it('never processes one job twice: 3 prefetching workers drain 2,000 jobs', async () => {
    const q = queue();
    const runs = new Map<number, number>();
    const handler = async ({ n }: { n: number }) => {
      runs.set(n, (runs.get(n) ?? 0) + 1);
      if (n % 5 === 0) await sleep(1);
    };
    const total = 2000;
    for (let i = 0; i < total; i += 1000) {
      await q.enqueueMany(Array.from({ length: 1000 }, (_, k) => ({ type: 'count' as const, payload: { n: i + k } })));
    }
    for (let i = 0; i < 3; i++) spawn({ concurrency: 4, prefetch: 8, workerId: `prefetch-${i}`, handlers: { count: handler } });
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === total, 60_000, 'all 2,000 completed');
    await stopAll();
    expect(runs.size).toBe(total);
    expect([...runs.values()].every((c) => c === 1)).toBe(true);
    const { rows } = await t.db.pool.query<{ status: string; n: number; attempts: number }>(
      'SELECT status, count(*)::int AS n, max(attempt) AS attempts FROM task_queue GROUP BY status',
    );
    expect(rows).toEqual([{ status: 'completed', n: total, attempts: 1 }]);
    const { rows: spread } = await t.db.pool.query<{ n: number }>('SELECT count(DISTINCT worker_id)::int AS n FROM task_queue');
    expect(spread[0]?.n).toBeGreaterThan(1);
    await q.close();
  });
});
