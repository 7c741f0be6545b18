import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, PermanentError } from '../client/index.js';
import { defineJobs } from '../shared/index.js';
import { countJobs, insertJob, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';
import { workerSpawner } from './support/workers.js';

const jobs = defineJobs({
  ingestion: {
    payload: z.object({ chainId: z.string().min(1), targetDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/) }),
    result: z.object({ rows: z.number().int() }),
    maxRetries: 2,
    backoff: { kind: 'fixed', delayMs: 50 },
  },
  slow: { payload: z.object({ ms: z.number() }), backoff: { kind: 'fixed', delayMs: 50 } },
  count: { payload: z.object({ n: z.number().int() }) },
});

describe('the bundled worker', () => {
  let t: TestServer;
  const queue = () => createQueueClient({ url: t.url, jobs });
  const { spawn, stopAll } = workerSpawner(() => t.url, jobs);

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await stopAll();
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it('runs the handler with the validated payload and stores its result', async () => {
    const q = queue();
    const seen: unknown[] = [];
    spawn({ handlers: { ingestion: async (payload, ctx) => { seen.push({ payload, attempt: ctx.attempt }); return { rows: 7 }; } } });
    const job = await q.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' });
    await waitFor(async () => (await q.get(job.id)).status === 'completed', 5000, 'completion');
    expect((await q.get(job.id)).result).toEqual({ rows: 7 });
    expect(seen).toEqual([{ payload: { chainId: 'konzum', targetDate: '2026-01-23' }, attempt: 1 }]);
    await q.close();
  });

  it('fails a job whose stored payload does not match the schema without running the handler', async () => {
    let ran = false;
    const bad = await insertJob(t.db.pool, { payload: { chainId: 42 } });
    spawn({ handlers: { ingestion: async () => { ran = true; return { rows: 0 }; } } });
    await waitFor(async () => (await readJob(t.db.pool, bad.id)).status === 'failed', 5000, 'failure');
    expect(ran).toBe(false);
    expect((await readJob(t.db.pool, bad.id)).error_message).toMatch(/^payload of "ingestion" is invalid: chainId: /);
  });

  it('retries a throwing handler with the type backoff, then completes', async () => {
    const q = queue();
    const attempts: number[] = [];
    spawn({
      handlers: {
        ingestion: async (_p, ctx) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt === 1) throw new Error('source timed out');
          return { rows: 1 };
        },
      },
    });
    const job = await q.enqueue('ingestion', { chainId: 'lidl', targetDate: '2026-01-23' });
    await waitFor(async () => (await q.get(job.id)).status === 'completed', 5000, 'completion after retry');
    expect(attempts).toEqual([1, 2]);
    expect(await q.get(job.id)).toMatchObject({ retryCount: 1, attempt: 2, error: 'Error: source timed out' });
    await q.close();
  });

  it('marks a job failed with the last error when retries are spent', async () => {
    const q = queue();
    let runs = 0;
    spawn({ handlers: { ingestion: async (_p, ctx) => { runs++; throw new Error(`attempt ${ctx.attempt} broke`); } } });
    const job = await q.enqueue('ingestion', { chainId: 'spar', targetDate: '2026-01-23' });
    await waitFor(async () => (await q.get(job.id)).status === 'failed', 5000, 'final failure');
    expect(runs).toBe(3);
    expect(await q.get(job.id)).toMatchObject({ retryCount: 2, error: 'Error: attempt 3 broke' });
    await q.close();
  });

  it('fails at once on a PermanentError, and on a result that breaks the result schema', async () => {
    const q = queue();
    spawn({
      handlers: {
        ingestion: async ({ chainId }) => {
          if (chainId === 'gone') throw new PermanentError('chain gone does not exist');
          return { rows: 'many' } as unknown as { rows: number };
        },
      },
    });
    const gone = await q.enqueue('ingestion', { chainId: 'gone', targetDate: '2026-01-23' });
    await waitFor(async () => (await q.get(gone.id)).status === 'failed', 5000, 'permanent failure');
    expect(await q.get(gone.id)).toMatchObject({ retryCount: 0, attempt: 1, error: 'PermanentError: chain gone does not exist' });
    const wrong = await q.enqueue('ingestion', { chainId: 'x', targetDate: '2026-01-23' });
    await waitFor(async () => (await q.get(wrong.id)).status === 'failed', 5000, 'result failure');
    expect((await q.get(wrong.id)).error).toMatch(/result schema/);
    await q.close();
  });

  it('aborts a running handler when its job is cancelled', async () => {
    const q = queue();
    let aborted = false;
    let started = false;
    spawn({
      leaseMs: 600,
      handlers: {
        slow: (_p, ctx) =>
          new Promise((_resolve, reject) => {
            started = true;
            ctx.signal.addEventListener('abort', () => { aborted = true; reject(ctx.signal.reason); });
          }),
      },
    });
    const job = await q.enqueue('slow', { ms: 10_000 });
    await waitFor(() => started, 5000, 'handler start');
    await q.cancel(job.id);
    await waitFor(() => aborted, 5000, 'abort signal');
    expect((await q.get(job.id)).status).toBe('cancelled');
    await q.close();
  });

  it('stops gracefully: running handlers finish and complete, nothing is left claimed', async () => {
    const q = queue();
    let running = 0;
    const w = spawn({ concurrency: 5, handlers: { slow: async ({ ms }) => { running++; await new Promise((r) => setTimeout(r, ms)); } } });
    await q.enqueueMany(Array.from({ length: 5 }, () => ({ type: 'slow' as const, payload: { ms: 400 } })));
    await waitFor(() => running === 5, 5000, 'five handlers running');
    await w.stop();
    expect(await countJobs(t.db.pool, 'completed')).toBe(5);
    expect(await countJobs(t.db.pool)).toBe(5);
    await q.close();
  });

  it('releases handlers still running when the grace period ends, without using a retry', async () => {
    const q = queue();
    let sawAbort = false;
    const w = spawn({
      graceMs: 200,
      handlers: {
        slow: (_p, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => { sawAbort = true; resolve(undefined); })),
      },
    });
    const job = await q.enqueue('slow', { ms: 60_000 });
    await waitFor(async () => (await readJob(t.db.pool, job.id)).status !== 'pending', 5000, 'claim');
    await w.stop();
    expect(sawAbort).toBe(true);
    expect(await readJob(t.db.pool, job.id)).toMatchObject({ status: 'pending', retry_count: 0, attempt: 1 });
    await q.close();
  });

  it('never processes one job twice: 8 workers of concurrency 4 drain 5,000 jobs', async () => {
    const q = queue();
    const runs = new Map<number, number>();
    const handler = async ({ n }: { n: number }) => {
      runs.set(n, (runs.get(n) ?? 0) + 1);
      if (n % 7 === 0) await new Promise((r) => setImmediate(r));
    };
    const total = 5000;
    for (let i = 0; i < total; i += 1000) {
      await q.enqueueMany(Array.from({ length: 1000 }, (_, k) => ({ type: 'count' as const, payload: { n: i + k } })));
    }
    for (let i = 0; i < 8; i++) spawn({ concurrency: 4, workerId: `drain-${i}`, handlers: { count: handler } });
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === total, 60_000, 'all 5,000 completed');
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
