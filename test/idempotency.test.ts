import { silentLogger } from '../server/logger.js';
import { TRPCClientError } from '@trpc/client';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient } from '../client/index.js';
import { createMaintenance } from '../server/maintenance.js';
import type { TaskRow } from '../server/queries/row.js';
import { defineJobs } from '../shared/index.js';
import { countJobs, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  note: { payload: z.object({ n: z.number() }) },
});

function codeOf(error: unknown): string | undefined {
  return error instanceof TRPCClientError ? (error.data as { skipqCode?: string } | undefined)?.skipqCode : undefined;
}

/** Inserts `n` jobs held by `workerId` (attempt 1) whose leases expired a moment ago. */
async function insertExpired(t: TestServer, n: number, workerId: string): Promise<string[]> {
  const { rows } = await t.db.pool.query<{ id: string }>(
    `INSERT INTO task_queue (task_type, queue, payload, status, attempt, worker_id, lease_expires_at, started_at, max_retries)
     SELECT 'note', 'default', jsonb_build_object('n', i), 'processing', 1, $2, now() - interval '1 millisecond', now(), 3
     FROM generate_series(1, $1::int) AS i
     RETURNING id`,
    [n, workerId],
  );
  return rows.map((r) => r.id);
}

describe('idempotency and races', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ jobs });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  describe('uniqueKey', () => {
    it('50 concurrent enqueues with one uniqueKey, each its own HTTP request, make one row and 50 identical ids', async () => {
      for (let round = 0; round < 3; round++) {
        const key = `chain-${round}:2026-01-23`;
        const answers = await Promise.all(
          Array.from({ length: 50 }, (_, i) => t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { n: i }, uniqueKey: key })),
        );
        const ids = new Set(answers.map((a) => a.id));
        expect(ids.size).toBe(1);
        expect(answers.filter((a) => a.created)).toHaveLength(1);
        const { rows } = await t.db.pool.query<{ id: string }>('SELECT id FROM task_queue WHERE unique_key = $1', [key]);
        expect(rows.map((r) => r.id)).toEqual([...ids]);
      }
      expect(await countJobs(t.db.pool)).toBe(3);
    });

    it('the same through createQueueClient, which coalesces them into enqueueMany, and without coalescing', async () => {
      for (const coalesce of [true, false]) {
        const client = createQueueClient({ url: t.url, jobs, coalesce });
        try {
          const key = `coalesce-${coalesce}`;
          const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.enqueue('note', { n: i }, { uniqueKey: key })));
          expect(new Set(answers.map((a) => a.id)).size).toBe(1);
          expect(answers.filter((a) => a.created)).toHaveLength(1);
          const { rows } = await t.db.pool.query('SELECT id FROM task_queue WHERE unique_key = $1', [key]);
          expect(rows).toEqual([{ id: answers[0]?.id }]);
        } finally {
          await client.close();
        }
      }
    });

    it('the same inside one enqueueMany, and across concurrent enqueueMany calls sharing keys', async () => {
      const { jobs: one } = await t.trpc.jobs.enqueueMany.mutate({
        jobs: Array.from({ length: 50 }, (_, i) => ({ type: 'note', payload: { n: i }, uniqueKey: 'same' })),
      });
      expect(new Set(one.map((j) => j.id)).size).toBe(1);
      expect(one.map((j) => j.created)).toEqual([true, ...Array.from({ length: 49 }, () => false)]);
      expect(await countJobs(t.db.pool)).toBe(1);
      // The stored payload is the first job's.
      expect((await readJob(t.db.pool, one[0]?.id as string)).payload).toEqual({ n: 0 });

      // Ten calls at once, each with keys k0..k9 in a different order: ten rows, one id per key everywhere.
      const calls = await Promise.all(
        Array.from({ length: 10 }, (_, c) =>
          t.trpc.jobs.enqueueMany.mutate({ jobs: Array.from({ length: 10 }, (_, i) => ({ type: 'note', payload: { n: c }, uniqueKey: `k${(i + c) % 10}` })) }),
        ),
      );
      const idOf = new Map<string, Set<string>>();
      calls.forEach((call, c) =>
        call.jobs.forEach((j, i) => {
          const key = `k${(i + c) % 10}`;
          idOf.set(key, (idOf.get(key) ?? new Set()).add(j.id));
        }),
      );
      for (const ids of idOf.values()) expect(ids.size).toBe(1);
      expect(calls.flatMap((c) => c.jobs).filter((j) => j.created)).toHaveLength(10);
      expect(await countJobs(t.db.pool)).toBe(11);
    });

    it('a finished job frees its key: concurrent enqueues after it make exactly one new job', async () => {
      const first = await t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { n: 0 }, uniqueKey: 'daily' });
      await t.db.pool.query(`UPDATE task_queue SET status = 'completed', completed_at = now() WHERE id = $1`, [first.id]);
      const answers = await Promise.all(Array.from({ length: 20 }, () => t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, uniqueKey: 'daily' })));
      expect(new Set(answers.map((a) => a.id)).size).toBe(1);
      expect(answers[0]?.id).not.toBe(first.id);
      expect(await countJobs(t.db.pool, 'pending')).toBe(1);
    });
  });

  describe('repeated completions', () => {
    it('a complete repeated after a lost reply succeeds without a second completion', async () => {
      await t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 } });
      const [job] = (await t.trpc.worker.claim.mutate({ workerId: 'w1' })).jobs;
      if (!job) throw new Error('nothing claimed');
      const ref = { workerId: 'w1', id: job.id, attempt: job.attempt };
      expect(await t.trpc.worker.complete.mutate({ ...ref, result: { rows: 1 } })).toEqual({ id: job.id, status: 'completed' });
      const done = await readJob(t.db.pool, job.id);
      expect(done).toMatchObject({ status: 'completed', result: { rows: 1 } });
      expect(done.completed_at).toBeInstanceOf(Date);
      await new Promise((r) => setTimeout(r, 5));
      // The reply was "lost": the worker sends the same completion again (even with another result).
      expect(await t.trpc.worker.complete.mutate({ ...ref, result: { rows: 2 } })).toEqual({ id: job.id, status: 'completed' });
      expect(await t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: [{ id: job.id, attempt: job.attempt, result: { rows: 3 } }] })).toEqual({
        results: [{ id: job.id, outcome: 'completed' }],
      });
      expect(await readJob(t.db.pool, job.id)).toEqual(done);
      // Another worker, or a stale attempt, is not a repeat.
      expect(codeOf(await t.trpc.worker.complete.mutate({ ...ref, workerId: 'w2' }).catch((e: unknown) => e))).toBe('LEASE_LOST');
      expect(codeOf(await t.trpc.worker.complete.mutate({ ...ref, attempt: job.attempt + 1 }).catch((e: unknown) => e))).toBe('LEASE_LOST');
      expect(await readJob(t.db.pool, job.id)).toEqual(done);
    });

    it('20 identical completions at once: all answer completed, the job completes once', async () => {
      const [id] = await insertExpired(t, 1, 'w1');
      await t.db.pool.query(`UPDATE task_queue SET lease_expires_at = now() + interval '1 minute'`);
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => t.trpc.worker.complete.mutate({ workerId: 'w1', id: id as string, attempt: 1, result: { i } })),
      );
      expect(answers.every((a) => a.status === 'completed')).toBe(true);
      const row = await readJob(t.db.pool, id as string);
      expect(row.status).toBe('completed');
      // Exactly one result was written, and it is one of the twenty.
      expect((row.result as { i: number }).i).toBeGreaterThanOrEqual(0);
      const { rows } = await t.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_queue WHERE status = 'completed'`);
      expect(rows[0]?.n).toBe(1);
    });
  });

  describe('the rescuer racing completions', () => {
    it('each job whose lease just expired ends completed or rescued, never both and never lost', async () => {
      const totals = { completed: 0, rescued: 0 };
      // The rescuer of a second server instance, with its own pool: the server's own sweep would queue
      // for a connection behind the completions in flight and always come last.
      const rescuer = createMaintenance({ pool: t.db.pool, hub: t.server.deps.hub, rescueIntervalMs: 60_000, retentionDays: 0, logger: silentLogger });
      for (let round = 0; round < 4; round++) {
        await t.db.pool.query('DELETE FROM task_queue');
        const ids = await insertExpired(t, 200, 'w1');
        const single = ids.slice(0, 100);
        const batched = ids.slice(100);
        // Completions: 100 single calls and 10 completeMany of 10, all at once. The sweep starts once the
        // server has taken `threshold` database connections for them, so it lands at a different point of the
        // race each round.
        const threshold = [0, 25, 50, 75][round] as number;
        let acquired = 0;
        let startSweep!: () => void;
        const sweepStarted = new Promise<void>((resolve) => (startSweep = resolve));
        const onAcquire = () => {
          if (++acquired >= threshold) startSweep();
        };
        t.server.pool.on('acquire', onAcquire);
        if (threshold === 0) startSweep();
        const singles = single.map((id) =>
          t.trpc.worker.complete.mutate({ workerId: 'w1', id, attempt: 1, result: { by: 'worker' } }).then(
            () => 'completed' as const,
            (e: unknown) => {
              if (codeOf(e) === 'LEASE_LOST') return 'lease_lost' as const;
              throw e;
            },
          ),
        );
        const batches = Array.from({ length: 10 }, (_, b) =>
          t.trpc.worker.completeMany
            .mutate({ workerId: 'w1', jobs: batched.slice(b * 10, b * 10 + 10).map((id) => ({ id, attempt: 1, result: { by: 'worker' } })) }),
        );
        const sweep = sweepStarted.then(() => rescuer.sweep());
        const [swept, singleOutcomes, batchOutcomes] = await Promise.all([sweep, Promise.all(singles), Promise.all(batches)]);
        t.server.pool.off('acquire', onAcquire);
        const outcome = new Map<string, string>();
        single.forEach((id, i) => outcome.set(id, singleOutcomes[i] as string));
        for (const { results } of batchOutcomes) for (const r of results) outcome.set(r.id, r.outcome);

        const { rows } = await t.db.pool.query<TaskRow>('SELECT * FROM task_queue');
        expect(rows).toHaveLength(200);
        let lost = 0;
        for (const row of rows) {
          const said = outcome.get(row.id);
          if (said === 'completed') {
            expect(row).toMatchObject({ status: 'completed', result: { by: 'worker' }, retry_count: 0, error_message: null, lease_expires_at: null });
            totals.completed++;
          } else {
            expect(said, `job ${row.id}`).toBe('lease_lost');
            expect(row).toMatchObject({ status: 'pending', result: null, completed_at: null, retry_count: 1, lease_expires_at: null });
            expect(row.error_message).toMatch(/lease expired/);
            lost++;
            totals.rescued++;
          }
        }
        // The sweep's own count agrees: it rescued exactly the jobs whose completion was refused.
        expect(swept).toEqual({ rescued: lost, failed: 0 });
      }
      // Both sides of the race happened (the sweep started at different points of the completions).
      expect(totals.completed).toBeGreaterThan(0);
      expect(totals.rescued).toBeGreaterThan(0);
    });

    it('a job completed just before the sweep stays completed; the others are rescued', async () => {
      const ids = await insertExpired(t, 20, 'w1');
      const early = ids.slice(0, 10);
      for (const id of early) await t.trpc.worker.complete.mutate({ workerId: 'w1', id, attempt: 1, result: 'early' });
      expect(await t.server.maintenance.sweep()).toEqual({ rescued: 10, failed: 0 });
      for (const id of ids) {
        const row = await readJob(t.db.pool, id);
        if (early.includes(id)) expect(row).toMatchObject({ status: 'completed', result: 'early', retry_count: 0 });
        else expect(row).toMatchObject({ status: 'pending', retry_count: 1, result: null });
      }
      // A second sweep finds nothing, and the late completions are refused.
      expect(await t.server.maintenance.sweep()).toEqual({ rescued: 0, failed: 0 });
      const late = await t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: ids.map((id) => ({ id, attempt: 1 })) });
      expect(late.results.map((r) => r.outcome)).toEqual([...early.map(() => 'completed'), ...ids.slice(10).map(() => 'lease_lost')]);
      expect(await countJobs(t.db.pool, 'completed')).toBe(10);
    });
  });
});
