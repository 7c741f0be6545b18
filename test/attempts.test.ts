import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, type Worker } from '../client/index.js';
import { defineJobs, LIMITS, MOVES, type AttemptView } from '../shared/index.js';
import { insertJob, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  flaky: { payload: z.object({ size: z.number().int() }), maxRetries: 2, backoff: { kind: 'fixed', delayMs: 0 } },
  fine: { payload: z.object({}), result: z.object({ ok: z.boolean() }) },
});

describe('attempt history', () => {
  let t: TestServer;
  const workers: Worker[] = [];
  const attemptsOf = async (id: string): Promise<AttemptView[]> => (await t.trpc.jobs.attempts.query({ id })).attempts;
  const claim = async (workerId = 'w1') => {
    const { jobs: claimed } = await t.trpc.worker.claim.mutate({ workerId, limit: 1, leaseMs: 1000 });
    if (!claimed[0]) throw new Error('nothing to claim');
    return claimed[0];
  };
  /** Every outcome the table of moves says `move` records. */
  const allowed = (move: keyof typeof MOVES, a: AttemptView) => expect(MOVES[move].attempt, `${move} recorded ${a.outcome}`).toContain(a.outcome);

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.stop();
  });
  beforeEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it('keeps all 3 failed attempts of a job, each with its worker, times and error (cut to LIMITS.attemptErrorChars)', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    const worker = createWorker({ url: t.url, jobs, workerId: 'flaky-worker', waitMs: 200, handlers: { flaky: async ({ size }, ctx) => { throw new Error(`attempt ${ctx.attempt}: ${'x'.repeat(size)}`); } } });
    workers.push(worker);
    worker.start();
    const job = await q.enqueue('flaky', { size: 5000 });
    await waitFor(async () => (await q.get(job.id)).status === 'failed', 10_000, 'the job to fail for good');

    const history = await q.attempts(job.id);
    expect(history.map((a) => [a.attempt, a.outcome, a.endedBy, a.errorCode])).toEqual([
      [1, 'retry_scheduled', 'fail', 'HANDLER_ERROR'],
      [2, 'retry_scheduled', 'fail', 'HANDLER_ERROR'],
      [3, 'failed', 'fail', 'HANDLER_ERROR'],
    ]);
    for (const a of history) {
      allowed('fail', a);
      expect(a.workerId).toBe('flaky-worker');
      expect(a.startedAt!.getTime()).toBeLessThanOrEqual(a.finishedAt.getTime());
      expect(a.error).toHaveLength(LIMITS.attemptErrorChars);
      expect(a.error!.startsWith(`Error: attempt ${a.attempt}: xxx`)).toBe(true);
    }
    expect(history[0]!.finishedAt.getTime()).toBeLessThanOrEqual(history[1]!.startedAt!.getTime());
    // The job keeps the latest error longer than its history does.
    const view = await q.get(job.id);
    expect(view.error!.length).toBeGreaterThan(LIMITS.attemptErrorChars);
    // jobs.get shows the same attempts, newest last.
    expect(view.attempts).toEqual(history);
    await q.close();
  });

  it('records a completed attempt', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    const worker = createWorker({ url: t.url, jobs, workerId: 'fine-worker', waitMs: 200, handlers: { fine: async () => ({ ok: true }) } });
    workers.push(worker);
    worker.start();
    const job = await q.enqueue('fine', {});
    expect(await q.result(job.id, { timeoutMs: 10_000 })).toEqual({ ok: true });
    const [only, ...rest] = await q.attempts(job.id);
    expect(rest).toEqual([]);
    expect(only).toMatchObject({ attempt: 1, workerId: 'fine-worker', outcome: 'completed', endedBy: 'complete', errorCode: null, error: null });
    allowed('complete', only!);
    await q.close();
  });

  it('counts a rescued lease as an attempt (LEASE_EXPIRED, or TIMEOUT past timeoutMs), with the worker that lost it', async () => {
    await insertJob(t.db.pool, { task_type: 'fine', payload: {} });
    const job = await claim('gone-worker');
    await t.db.pool.query(`UPDATE task_queue SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [job.id]);
    expect(await t.server.maintenance.sweep()).toMatchObject({ rescued: 1 });
    const [rescued] = await attemptsOf(job.id);
    expect(rescued).toMatchObject({ attempt: 1, workerId: 'gone-worker', outcome: 'retry_scheduled', endedBy: 'rescue', errorCode: 'LEASE_EXPIRED' });
    expect(rescued!.error).toMatch(/lease expired: worker gone-worker stopped heartbeating during attempt 1/);
    allowed('rescue', rescued!);

    // The next attempt runs past its timeout: the rescue names it TIMEOUT.
    await t.db.pool.query('UPDATE task_queue SET timeout_ms = 500 WHERE id = $1', [job.id]);
    const again = await claim('slow-worker');
    await t.db.pool.query(`UPDATE task_queue SET started_at = now() - interval '2 seconds', lease_expires_at = now() - interval '1500 milliseconds' WHERE id = $1`, [again.id]);
    await t.server.maintenance.sweep();
    expect((await attemptsOf(job.id)).map((a) => [a.attempt, a.workerId, a.errorCode])).toEqual([
      [1, 'gone-worker', 'LEASE_EXPIRED'],
      [2, 'slow-worker', 'TIMEOUT'],
    ]);
  });

  it('records releases and cancels of held jobs; a cancel of a pending job ends no attempt', async () => {
    await insertJob(t.db.pool, { task_type: 'fine', payload: {} });
    const job = await claim('stopping-worker');
    await t.trpc.worker.release.mutate({ workerId: 'stopping-worker', jobs: [{ id: job.id, attempt: job.attempt }] });
    const again = await claim('w2');
    await t.trpc.jobs.cancel.mutate({ id: job.id });
    const history = await attemptsOf(job.id);
    expect(history.map((a) => [a.attempt, a.workerId, a.outcome, a.endedBy])).toEqual([
      [1, 'stopping-worker', 'released', 'release'],
      [again.attempt, 'w2', 'cancelled', 'cancel'],
    ]);
    allowed('release', history[0]!);
    allowed('cancel', history[1]!);

    const pending = await insertJob(t.db.pool, { task_type: 'fine', payload: {} });
    await t.trpc.jobs.cancel.mutate({ id: pending.id });
    expect(await attemptsOf(pending.id)).toEqual([]);
  });

  it('records the SQL API too: complete_task and fail_task name the holder they acted for', async () => {
    await insertJob(t.db.pool, { task_type: 'fine', payload: {} });
    await insertJob(t.db.pool, { task_type: 'fine', payload: {} });
    const { rows } = await t.db.pool.query<{ id: string }>(`SELECT id FROM claim_tasks('go-worker', NULL, 2) ORDER BY id`);
    await t.db.pool.query(`SELECT complete_task($1, '{"ok":true}')`, [rows[0]!.id]);
    await t.db.pool.query(`SELECT fail_task($1, 'from psql', false)`, [rows[1]!.id]);
    expect(await attemptsOf(rows[0]!.id)).toMatchObject([{ workerId: 'go-worker', outcome: 'completed', endedBy: 'complete_task' }]);
    expect(await attemptsOf(rows[1]!.id)).toMatchObject([{ workerId: 'go-worker', outcome: 'failed', endedBy: 'fail_task', errorCode: null, error: 'from psql' }]);
  });

  it('jobs.get shows the latest LIMITS.attemptsShown attempts, newest last; jobs.attempts pages through all of them', async () => {
    const row = await insertJob(t.db.pool, { task_type: 'fine', payload: {}, max_retries: 100 });
    const total = LIMITS.attemptsShown + 5;
    for (let i = 1; i <= total; i++) {
      const job = await claim();
      expect(job.attempt).toBe(i);
      await t.trpc.worker.fail.mutate({ workerId: 'w1', id: row.id, attempt: i, error: `try ${i}`, retryDelayMs: 0 });
    }
    const view = await t.trpc.jobs.get.query({ id: row.id });
    expect(view.attempts.map((a) => a.attempt)).toEqual(Array.from({ length: LIMITS.attemptsShown }, (_, i) => total - LIMITS.attemptsShown + 1 + i));
    const first = await t.trpc.jobs.attempts.query({ id: row.id, limit: 10 });
    expect(first.attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(first.nextAfter).toBe(10);
    const q = createQueueClient({ url: t.url, jobs });
    expect((await q.attempts(row.id)).map((a) => a.error)).toEqual(Array.from({ length: total }, (_, i) => `try ${i + 1}`));
    await q.close();
  });

  it('deletes attempts with their job (DELETE, cleanup_old_tasks, TRUNCATE)', async () => {
    const count = async () => (await t.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_attempts')).rows[0]!.n;
    for (let i = 0; i < 3; i++) await insertJob(t.db.pool, { task_type: 'fine', payload: {} });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await claim();
      ids.push(job.id);
      await t.trpc.worker.complete.mutate({ workerId: 'w1', id: job.id, attempt: job.attempt, result: { ok: true } });
    }
    expect(await count()).toBe(3);
    await t.db.pool.query('DELETE FROM task_queue WHERE id = $1', [ids[0]]);
    expect(await count()).toBe(2);
    await t.db.pool.query(`UPDATE task_queue SET completed_at = now() - interval '30 days' WHERE id = $1`, [ids[1]]);
    await t.db.pool.query('SELECT cleanup_old_tasks(7)');
    expect(await count()).toBe(1);
    expect((await readJob(t.db.pool, ids[2]!)).status).toBe('completed');
    await t.db.pool.query('TRUNCATE task_queue');
    expect(await count()).toBe(0);
  });

  it('answers JOB_NOT_FOUND for the attempts of an unknown job', async () => {
    await expect(t.trpc.jobs.attempts.query({ id: '01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60' })).rejects.toMatchObject({ data: { skipqCode: 'JOB_NOT_FOUND' } });
  });
});
