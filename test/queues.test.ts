import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, type Worker } from '../client/index.js';
import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import { createQueueServer } from '../server/app.js';
import { silentLogger } from '../server/logger.js';
import type { AppRouter } from '../server/routers/_app.js';
import { defineJobs, LIMITS } from '../shared/index.js';
import { installClaimAudit } from './support/claimAudit.js';
import { insertJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  task: { payload: z.object({ n: z.number().int() }), backoff: { kind: 'fixed', delayMs: 0 } },
});

describe('queues as things: pause, concurrency, rate limits', () => {
  let t: TestServer;
  const workers: Worker[] = [];
  const client = () => createQueueClient({ url: t.url, jobs });
  const spawn = (workerId: string, queues: string[], handler: (p: { n: number }) => Promise<void>, concurrency = 3) => {
    const w = createWorker({ url: t.url, jobs, waitMs: 300, workerId, queues, concurrency, handlers: { task: handler } });
    workers.push(w);
    w.start();
    return w;
  };

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
    await installClaimAudit(t.db.pool);
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases, claim_audit');
  });

  it('pause stops claims over HTTP and claim_tasks, enqueue works meanwhile, and resume restarts them', async () => {
    const q = client();
    const paused = await q.pause('mail');
    expect(paused).toMatchObject({ name: 'mail', paused: true });
    const ids = [];
    for (let n = 0; n < 3; n++) ids.push((await q.enqueue('task', { n }, { queue: 'mail' })).id);
    const other = await q.enqueue('task', { n: 9 }, { queue: 'other' });

    expect((await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['mail'], limit: 10 })).jobs).toEqual([]);
    const any = await t.trpc.worker.claim.mutate({ workerId: 'w1', limit: 10 });
    expect(any.jobs.map((j) => j.id)).toEqual([other.id]);
    const { rows: sql } = await t.db.pool.query(`SELECT id FROM claim_tasks('sql-worker', NULL, 10)`);
    expect(sql).toEqual([]);

    const listed = (await q.queues()).find((x) => x.name === 'mail');
    expect(listed).toMatchObject({ paused: true, concurrency: null, rateLimit: null });
    expect(listed?.counts.pending).toBe(3);
    expect((await q.explain(ids[0] as string)).reasons.map((r) => r.code)).toEqual(['QUEUE_PAUSED']);

    await q.resume('mail');
    const { rows: viaSql } = await t.db.pool.query<{ id: string }>(`SELECT id FROM claim_tasks('sql-worker', NULL, 1)`);
    expect(viaSql).toHaveLength(1);
    const resumed = await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['mail'], limit: 10 });
    expect(resumed.jobs).toHaveLength(2);
    await q.close();
  });

  it('wakes a claim waiting on a paused queue when the queue resumes', async () => {
    const q = client();
    await q.pause('mail');
    await q.enqueue('task', { n: 1 }, { queue: 'mail' });
    const started = Date.now();
    const waiting = t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['mail'], waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 200));
    await q.resume('mail');
    expect((await waiting).jobs).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(4000);
    await q.close();
  });

  it('never holds more than 2 jobs of a queue with concurrency 2 under 8 claiming workers, through fails and cancels', async () => {
    const q = client();
    expect(await q.configure('limited', { concurrency: 2 })).toMatchObject({ concurrency: 2 });
    const ids = (await q.enqueueMany(Array.from({ length: 60 }, (_, n) => ({ type: 'task' as const, payload: { n }, queue: 'limited' })))).map((r) => r.id);
    const seen = new Set<number>();
    for (let w = 0; w < 8; w++) {
      spawn(`limited-${w}`, ['limited'], async ({ n }) => {
        await new Promise((r) => setTimeout(r, 5));
        // Every fifth job fails once (back to pending at once), so the fail move must release its slot too.
        if (n % 5 === 0 && !seen.has(n)) {
          seen.add(n);
          throw new Error('first try fails');
        }
      });
    }
    await q.cancel(ids[59] as string);
    await waitFor(async () => (await t.db.pool.query(`SELECT count(*)::int AS n FROM task_queue WHERE status = 'completed'`)).rows[0].n === 59, 60_000, '59 completed');
    const { rows } = await t.db.pool.query<{ claims: number; most: number }>(`SELECT count(*)::int AS claims, max(queue_held)::int AS most FROM claim_audit WHERE queue = 'limited'`);
    expect(rows[0]?.claims).toBeGreaterThanOrEqual(59 + 12);
    expect(rows[0]?.most).toBe(2);
    // The counters agree with the table once the ledger is folded: nothing held.
    const held = await t.db.pool.query<{ n: number }>(
      `SELECT (q.held - skipq_released(q.name))::int AS n FROM queues q WHERE q.name = 'limited'`,
    );
    expect(held.rows[0]?.n).toBe(0);
    await q.close();
  }, 90_000);

  it('claims the other queues\' jobs beside a limited queue, with and without a concurrency key, and only what is due', async () => {
    const q = client();
    await q.configure('limited', { concurrency: 2 });
    await q.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ type: 'task' as const, payload: { n }, queue: 'limited' })));
    const plain = await q.enqueue('task', { n: 100 }, { queue: 'plain' });
    // A key in a queue without keyConcurrency is only a label: the job is claimed like any other.
    const labelled = await q.enqueue('task', { n: 101 }, { queue: 'labelled', concurrencyKey: 'tenant-1' });
    await q.enqueue('task', { n: 102 }, { queue: 'later', delayMs: 60_000 });
    const first = await t.trpc.worker.claim.mutate({ workerId: 'w1', limit: 10 });
    const byQueue = (jobs: Array<{ queue: string }>) => jobs.reduce<Record<string, number>>((m, j) => ({ ...m, [j.queue]: (m[j.queue] ?? 0) + 1 }), {});
    expect(byQueue(first.jobs)).toEqual({ limited: 2, plain: 1, labelled: 1 });
    expect(first.jobs.map((j) => j.id)).toEqual(expect.arrayContaining([plain.id, labelled.id]));
    // Nothing else is due: the limited queue is full, the other job is not due for a minute.
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w2', limit: 10 })).jobs).toEqual([]);
    const { rows } = await t.db.pool.query<{ ok: boolean }>(`SELECT skipq_pending_elsewhere(ARRAY['limited'], NULL) AS ok`);
    expect(rows[0]?.ok).toBe(true); // the delayed job is pending elsewhere, though not due
    await t.db.pool.query(`DELETE FROM task_queue WHERE queue = 'later'`);
    const { rows: none } = await t.db.pool.query<{ ok: boolean }>(`SELECT skipq_pending_elsewhere(ARRAY['limited'], NULL) AS ok, skipq_pending_elsewhere('{}', ARRAY['plain']) AS plain`);
    expect(none[0]).toEqual({ ok: false, plain: false });
    await q.close();
  });

  it('lets a rate limit of 50/s over 4 workers claim 250 ± 50 jobs in 5 s', async () => {
    const q = client();
    await q.configure('paced', { rateLimit: { max: 50, periodMs: 1000 } });
    await q.enqueueMany(Array.from({ length: 600 }, (_, n) => ({ type: 'task' as const, payload: { n }, queue: 'paced' })));
    for (let w = 0; w < 4; w++) spawn(`paced-${w}`, ['paced'], async () => {}, 10);
    await waitFor(async () => (await t.db.pool.query(`SELECT count(*)::int AS n FROM claim_audit`)).rows[0].n > 0, 10_000, 'the first claim');
    await new Promise((r) => setTimeout(r, 5000));
    const { rows } = await t.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM claim_audit WHERE at < (SELECT min(at) FROM claim_audit) + interval '5 seconds'`,
    );
    expect(rows[0]?.n).toBeGreaterThanOrEqual(200);
    expect(rows[0]?.n).toBeLessThanOrEqual(300);
    await q.close();
  }, 30_000);

  it('clears a limit with null, and refuses a limit that is not a positive integer', async () => {
    const q = client();
    await q.configure('limited', { concurrency: 1, rateLimit: { max: 5, periodMs: 1000 } });
    expect(await q.configure('limited', { concurrency: null })).toMatchObject({ concurrency: null, rateLimit: { max: 5, periodMs: 1000 } });
    expect(await q.configure('limited', { rateLimit: null })).toMatchObject({ concurrency: null, rateLimit: null, paused: false });
    await expect(q.configure('limited', { concurrency: 0 })).rejects.toThrow();
    await q.close();
  });
});

describe('a finished job of a full queue wakes the claims waiting for room', () => {
  let t: TestServer;
  // A poll far past the test's waits: only a wake-up can answer in time.
  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 10_000 });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases');
  });

  const cases = [
    { limit: 'concurrency 1', move: 'complete' },
    { limit: 'concurrency 1', move: 'fail' },
    { limit: 'concurrency 1', move: 'completion riding with a claim' },
    { limit: 'concurrency 1', move: 'cancel' },
    { limit: 'concurrency 1', move: 'cancelMany' },
    { limit: 'keyConcurrency 1', move: 'complete' },
  ] as const;
  for (const { limit, move } of cases) {
    it(`hands the next job to a claim waiting on a queue with ${limit} as soon as the held one's ${move} lands`, async () => {
      const q = createQueueClient({ url: t.url, jobs });
      await q.configure('limited', limit === 'concurrency 1' ? { concurrency: 1 } : { keyConcurrency: 1 });
      const first = await q.enqueue('task', { n: 1 }, { queue: 'limited', concurrencyKey: 'tenant-a' });
      const second = await q.enqueue('task', { n: 2 }, { queue: 'limited', concurrencyKey: 'tenant-a' });
      const [held] = (await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['limited'], limit: 1 })).jobs;
      expect(held?.id).toBe(first.id);
      const started = Date.now();
      const waiting = t.trpc.worker.claim.mutate({ workerId: 'w2', queues: ['limited'], limit: 5, waitMs: 5000 });
      await new Promise((r) => setTimeout(r, 200));
      if (move === 'complete') await t.trpc.worker.complete.mutate({ workerId: 'w1', id: first.id, attempt: 1 });
      else if (move === 'fail') await t.trpc.worker.fail.mutate({ workerId: 'w1', id: first.id, attempt: 1, error: 'boom', retry: false });
      else if (move === 'cancel') await q.cancel(first.id);
      else if (move === 'cancelMany') expect(await q.cancelMany({ filter: { queue: 'limited', status: 'claimed' }, limit: 10 })).toMatchObject({ moved: 1 });
      // The holder's claim carries the completion and finds the queue full again only after w2 took the room.
      else await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['other'], limit: 1, complete: [{ id: first.id, attempt: 1 }] });
      const answer = await waiting;
      expect(answer.jobs.map((j) => j.id)).toEqual([second.id]);
      expect(Date.now() - started).toBeLessThan(2000);
      await q.close();
    });
  }

  it('wakes a claim waiting on another server too (NOTIFY), not after its poll', async () => {
    const b = await createQueueServer({ databaseUrl: t.db.url, jobs, port: 0, logger: silentLogger, maintenance: false, pollIntervalMs: 10_000 });
    try {
      const q = createQueueClient({ url: t.url, jobs });
      await q.configure('limited', { concurrency: 1 });
      const first = await q.enqueue('task', { n: 1 }, { queue: 'limited' });
      const second = await q.enqueue('task', { n: 2 }, { queue: 'limited' });
      await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['limited'], limit: 1 });
      const onB = createTRPCClient<AppRouter>({ links: [httpLink({ url: b.url, transformer: superjson })] });
      const started = Date.now();
      const waiting = onB.worker.claim.mutate({ workerId: 'w2', queues: ['limited'], limit: 5, waitMs: 5000 });
      await new Promise((r) => setTimeout(r, 300));
      await t.trpc.worker.complete.mutate({ workerId: 'w1', id: first.id, attempt: 1 });
      expect((await waiting).jobs.map((j) => j.id)).toEqual([second.id]);
      expect(Date.now() - started).toBeLessThan(2000);
      await q.close();
    } finally {
      await b.close();
    }
  });
  const sqlMoves = {
    complete_task: 'SELECT complete_task($1)',
    fail_task: "SELECT fail_task($1, 'boom', false)",
    complete_job: "SELECT complete_job($1, $2, 'w1')",
    fail_job: "SELECT fail_job($1, $2, 'w1', 'boom', false)",
  } as const;
  for (const [fn, sql] of Object.entries(sqlMoves)) {
    it(`wakes a claim waiting on a queue with concurrency 1 when SQL ${fn} finishes the held job (NOTIFY at its commit)`, async () => {
      const q = createQueueClient({ url: t.url, jobs });
      await q.configure('limited', { concurrency: 1 });
      const first = await q.enqueue('task', { n: 1 }, { queue: 'limited' });
      const second = await q.enqueue('task', { n: 2 }, { queue: 'limited' });
      await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['limited'], limit: 1 });
      const started = Date.now();
      const waiting = t.trpc.worker.claim.mutate({ workerId: 'w2', queues: ['limited'], limit: 5, waitMs: 5000 });
      await new Promise((r) => setTimeout(r, 200));
      await t.db.pool.query(sql, fn.endsWith('_job') ? [first.id, 1] : [first.id]);
      expect((await waiting).jobs.map((j) => j.id)).toEqual([second.id]);
      expect(Date.now() - started).toBeLessThan(2000);
      await q.close();
    });
  }

  it('sends no NOTIFY for a job SQL finishes in a queue without limits (it frees no room)', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    await q.configure('limited', { concurrency: 1 });
    const plain = await q.enqueue('task', { n: 1 }, { queue: 'plain' });
    const limitedJob = await q.enqueue('task', { n: 2 }, { queue: 'limited' });
    await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['plain', 'limited'], limit: 2 });
    const listener = await t.db.pool.connect();
    const heard: string[] = [];
    try {
      listener.on('notification', (m) => heard.push(m.payload ?? ''));
      await listener.query('LISTEN skipq_jobs');
      expect((await t.db.pool.query('SELECT complete_task($1) AS ok', [plain.id])).rows[0].ok).toBe(true);
      expect((await t.db.pool.query('SELECT complete_task($1) AS ok', [limitedJob.id])).rows[0].ok).toBe(true);
      await waitFor(() => heard.length > 0, 2000, 'the NOTIFY of the limited queue');
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual(['limited']);
    } finally {
      await listener.query('UNLISTEN *');
      listener.release();
      await q.close();
    }
  });

  it('wakes a claim waiting on another server when the leader rescues a job (NOTIFY at the rescue commit), not after its poll', async () => {
    const b = await createQueueServer({ databaseUrl: t.db.url, jobs, port: 0, logger: silentLogger, maintenance: false, pollIntervalMs: 10_000 });
    try {
      const q = createQueueClient({ url: t.url, jobs });
      const job = await q.enqueue('task', { n: 1 }, { queue: 'rescued' });
      const [held] = (await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: ['rescued'], limit: 1, leaseMs: LIMITS.minLeaseMs })).jobs;
      expect(held?.id).toBe(job.id);
      const onB = createTRPCClient<AppRouter>({ links: [httpLink({ url: b.url, transformer: superjson })] });
      // B looks, finds the job held, and waits: only a wake-up can answer it before its 10 s poll.
      const waiting = onB.worker.claim.mutate({ workerId: 'w2', queues: ['rescued'], limit: 5, waitMs: 5000 });
      await new Promise((r) => setTimeout(r, LIMITS.minLeaseMs + 200));
      const started = Date.now();
      expect(await t.server.maintenance.sweep()).toEqual({ rescued: 1, failed: 0 });
      const answer = await waiting;
      expect(answer.jobs.map((j) => [j.id, j.attempt])).toEqual([[job.id, 2]]);
      expect(Date.now() - started).toBeLessThan(2000);
      await q.close();
    } finally {
      await b.close();
    }
  });
});

describe('jobs.explain', () => {
  const START = new Date('2031-03-01T12:00:00.000Z');
  let clock = START;
  let t: TestServer;
  const client = () => createQueueClient({ url: t.url, jobs });
  beforeAll(async () => {
    t = await startTestServer({ jobs, now: () => clock });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    clock = START;
    await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases');
  });
  const codes = async (id: string) => (await t.trpc.jobs.explain.query({ id })).reasons.map((r) => r.code);

  it('answers READY, SCHEDULED, HELD (by whom, until when) and FINISHED', async () => {
    const q = client();
    const ready = await q.enqueue('task', { n: 1 });
    expect(await t.trpc.jobs.explain.query({ id: ready.id })).toMatchObject({ status: 'pending', runnable: true, reasons: [{ code: 'READY' }] });
    const later = await q.enqueue('task', { n: 2 }, { runAt: new Date(START.getTime() + 60_000) });
    expect(await t.trpc.jobs.explain.query({ id: later.id })).toMatchObject({
      runnable: false,
      reasons: [{ code: 'SCHEDULED', until: new Date(START.getTime() + 60_000) }],
    });
    const { jobs: held, leaseExpiresAt } = await t.trpc.worker.claim.mutate({ workerId: 'explainer', limit: 1, leaseMs: 30_000 });
    const heldWhy = await t.trpc.jobs.explain.query({ id: held[0]!.id });
    expect(heldWhy).toMatchObject({ status: 'claimed', runnable: false, reasons: [{ code: 'HELD', until: leaseExpiresAt }] });
    expect(heldWhy.reasons[0]?.message).toContain('explainer');
    const done = await insertJob(t.db.pool, { status: 'completed' });
    expect(await t.trpc.jobs.explain.query({ id: done.id })).toMatchObject({ status: 'completed', runnable: false, reasons: [{ code: 'FINISHED' }] });
    await q.close();
  });

  it('answers QUEUE_PAUSED, QUEUE_CONCURRENCY_FULL and RATE_LIMITED, and runnable again once they lift', async () => {
    const q = client();
    await q.configure('busy', { concurrency: 1 });
    await q.enqueue('task', { n: 1 }, { queue: 'busy' });
    const second = await q.enqueue('task', { n: 2 }, { queue: 'busy' });
    const [held] = (await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['busy'], limit: 5 })).jobs;
    expect(held).toBeDefined();
    expect(await codes(second.id)).toEqual(['QUEUE_CONCURRENCY_FULL']);
    await q.pause('busy');
    expect(await codes(second.id)).toEqual(['QUEUE_PAUSED', 'QUEUE_CONCURRENCY_FULL']);
    await q.resume('busy');
    await t.trpc.worker.complete.mutate({ workerId: 'w', id: held!.id, attempt: held!.attempt });
    expect(await codes(second.id)).toEqual(['READY']);

    await q.configure('paced', { rateLimit: { max: 1, periodMs: 60_000 } });
    await q.enqueue('task', { n: 3 }, { queue: 'paced' });
    const waiting = await q.enqueue('task', { n: 4 }, { queue: 'paced' });
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['paced'], limit: 5 })).jobs).toHaveLength(1);
    expect(await t.trpc.jobs.explain.query({ id: waiting.id })).toMatchObject({
      runnable: false,
      reasons: [{ code: 'RATE_LIMITED', until: new Date(START.getTime() + 60_000) }],
    });
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['paced'], limit: 5 })).jobs).toHaveLength(0);
    clock = new Date(START.getTime() + 60_000);
    expect(await codes(waiting.id)).toEqual(['READY']);
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['paced'], limit: 5 })).jobs).toHaveLength(1);
    await q.close();
  });

  it('answers NOT_FOUND for a job in a queue the key may not see, like an unknown id', async () => {
    await expect(t.trpc.jobs.explain.query({ id: '01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60' })).rejects.toThrow(/no job/);
  });
});
