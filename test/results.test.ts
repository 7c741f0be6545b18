import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import {
  createQueueClient,
  createWorker,
  JobCancelledError,
  JobFailedError,
  JobWaitTimeoutError,
  PermanentError,
  type QueueClient,
  type Worker,
} from '../client/index.js';
import { createQueueServer, type QueueServer } from '../server/app.js';
import type { AppRouter } from '../server/routers/_app.js';
import { DONE_CHANNEL } from '../server/channels.js';
import { defineJobs, LIMITS } from '../shared/index.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  ingestion: {
    payload: z.object({ chainId: z.string(), targetDate: z.string() }),
    result: z.object({ rows: z.number().int() }),
    maxRetries: 0,
  },
  plain: { payload: z.object({ n: z.number() }) },
});

// Polls far apart (10 s): every wake-up these tests time must come from a
// finishing move or a NOTIFY, never from a waiter's poll.
const POLL_MS = 10_000;

describe('awaiting results (jobs.waitFor, queue.result, queue.enqueueAndWait)', () => {
  let a: TestServer;
  let b: QueueServer;
  let queueA: QueueClient<typeof jobs>;
  let queueB: QueueClient<typeof jobs>;
  const workers: Worker[] = [];

  /** Claims the one pending job on server A and completes it there, through the worker API. */
  const completeThroughA = async (result: unknown): Promise<string> => {
    const { jobs: claimed } = await a.trpc.worker.claim.mutate({ workerId: 'w-a', limit: 1 });
    const job = claimed[0];
    if (!job) throw new Error('nothing to claim');
    await a.trpc.worker.complete.mutate({ workerId: 'w-a', id: job.id, attempt: job.attempt, result });
    return job.id;
  };

  beforeAll(async () => {
    a = await startTestServer({ jobs, pollIntervalMs: POLL_MS });
    b = await createQueueServer({ databaseUrl: a.db.url, jobs, port: 0, log: () => {}, maintenance: false, pollIntervalMs: POLL_MS });
    queueA = createQueueClient({ url: a.url, jobs });
    queueB = createQueueClient({ url: b.url, jobs });
  });
  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await queueA.close();
    await queueB.close();
    await b.close();
    await a.stop();
  });
  beforeEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await a.db.pool.query('DELETE FROM task_queue');
  });

  it('resolves result() with the result parsed by the type schema once a worker completes the job', async () => {
    const worker = createWorker({ url: a.url, jobs, waitMs: 1000, handlers: { ingestion: async (p) => ({ rows: p.chainId.length }), plain: () => undefined } });
    workers.push(worker);
    worker.start();
    const { id } = await queueA.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' });
    expect(await queueA.result(id, { timeoutMs: 5000 })).toEqual({ rows: 6 });
    expect(await queueA.enqueueAndWait('ingestion', { chainId: 'lidl', targetDate: '2026-01-23' }, { waitTimeoutMs: 5000 })).toEqual({ rows: 4 });
  });

  it('answers jobs.waitFor on the completing move itself, not at the next poll', async () => {
    const { id } = await queueA.enqueue('ingestion', { chainId: 'spar', targetDate: '2026-01-23' });
    const waiting = a.trpc.jobs.waitFor.query({ id, timeoutMs: 8000 });
    await new Promise((r) => setTimeout(r, 150));
    await completeThroughA({ rows: 3 });
    const completedAt = Date.now();
    const answer = await waiting;
    expect(Date.now() - completedAt).toBeLessThan(1000);
    expect(answer.finished).toBe(true);
    expect(answer.job).toMatchObject({ id, status: 'completed', result: { rows: 3 } });
  });

  it('times out with finished: false, and result() rejects with JobWaitTimeoutError', async () => {
    const { id } = await queueA.enqueue('ingestion', { chainId: 'kaufland', targetDate: '2026-01-23' });
    const started = Date.now();
    const answer = await a.trpc.jobs.waitFor.query({ id, timeoutMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(answer).toMatchObject({ finished: false, job: { id, status: 'pending' } });
    const error = await queueA.result(id, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobWaitTimeoutError);
    expect((error as JobWaitTimeoutError).job.status).toBe('pending');
  });

  it('bounds one long-poll by LIMITS.maxWaitMs', async () => {
    const { id } = await queueA.enqueue('plain', { n: 1 });
    const error = await a.trpc.jobs.waitFor.query({ id, timeoutMs: LIMITS.maxWaitMs + 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as TRPCClientError<AppRouter>).data?.httpStatus).toBe(400);
  });

  it('rejects with JobFailedError carrying the last error and the attempts', async () => {
    const worker = createWorker({
      url: a.url,
      jobs,
      waitMs: 1000,
      handlers: {
        ingestion: async (p) => {
          throw new PermanentError(`chain ${p.chainId} does not exist`);
        },
        plain: () => undefined,
      },
    });
    workers.push(worker);
    worker.start();
    const error = await queueA.enqueueAndWait('ingestion', { chainId: 'nowhere', targetDate: '2026-01-23' }, { waitTimeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as JobFailedError).lastError).toMatch(/chain nowhere does not exist/);
    expect((error as JobFailedError).attempts).toBe(1);
  });

  it('rejects with JobCancelledError when the job is cancelled while awaited', async () => {
    const { id } = await queueA.enqueue('ingestion', { chainId: 'plodine', targetDate: '2026-01-23' });
    const waiting = queueA.result(id, { timeoutMs: 8000 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 150));
    const cancelledAt = Date.now();
    await queueA.cancel(id);
    const error = await waiting;
    expect(Date.now() - cancelledAt).toBeLessThan(1000);
    expect(error).toBeInstanceOf(JobCancelledError);
  });

  it('wakes a waiter on server B when the job completes through server A', async () => {
    const { id } = await queueA.enqueue('ingestion', { chainId: 'studenac', targetDate: '2026-01-23' });
    const waiting = queueB.result(id, { timeoutMs: 8000 });
    await new Promise((r) => setTimeout(r, 200));
    await completeThroughA({ rows: 9 });
    const completedAt = Date.now();
    expect(await waiting).toEqual({ rows: 9 });
    // B polls every 10 s: only the skipq_done NOTIFY sent by A can answer this soon.
    expect(Date.now() - completedAt).toBeLessThan(1000);
  });

  it('sends no skipq_done NOTIFY for completions nobody waits for, and one for a waited job', async () => {
    const listener = new pg.Client({ connectionString: a.db.url });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query(`LISTEN ${DONE_CHANNEL}`);
    try {
      for (let i = 0; i < 5; i++) {
        await queueA.enqueue('plain', { n: i });
        await completeThroughA(undefined);
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(heard).toEqual([]);

      const { id } = await queueA.enqueue('plain', { n: 99 });
      const waiting = queueB.waitFor(id, { timeoutMs: 8000 });
      await new Promise((r) => setTimeout(r, 200));
      await completeThroughA({ ok: true });
      expect((await waiting).finished).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual([id]);
    } finally {
      await listener.end();
    }
  });

  it('finds a job finished outside any server (SQL complete_task) within one poll', async () => {
    const fast = createTRPCClient<AppRouter>({ links: [httpLink({ url: a.url, transformer: superjson })] });
    const polling = await createQueueServer({ databaseUrl: a.db.url, jobs, port: 0, log: () => {}, maintenance: false, pollIntervalMs: 100 });
    try {
      const { id } = await queueA.enqueue('plain', { n: 1 });
      await a.trpc.worker.claim.mutate({ workerId: 'w-sql', limit: 1 });
      const waiting = createTRPCClient<AppRouter>({ links: [httpLink({ url: polling.url, transformer: superjson })] }).jobs.waitFor.query({ id, timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 150));
      await a.db.pool.query(`SELECT complete_task($1, '{"by": "sql"}'::jsonb)`, [id]);
      const doneAt = Date.now();
      const answer = await waiting;
      expect(answer.finished).toBe(true);
      expect(Date.now() - doneAt).toBeLessThan(1000);
      expect((await fast.jobs.get.query({ id })).result).toEqual({ by: 'sql' });
    } finally {
      await polling.close();
    }
  });
});
