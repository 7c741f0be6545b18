import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { createQueueClient, type QueueClient, type TypedJobEvent } from '../client/index.js';
import { createApiKey } from '../server/auth.js';
import { createQueueServer, type QueueServer } from '../server/app.js';
import { silentLogger } from '../server/logger.js';
import { defineJobs, type JobId } from '../shared/index.js';
import { startTestServer, type TestServer } from './support/server.js';
import { waitFor } from './support/factories.js';

const jobs = defineJobs({
  ingestion: { payload: z.object({ n: z.number() }), result: z.object({ rows: z.number() }), queue: 'ingest', maxRetries: 3 },
  report: { payload: z.object({ kind: z.string() }), queue: 'reports' },
});

type Event = TypedJobEvent<typeof jobs>;

/** Collects a stream's events in the background until `stop()`. */
function collect(stream: AsyncIterableIterator<Event> & { close(): void }) {
  const seen: Event[] = [];
  let failure: unknown;
  const done = (async () => {
    try {
      for await (const e of stream) seen.push(e);
    } catch (error) {
      failure = error;
    }
  })();
  return {
    seen,
    get failure() {
      return failure;
    },
    async stop() {
      stream.close();
      await done;
    },
  };
}

/** Subscribes and waits until the server has registered the subscription. */
async function subscribed(queue: QueueClient<typeof jobs>, options: Parameters<QueueClient<typeof jobs>['subscribe']>[0] = {}) {
  let started!: () => void;
  const ready = new Promise<void>((r) => (started = r));
  const c = collect(queue.subscribe({ ...options, onStarted: () => started() }));
  await Promise.race([ready, new Promise((_, reject) => setTimeout(() => reject(new Error(`subscription did not start${c.failure ? `: ${String(c.failure)}` : ''}`)), 5000))]);
  return c;
}

/** The event-logging triggers on task_queue, by name. */
const loggingTriggers = async (pool: { query: (q: string) => Promise<{ rows: Array<{ tgname: string }> }> }): Promise<string[]> =>
  (await pool.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'task_queue'::regclass AND tgname LIKE 'task_queue_log_%' ORDER BY tgname")).rows.map((r) => r.tgname);

const kindsOf = (events: readonly Event[], id: string): string[] => events.filter((e) => e.id === id).map((e) => e.kind);

describe('live events (events.jobs over SSE)', () => {
  let a: TestServer;
  let b: QueueServer;
  let queueA: QueueClient<typeof jobs>;
  let queueB: QueueClient<typeof jobs>;

  /** Claims up to `limit` jobs through server A's worker API. */
  const claimOnA = async (limit: number, queues?: string[]) => (await a.trpc.worker.claim.mutate({ workerId: 'w-a', limit, ...(queues ? { queues } : {}) })).jobs;

  beforeAll(async () => {
    a = await startTestServer({ jobs });
    b = await createQueueServer({ databaseUrl: a.db.url, jobs, port: 0, logger: silentLogger, maintenance: false, pollIntervalMs: 100, eventsPruneIntervalMs: 0 });
    queueA = createQueueClient({ url: a.url, jobs });
    queueB = createQueueClient({ url: b.url, jobs });
  });
  afterAll(async () => {
    await queueA.close();
    await queueB.close();
    await b.close();
    await a.stop();
  });

  it('writes nothing to the event log while nobody subscribes', async () => {
    const { id } = await queueA.enqueue('ingestion', { n: 0 });
    const [job] = await claimOnA(1);
    expect(job?.id).toBe(id);
    await a.trpc.worker.start.mutate({ workerId: 'w-a', jobs: [{ id, attempt: 1 }] });
    await a.trpc.worker.heartbeat.mutate({ workerId: 'w-a', jobs: [{ id, attempt: 1, progress: { pct: 50 } }] });
    await a.trpc.worker.complete.mutate({ workerId: 'w-a', id, attempt: 1, result: { rows: 1 } });
    const { rows } = await a.db.pool.query<{ events: number; listeners: number }>(
      'SELECT (SELECT count(*) FROM job_events)::int AS events, (SELECT count(*) FROM job_event_listeners)::int AS listeners',
    );
    expect(rows[0]).toEqual({ events: 0, listeners: 0 });
    // Not even idle triggers: their transition tables would copy every moved row.
    expect(await loggingTriggers(a.db.pool)).toEqual([]);
  });

  it('shows a subscriber on server B every change made through server A, in order per job', async () => {
    const sub = await subscribed(queueB);
    const ok = await queueA.enqueue('ingestion', { n: 1 });
    const flaky = await queueA.enqueue('ingestion', { n: 2 });
    const doomed = await queueA.enqueue('report', { kind: 'daily' });
    const claimed = await claimOnA(10, ['ingest']);
    expect(claimed.map((j) => j.id).sort()).toEqual([ok.id, flaky.id].sort());
    const held = claimed.map((j) => ({ id: j.id, attempt: j.attempt }));
    await a.trpc.worker.start.mutate({ workerId: 'w-a', jobs: held });
    await a.trpc.worker.heartbeat.mutate({ workerId: 'w-a', jobs: [{ id: ok.id, attempt: 1, progress: { pct: 50 } }] });
    // The same progress again is no change.
    await a.trpc.worker.heartbeat.mutate({ workerId: 'w-a', jobs: [{ id: ok.id, attempt: 1, progress: { pct: 50 } }] });
    await a.trpc.worker.complete.mutate({ workerId: 'w-a', id: ok.id, attempt: 1, result: { rows: 3 } });
    await a.trpc.worker.fail.mutate({ workerId: 'w-a', id: flaky.id, attempt: 1, error: 'boom', retry: true, retryDelayMs: 0 });
    const [again] = await claimOnA(1, ['ingest']);
    expect(again?.id).toBe(flaky.id);
    // Rescued by the SQL function (its lease "ran out" an hour from now), then cancelled.
    await a.db.pool.query("SELECT count(*) FROM skipq_rescue(10, now() + interval '1 hour')");
    await queueA.cancel(flaky.id as JobId<'ingestion'>);
    await queueA.retry(flaky.id as JobId<'ingestion'>);
    await queueA.cancel(doomed.id as JobId<'report'>);

    await waitFor(() => sub.seen.length >= 14, 5000, '14 events on server B');
    await new Promise((r) => setTimeout(r, 100));
    await sub.stop();
    expect(sub.failure).toBeUndefined();
    expect(kindsOf(sub.seen, ok.id)).toEqual(['enqueued', 'claimed', 'started', 'progress', 'completed']);
    expect(kindsOf(sub.seen, flaky.id)).toEqual(['enqueued', 'claimed', 'started', 'retry_scheduled', 'claimed', 'rescued', 'cancelled', 'retried']);
    expect(kindsOf(sub.seen, doomed.id)).toEqual(['enqueued', 'cancelled']);
    const progress = sub.seen.find((e) => e.kind === 'progress');
    expect(progress).toMatchObject({ id: ok.id, type: 'ingestion', queue: 'ingest', status: 'processing', attempt: 1, progress: { pct: 50 } });
    expect(progress?.at).toBeInstanceOf(Date);
    expect(sub.seen.find((e) => e.kind === 'retry_scheduled')).toMatchObject({ status: 'pending', error: 'boom', attempt: 1 });
    expect(sub.seen.find((e) => e.kind === 'rescued')?.error).toMatch(/lease expired/);
    // Event ids are unique and increasing.
    const ids = sub.seen.map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('resumes from lastEventId after a disconnect without losing or repeating an event', async () => {
    const whole = await subscribed(queueB, { types: ['report'] });
    const first = await subscribed(queueB, { types: ['report'] });
    const before = await queueA.enqueue('report', { kind: 'one' });
    await waitFor(() => first.seen.length >= 1, 5000, 'the first event');
    await first.stop();
    const lastEventId = first.seen.at(-1)?.eventId as string;
    // Changes while nobody of `first` listens.
    await queueA.cancel(before.id as JobId<'report'>);
    const during = await queueA.enqueue('report', { kind: 'two' });
    const resumed = collect(queueB.subscribe({ types: ['report'], lastEventId }));
    const after = await queueA.enqueue('report', { kind: 'three' });
    await waitFor(() => resumed.seen.length >= 3 && whole.seen.length >= 4, 5000, 'the events after the disconnect');
    await new Promise((r) => setTimeout(r, 100));
    await resumed.stop();
    await whole.stop();
    const pieced = [...first.seen, ...resumed.seen].map((e) => `${e.id}:${e.kind}`);
    expect(pieced).toEqual(whole.seen.map((e) => `${e.id}:${e.kind}`));
    expect(pieced).toEqual([`${before.id}:enqueued`, `${before.id}:cancelled`, `${during.id}:enqueued`, `${after.id}:enqueued`]);
  });

  it('refuses a lastEventId whose events were pruned (EVENTS_LOST)', async () => {
    const sub = await subscribed(queueB);
    await queueA.enqueue('report', { kind: 'old' });
    await waitFor(() => sub.seen.length >= 1, 5000, 'an event');
    await sub.stop();
    const lastEventId = sub.seen[0]?.eventId as string;
    await queueA.enqueue('report', { kind: 'newer' });
    // Everything logged so far is past a retention of 0 ms.
    await b.pool.query('SELECT skipq_events_prune(0, 100000)');
    const late = collect(queueB.subscribe({ lastEventId }));
    await waitFor(() => late.failure !== undefined, 5000, 'the refusal');
    expect(late.failure).toBeInstanceOf(TRPCClientError);
    expect((late.failure as TRPCClientError<never>).data).toMatchObject({ code: 'CONFLICT', skipqCode: 'EVENTS_LOST' });
  });

  it('stops logging a resume window after the last subscriber left, and says so to a subscriber resuming from before (EVENTS_LOST)', async () => {
    const c = await startTestServer({ jobs, eventsResumeWindowMs: 300, eventsPruneIntervalMs: 0 });
    const queueC = createQueueClient({ url: c.url, jobs });
    try {
      const sub = await subscribed(queueC);
      await queueC.enqueue('report', { kind: 'seen' });
      await waitFor(() => sub.seen.length >= 1, 5000, 'an event');
      expect(await loggingTriggers(c.db.pool)).toEqual(['task_queue_log_enqueues', 'task_queue_log_moves']);
      await sub.stop();
      const count = async () => (await c.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_events')).rows[0]?.n;
      await waitFor(async () => (await c.db.pool.query('SELECT 1 FROM job_event_listeners WHERE live_until > now()')).rowCount === 0, 5000, 'the listener row to run out');
      const logged = await count();
      await queueC.enqueue('report', { kind: 'unseen' });
      expect(await count()).toBe(logged);
      const late = collect(queueC.subscribe({ lastEventId: sub.seen[0]?.eventId as string }));
      await waitFor(() => late.failure !== undefined, 5000, 'the refusal');
      expect((late.failure as TRPCClientError<never>).data).toMatchObject({ code: 'CONFLICT', skipqCode: 'EVENTS_LOST' });
      expect(late.seen).toEqual([]);
      // Pruning drops the triggers once no listener is live, and the next subscriber makes them again.
      await waitFor(async () => (await c.db.pool.query('SELECT 1 FROM job_event_listeners WHERE live_until > now()')).rowCount === 0, 5000, 'the refused subscriber to run out');
      await c.db.pool.query('SELECT skipq_events_prune(600000, 1000)');
      expect(await loggingTriggers(c.db.pool)).toEqual([]);
      const again = await subscribed(queueC);
      expect(await loggingTriggers(c.db.pool)).toEqual(['task_queue_log_enqueues', 'task_queue_log_moves']);
      const { id } = await queueC.enqueue('report', { kind: 'after re-arm' });
      await waitFor(() => again.seen.some((e) => e.id === id), 5000, 'the event after the triggers came back');
      await again.stop();
    } finally {
      await queueC.close();
      await c.stop();
    }
  });

  it('sees every change made after onStarted fired, from the first one', async () => {
    const ids: string[] = [];
    for (let round = 0; round < 15; round++) {
      const sub = await subscribed(queueB, { queues: ['reports'] });
      const { id } = await queueA.enqueue('report', { kind: `r${round}` });
      ids.push(id);
      await waitFor(async () => sub.seen.some((e) => e.id === id), 5000, `round ${round}: the enqueue right after onStarted`);
      await sub.stop();
    }
    // The tests below claim from every queue.
    await a.db.pool.query('DELETE FROM task_queue WHERE id = ANY ($1::text[])', [ids]);
  });

  it('filters by ids, queues and types', async () => {
    const target = await queueA.enqueue('ingestion', { n: 10 });
    const byId = await subscribed(queueB, { ids: [target.id] });
    const byQueue = await subscribed(queueB, { queues: ['reports'] });
    const byType = await subscribed(queueB, { types: ['ingestion'] });
    const report = await queueA.enqueue('report', { kind: 'x' });
    const other = await queueA.enqueue('ingestion', { n: 11 });
    await queueA.cancel(target.id);
    await waitFor(() => byId.seen.length >= 1 && byQueue.seen.length >= 1 && byType.seen.length >= 2, 5000, 'filtered events');
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all([byId.stop(), byQueue.stop(), byType.stop()]);
    expect(byId.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${target.id}:cancelled`]);
    expect(byQueue.seen.map((e) => e.id)).toEqual([report.id]);
    expect(byType.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${other.id}:enqueued`, `${target.id}:cancelled`]);
    expectTypeOf(byType.seen[0]?.type).toEqualTypeOf<'ingestion' | 'report' | undefined>();
  });

  it('types events from the registry: the type names narrow', () => {
    const stream = queueB.subscribe({ types: ['report'] });
    stream.close();
    expectTypeOf(stream).toEqualTypeOf<ReturnType<typeof queueB.subscribe<'report'>>>();
    type ReportEvent = TypedJobEvent<typeof jobs, 'report'>;
    expectTypeOf<ReportEvent['type']>().toEqualTypeOf<'report'>();
    expectTypeOf<ReportEvent['id']>().toEqualTypeOf<JobId<'report'>>();
    expectTypeOf<ReportEvent['at']>().toEqualTypeOf<Date>();
    // @ts-expect-error: not a job type of the registry
    queueB.subscribe({ types: ['nope'] }).close();
  });

  it('shows a key limited to queues only the events of its queues (last: keys turn authentication on)', async () => {
    const admin = await createApiKey(a.db.pool, { role: 'admin' });
    const limited = await createApiKey(a.db.pool, { role: 'producer', queues: ['reports'] });
    const worker = await createApiKey(a.db.pool, { role: 'worker' });
    const adminA = createQueueClient({ url: a.url, jobs, apiKey: admin.key });
    const limitedB = createQueueClient({ url: b.url, jobs, apiKey: limited.key });
    const workerB = createQueueClient({ url: b.url, jobs, apiKey: worker.key });
    try {
      const sub = await subscribed(limitedB);
      const hidden = await adminA.enqueue('ingestion', { n: 20 });
      const shown = await adminA.enqueue('report', { kind: 'y' });
      await adminA.cancel(hidden.id);
      await adminA.cancel(shown.id);
      await waitFor(() => sub.seen.length >= 2, 5000, 'the limited key events');
      await new Promise((r) => setTimeout(r, 150));
      await sub.stop();
      expect(sub.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${shown.id}:enqueued`, `${shown.id}:cancelled`]);

      const forbidden = collect(limitedB.subscribe({ queues: ['ingest'] }));
      await waitFor(() => forbidden.failure !== undefined, 5000, 'FORBIDDEN');
      expect((forbidden.failure as TRPCClientError<never>).data).toMatchObject({ code: 'FORBIDDEN' });
      const wrongRole = collect(workerB.subscribe());
      await waitFor(() => wrongRole.failure !== undefined, 5000, 'FORBIDDEN for a worker key');
      expect((wrongRole.failure as TRPCClientError<never>).data).toMatchObject({ code: 'FORBIDDEN' });
      const anonymous = collect(queueB.subscribe());
      await waitFor(() => anonymous.failure !== undefined, 5000, 'UNAUTHORIZED');
      expect((anonymous.failure as TRPCClientError<never>).data).toMatchObject({ code: 'UNAUTHORIZED' });
    } finally {
      await Promise.all([adminA.close(), limitedB.close(), workerB.close()]);
    }
  });
});
