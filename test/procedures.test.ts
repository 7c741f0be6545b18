import { TRPCClientError } from '@trpc/client';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defineJobs } from '../shared/index.js';
import { countJobs, insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  ingestion: {
    payload: z.object({ chainId: z.string().min(1), targetDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/) }),
    queue: 'ingestion',
    priority: 5,
    maxRetries: 2,
  },
  email: { payload: z.object({ to: z.email() }) },
  note: { payload: z.object({ text: z.string() }) },
});

const good = { chainId: 'konzum', targetDate: '2026-01-23' };

/** Runs a call that must fail; answers its HTTP status and skipq code. */
async function failure(call: Promise<unknown>): Promise<{ status: number; code: string; trpcCode: string; message: string; issues?: unknown }> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const data = error.data as { httpStatus: number; code: string; skipqCode: string; issues?: unknown; stack?: string };
    expect(data.stack).toBeUndefined();
    return { status: data.httpStatus, code: data.skipqCode, trpcCode: data.code, message: error.message, issues: data.issues };
  }
  throw new Error('expected the call to fail');
}

describe('tRPC procedures over HTTP', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ jobs, maxPayloadBytes: 4096 });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  describe('jobs.enqueue', () => {
    it('stores a valid job with the type defaults and returns its summary', async () => {
      const job = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: good });
      expect(job).toMatchObject({ type: 'ingestion', queue: 'ingestion', priority: 5, status: 'pending', created: true });
      expect(job.scheduledFor).toBeInstanceOf(Date);
      const row = await readJob(t.db.pool, job.id);
      expect(row).toMatchObject({ payload: good, max_retries: 2, queue: 'ingestion', priority: 5 });
    });

    it('applies call options over type defaults, and schedules with delayMs or runAt', async () => {
      const delayed = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: good, queue: 'slow', priority: 9, maxRetries: 0, delayMs: 60_000 });
      expect(delayed).toMatchObject({ queue: 'slow', priority: 9 });
      expect(delayed.scheduledFor.getTime() - Date.now()).toBeGreaterThan(55_000);
      const runAt = new Date(Date.now() + 3_600_000);
      const at = await t.trpc.jobs.enqueue.mutate({ type: 'email', payload: { to: 'a@b.co' }, runAt });
      expect(at.scheduledFor.getTime()).toBe(runAt.getTime());
      expect(at.queue).toBe('default');
    });

    it('returns the live job for a repeated uniqueKey instead of a duplicate', async () => {
      const a = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: good, uniqueKey: 'konzum:2026-01-23' });
      const b = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: good, uniqueKey: 'konzum:2026-01-23' });
      expect(b).toMatchObject({ id: a.id, created: false });
      expect(await countJobs(t.db.pool)).toBe(1);
      // A finished job frees its key.
      await t.db.pool.query(`UPDATE task_queue SET status = 'completed'`);
      const c = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: good, uniqueKey: 'konzum:2026-01-23' });
      expect(c.created).toBe(true);
      expect(c.id).not.toBe(a.id);
    });

    it.each([
      ['an unknown type', { type: 'nope', payload: {} }, 400, 'UNKNOWN_JOB_TYPE'],
      ['a payload that fails the schema', { type: 'ingestion', payload: { chainId: '', targetDate: '23.01.2026' } }, 400, 'INVALID_PAYLOAD'],
      ['a bad type name', { type: 'drop table;', payload: {} }, 400, 'INVALID_INPUT'],
      ['a bad queue name', { type: 'ingestion', payload: good, queue: '../etc' }, 400, 'INVALID_INPUT'],
      ['priority 11', { type: 'ingestion', payload: good, priority: 11 }, 400, 'INVALID_INPUT'],
      ['a negative delay', { type: 'ingestion', payload: good, delayMs: -1 }, 400, 'INVALID_INPUT'],
      ['runAt and delayMs together', { type: 'ingestion', payload: good, delayMs: 5, runAt: new Date() }, 400, 'INVALID_INPUT'],
      ['an unknown field', { type: 'ingestion', payload: good, colour: 'red' }, 400, 'INVALID_INPUT'],
      ['a payload over the size limit', { type: 'note', payload: { text: 'x'.repeat(5000) } }, 413, 'PAYLOAD_TOO_LARGE'],
      ['a NUL character in the payload', { type: 'note', payload: { text: 'a\u0000b' } }, 400, 'INVALID_INPUT'],
      ['a NUL character in the uniqueKey', { type: 'ingestion', payload: good, uniqueKey: 'a\u0000' }, 400, 'INVALID_INPUT'],
    ])('refuses %s with a clear error and writes nothing', async (_what, input, status, code) => {
      const err = await failure(t.trpc.jobs.enqueue.mutate(input as never));
      expect(err).toMatchObject({ status, code });
      expect(err.message.length).toBeGreaterThan(10);
      expect(await countJobs(t.db.pool)).toBe(0);
    });

    it('names the failing fields of an invalid payload', async () => {
      const err = await failure(t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: { chainId: 'k', targetDate: 'tomorrow' } }));
      expect(err.message).toContain('targetDate');
      expect(err.issues).toEqual([expect.objectContaining({ path: ['targetDate'] })]);
    });
  });

  describe('jobs.enqueueMany', () => {
    it('inserts all jobs in one call and answers in input order', async () => {
      const inputs = Array.from({ length: 50 }, (_, i) => ({ type: 'ingestion', payload: { chainId: `c${i}`, targetDate: '2026-01-23' } }));
      const { jobs: out } = await t.trpc.jobs.enqueueMany.mutate({ jobs: inputs });
      expect(out).toHaveLength(50);
      const { rows } = await t.db.pool.query<{ id: string; payload: { chainId: string } }>('SELECT id, payload FROM task_queue');
      const byId = new Map(rows.map((r) => [r.id, r.payload.chainId]));
      out.forEach((job, i) => expect(byId.get(job.id)).toBe(`c${i}`));
    });

    it('deduplicates uniqueKeys inside one batch', async () => {
      const { jobs: out } = await t.trpc.jobs.enqueueMany.mutate({
        jobs: [
          { type: 'ingestion', payload: good, uniqueKey: 'k1' },
          { type: 'ingestion', payload: good, uniqueKey: 'k1' },
          { type: 'ingestion', payload: good, uniqueKey: 'k2' },
        ],
      });
      expect(out[0]?.id).toBe(out[1]?.id);
      expect(out.map((j) => j.created)).toEqual([true, false, true]);
      expect(await countJobs(t.db.pool)).toBe(2);
    });

    it('writes nothing when one job is invalid, and says which', async () => {
      const err = await failure(
        t.trpc.jobs.enqueueMany.mutate({ jobs: [{ type: 'ingestion', payload: good }, { type: 'ingestion', payload: { chainId: 1 } }] }),
      );
      expect(err).toMatchObject({ status: 400, code: 'INVALID_PAYLOAD' });
      expect(err.message).toContain('jobs[1]');
      expect(await countJobs(t.db.pool)).toBe(0);
    });

    it('refuses an empty batch and one over 1,000 jobs', async () => {
      expect(await failure(t.trpc.jobs.enqueueMany.mutate({ jobs: [] }))).toMatchObject({ status: 400 });
      const many = Array.from({ length: 1001 }, () => ({ type: 'email', payload: { to: 'a@b.co' } }));
      expect(await failure(t.trpc.jobs.enqueueMany.mutate({ jobs: many }))).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
      expect(await countJobs(t.db.pool)).toBe(0);
    });
  });

  describe('jobs.get and jobs.list', () => {
    it('gets one job with its result, error and attempts', async () => {
      const row = await insertJob(t.db.pool, { status: 'failed', error_message: 'boom', attempt: 4, retry_count: 3, result: null });
      const job = await t.trpc.jobs.get.query({ id: row.id });
      expect(job).toMatchObject({ id: row.id, status: 'failed', error: 'boom', attempt: 4, retryCount: 3, type: 'ingestion' });
    });

    it('answers NOT_FOUND for an unknown id and BAD_REQUEST for a malformed one', async () => {
      expect(await failure(t.trpc.jobs.get.query({ id: '01930000-0000-7000-8000-000000000000' }))).toMatchObject({ status: 404, code: 'JOB_NOT_FOUND', trpcCode: 'NOT_FOUND' });
      expect(await failure(t.trpc.jobs.get.query({ id: 'not-an-id' }))).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    });

    it('lists newest first with filters and a cursor that pages through everything', async () => {
      const { jobs: made } = await t.trpc.jobs.enqueueMany.mutate({
        jobs: Array.from({ length: 7 }, (_, i) => ({ type: i % 2 ? 'email' : 'ingestion', payload: i % 2 ? { to: 'a@b.co' } : good })),
      });
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await t.trpc.jobs.list.query({ limit: 3, ...(cursor ? { cursor } : {}) });
        seen.push(...page.jobs.map((j) => j.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(made.map((j) => j.id).reverse());
      const emails = await t.trpc.jobs.list.query({ type: 'email', status: ['pending'] });
      expect(emails.jobs).toHaveLength(3);
      expect((await t.trpc.jobs.list.query({ queue: 'ingestion' })).jobs).toHaveLength(4);
      expect((await t.trpc.jobs.list.query({ status: 'completed' })).jobs).toHaveLength(0);
    });
  });

  describe('jobs.cancel and jobs.retry', () => {
    it('cancels a pending job and a running one (the holder then learns of it)', async () => {
      const pending = await insertJob(t.db.pool);
      expect((await t.trpc.jobs.cancel.mutate({ id: pending.id })).status).toBe('cancelled');
      const running = await insertJob(t.db.pool, { status: 'processing' });
      const cancelled = await t.trpc.jobs.cancel.mutate({ id: running.id });
      expect(cancelled).toMatchObject({ status: 'cancelled' });
      expect(cancelled.cancelRequestedAt).toBeInstanceOf(Date);
      const beat = await t.trpc.worker.heartbeat.mutate({ workerId: 'worker-1', jobs: [{ id: running.id, attempt: 1 }] });
      expect(beat.cancelled).toEqual([running.id]);
      expect(await failure(t.trpc.worker.complete.mutate({ workerId: 'worker-1', id: running.id, attempt: 1 }))).toMatchObject({ status: 409, code: 'JOB_CANCELLED', trpcCode: 'CONFLICT' });
      // Cancelling again is harmless.
      expect((await t.trpc.jobs.cancel.mutate({ id: running.id })).status).toBe('cancelled');
    });

    it('refuses to cancel a finished job, and unknown ids', async () => {
      const done = await insertJob(t.db.pool, { status: 'completed' });
      expect(await failure(t.trpc.jobs.cancel.mutate({ id: done.id }))).toMatchObject({ status: 409, code: 'WRONG_STATE' });
      expect((await readJob(t.db.pool, done.id)).status).toBe('completed');
      expect(await failure(t.trpc.jobs.cancel.mutate({ id: '01930000-0000-7000-8000-000000000000' }))).toMatchObject({ status: 404 });
    });

    it('retries a failed job with a fresh budget, and refuses live ones', async () => {
      const failed = await insertJob(t.db.pool, { status: 'failed', retry_count: 3, attempt: 4, error_message: 'boom', failed_at: new Date() });
      const job = await t.trpc.jobs.retry.mutate({ id: failed.id });
      expect(job).toMatchObject({ status: 'pending', retryCount: 0, attempt: 4, failedAt: null });
      expect(await failure(t.trpc.jobs.retry.mutate({ id: failed.id }))).toMatchObject({ status: 409, code: 'WRONG_STATE' });
      expect(await failure(t.trpc.jobs.retry.mutate({ id: '01930000-0000-7000-8000-000000000000' }))).toMatchObject({ status: 404 });
    });
  });

  describe('worker procedures', () => {
    it('claims a batch under a lease, honouring limit, types and queues', async () => {
      await t.trpc.jobs.enqueueMany.mutate({ jobs: Array.from({ length: 5 }, () => ({ type: 'ingestion', payload: good })) });
      await t.trpc.jobs.enqueue.mutate({ type: 'email', payload: { to: 'a@b.co' } });
      const none = await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['elsewhere'], limit: 10 });
      expect(none.jobs).toHaveLength(0);
      const { jobs: claimed, leaseExpiresAt } = await t.trpc.worker.claim.mutate({ workerId: 'w1', types: ['ingestion'], limit: 3, leaseMs: 10_000 });
      expect(claimed).toHaveLength(3);
      expect((leaseExpiresAt as Date).getTime() - Date.now()).toBeGreaterThan(8000);
      for (const job of claimed) {
        expect(job).toMatchObject({ type: 'ingestion', attempt: 1, payload: good });
        expect((await readJob(t.db.pool, job.id))).toMatchObject({ status: 'claimed', worker_id: 'w1' });
      }
      const rest = await t.trpc.worker.claim.mutate({ workerId: 'w2', limit: 10 });
      expect(rest.jobs).toHaveLength(3);
      expect(await failure(t.trpc.worker.claim.mutate({ workerId: 'w1', limit: 0 }))).toMatchObject({ status: 400 });
      expect(await failure(t.trpc.worker.claim.mutate({ workerId: 'w1', waitMs: 3_600_000 }))).toMatchObject({ status: 400 });
    });

    it('completes the jobs a claim carries, in the same call, with an outcome each', async () => {
      const held = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
      const stale = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', attempt: 2 });
      const next = await insertJob(t.db.pool);
      const answer = await t.trpc.worker.claim.mutate({
        workerId: 'w1',
        limit: 5,
        complete: [{ id: held.id, attempt: 1, result: { rows: 3 } }, { id: stale.id, attempt: 1 }],
      });
      expect(answer.completed).toEqual(['completed', 'lease_lost']);
      expect(answer.jobs.map((j) => j.id)).toEqual([next.id]);
      expect(await readJob(t.db.pool, held.id)).toMatchObject({ status: 'completed', result: { rows: 3 } });
      expect((await readJob(t.db.pool, stale.id)).status).toBe('processing');
      // Carried again after a lost reply: still "completed", nothing written twice.
      const again = await t.trpc.worker.claim.mutate({ workerId: 'w1', complete: [{ id: held.id, attempt: 1, result: { rows: 4 } }] });
      expect(again).toEqual({ jobs: [], leaseExpiresAt: null, completed: ['completed'] });
      expect((await readJob(t.db.pool, held.id)).result).toEqual({ rows: 3 });
    });

    it('long-polls: a waiting claim is woken by an enqueue, not by its timeout', async () => {
      const started = Date.now();
      const claim = t.trpc.worker.claim.mutate({ workerId: 'w1', waitMs: 10_000 });
      await new Promise((r) => setTimeout(r, 100));
      const job = await t.trpc.jobs.enqueue.mutate({ type: 'ingestion', payload: good });
      const { jobs: got } = await claim;
      expect(got.map((j) => j.id)).toEqual([job.id]);
      expect(Date.now() - started).toBeLessThan(3000);
    });

    it('answers an empty claim after waitMs when there is no work', async () => {
      const started = Date.now();
      const { jobs: got } = await t.trpc.worker.claim.mutate({ workerId: 'w1', waitMs: 300 });
      expect(got).toEqual([]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    });

    it('starts, heartbeats and completes a held job; the result is stored', async () => {
      const row = await insertJob(t.db.pool, { status: 'claimed', worker_id: 'w1', lease_expires_at: new Date(Date.now() + 1000) });
      const start = await t.trpc.worker.start.mutate({ workerId: 'w1', jobs: [{ id: row.id, attempt: 1 }] });
      expect(start).toEqual({ started: [row.id], lost: [], cancelled: [] });
      expect((await readJob(t.db.pool, row.id)).status).toBe('processing');
      const beat = await t.trpc.worker.heartbeat.mutate({ workerId: 'w1', leaseMs: 60_000, jobs: [{ id: row.id, attempt: 1, progress: { pct: 50 } }] });
      expect(beat.extended[0]?.leaseExpiresAt.getTime()).toBeGreaterThan(Date.now() + 50_000);
      expect((await readJob(t.db.pool, row.id)).progress).toEqual({ pct: 50 });
      const done = await t.trpc.worker.complete.mutate({ workerId: 'w1', id: row.id, attempt: 1, result: { rows: 42 } });
      expect(done).toEqual({ id: row.id, status: 'completed' });
      expect(await readJob(t.db.pool, row.id)).toMatchObject({ status: 'completed', result: { rows: 42 }, lease_expires_at: null });
      // The same completion again (a lost reply retried) succeeds without a second write.
      const before = await readJob(t.db.pool, row.id);
      await t.trpc.worker.complete.mutate({ workerId: 'w1', id: row.id, attempt: 1, result: { rows: 99 } });
      expect(await readJob(t.db.pool, row.id)).toEqual(before);
    });

    it('refuses every fenced call from a worker that does not hold the job, changing nothing', async () => {
      const row = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', attempt: 2 });
      const before = await readJob(t.db.pool, row.id);
      const stale = { workerId: 'w1', id: row.id, attempt: 1 };
      const other = { workerId: 'w2', id: row.id, attempt: 2 };
      for (const ref of [stale, other]) {
        expect(await failure(t.trpc.worker.complete.mutate(ref))).toMatchObject({ status: 409, code: 'LEASE_LOST', trpcCode: 'CONFLICT' });
        expect(await failure(t.trpc.worker.fail.mutate({ ...ref, error: 'x' }))).toMatchObject({ status: 409, code: 'LEASE_LOST' });
        const beat = await t.trpc.worker.heartbeat.mutate({ workerId: ref.workerId, jobs: [{ id: row.id, attempt: ref.attempt }] });
        expect(beat.lost).toEqual([row.id]);
        const released = await t.trpc.worker.release.mutate({ workerId: ref.workerId, jobs: [{ id: row.id, attempt: ref.attempt }] });
        expect(released.released).toEqual([]);
      }
      expect(await readJob(t.db.pool, row.id)).toEqual(before);
      expect(await failure(t.trpc.worker.complete.mutate({ workerId: 'w1', id: '01930000-0000-7000-8000-000000000000', attempt: 1 }))).toMatchObject({ status: 404 });
    });

    it('completes many in one call with an outcome per job', async () => {
      const a = await insertJob(t.db.pool, { status: 'claimed', worker_id: 'w1' });
      const b = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
      const lost = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w9' });
      const cancelled = await insertJob(t.db.pool, { status: 'cancelled', worker_id: 'w1', attempt: 1 });
      const { results } = await t.trpc.worker.completeMany.mutate({
        workerId: 'w1',
        jobs: [{ id: a.id, attempt: 1, result: 1 }, { id: b.id, attempt: 1 }, { id: lost.id, attempt: 1 }, { id: cancelled.id, attempt: 1 }, { id: '01930000-0000-7000-8000-000000000000', attempt: 1 }],
      });
      expect(results.map((r) => r.outcome)).toEqual(['completed', 'completed', 'lease_lost', 'cancelled', 'not_found']);
      expect(await countJobs(t.db.pool, 'completed')).toBe(2);
    });

    it('fails with backoff, becomes claimable when due, and fails for good when retries are spent', async () => {
      const row = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', max_retries: 1 });
      const first = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: row.id, attempt: 1, error: 'timeout', retryDelayMs: 300 });
      expect(first).toMatchObject({ status: 'pending', retryCount: 1 });
      expect(first.scheduledFor.getTime() - Date.now()).toBeGreaterThan(100);
      expect((await t.trpc.worker.claim.mutate({ workerId: 'w1' })).jobs).toHaveLength(0);
      const { jobs: again } = await t.trpc.worker.claim.mutate({ workerId: 'w1', waitMs: 3000 });
      expect(again).toMatchObject([{ id: row.id, attempt: 2, retryCount: 1 }]);
      // Repeating the same fail (lost reply) answers the same state without a second retry.
      const repeat = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: row.id, attempt: 1, error: 'timeout' }).catch((e: TRPCClientError<never>) => e);
      expect(repeat).toBeInstanceOf(TRPCClientError);
      const last = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: row.id, attempt: 2, error: 'timeout again' });
      expect(last.status).toBe('failed');
      expect(await readJob(t.db.pool, row.id)).toMatchObject({ status: 'failed', error_message: 'timeout again', retry_count: 1 });
    });

    it('uses the type backoff policy from the registry when the worker gives no delay', async () => {
      const row = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
      const res = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: row.id, attempt: 1, error: 'x' });
      // ingestion has no policy: the established linear 60 s.
      expect(res.scheduledFor.getTime() - Date.now()).toBeGreaterThan(55_000);
    });

    it('releases a held job to pending without using a retry', async () => {
      const row = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', retry_count: 1 });
      const { released } = await t.trpc.worker.release.mutate({ workerId: 'w1', jobs: [{ id: row.id, attempt: 1 }] });
      expect(released).toEqual([row.id]);
      expect(await readJob(t.db.pool, row.id)).toMatchObject({ status: 'pending', retry_count: 1, attempt: 1 });
    });
  });

  describe('queues.stats and health', () => {
    it('counts jobs per queue, type and status', async () => {
      await insertJob(t.db.pool, { queue: 'a' });
      await insertJob(t.db.pool, { queue: 'a' });
      await insertJob(t.db.pool, { queue: 'a', status: 'completed' });
      await insertJob(t.db.pool, { queue: 'b', task_type: 'email' });
      const { counts } = await t.trpc.queues.stats.query({});
      expect(counts.map(({ queue, type, status, count }) => ({ queue, type, status, count }))).toEqual([
        { queue: 'a', type: 'ingestion', status: 'completed', count: 1 },
        { queue: 'a', type: 'ingestion', status: 'pending', count: 2 },
        { queue: 'b', type: 'email', status: 'pending', count: 1 },
      ]);
    });

    it('reports the database up and the version', async () => {
      expect(await t.trpc.health.query()).toMatchObject({ ok: true, database: 'up', listening: true, version: expect.any(String) });
    });
  });
});

describe('a server without a registry', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t.stop());

  it('accepts any JSON payload for any well-named type', async () => {
    const job = await t.trpc.jobs.enqueue.mutate({ type: 'anything', payload: [1, { deep: [null, true] }] });
    expect((await readJob(t.db.pool, job.id)).payload).toEqual([1, { deep: [null, true] }]);
  });

  it('still refuses what PostgreSQL cannot store', async () => {
    expect(await failure(t.trpc.jobs.enqueue.mutate({ type: 'x', payload: { s: '\u0000' } }))).toMatchObject({ status: 400 });
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = [deep];
    expect(await failure(t.trpc.jobs.enqueue.mutate({ type: 'x', payload: deep }))).toMatchObject({ status: 400 });
    expect(await countJobs(t.db.pool)).toBe(1);
  });
});
