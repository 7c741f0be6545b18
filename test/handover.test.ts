import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../server/db/pool.js';
import { createEnqueuer, type Enqueuer } from '../server/enqueue.js';
import { claimJobs, type LeaseDeps } from '../server/leases.js';
import { createLimitedQueues, type LimitedQueues } from '../server/limitedQueues.js';
import { createNotifyHub, type NotifyHub } from '../server/notify.js';
import { readJob, waitFor } from './support/factories.js';
import { createTestDb, type TestDb } from './support/db.js';

/**
 * An enqueue on the server where a claim long-polls claims for it in the
 * insert's own statement (jobInsertManyAndClaim): the waiting claim answers
 * with the job and runs no statement of its own after its first look.
 */
describe('an enqueue that claims for a waiting long-poll', () => {
  let t: TestDb;
  let hub: NotifyHub;
  let limited: LimitedQueues;
  let enqueuer: Enqueuer;
  beforeAll(async () => {
    t = await createTestDb();
    // Never started: no LISTEN, so nothing but this server's own enqueues reaches the claims.
    hub = createNotifyHub(t.pool, t.url);
    limited = createLimitedQueues(t.pool, { refreshMs: 60_000 });
    enqueuer = createEnqueuer({ db: t.pool, registry: null, hub, maxPayloadBytes: 1 << 20, limited });
  });
  afterAll(async () => {
    limited.close();
    await hub.close();
    await t.drop();
  });
  beforeEach(async () => {
    await t.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases');
    await limited.refresh();
  });

  /** LeaseDeps whose claim statements are counted; the poll is far past every wait here. */
  const counted = (): { deps: LeaseDeps; claims: () => number } => {
    let claims = 0;
    const db: Db = {
      query: (async (config: { name?: string }) => {
        if (config.name === 'jobClaim' || config.name === 'jobCompleteAndClaim') claims++;
        return t.pool.query(config as never);
      }) as Db['query'],
    };
    return { deps: { db, hub, registry: null, maxPayloadBytes: 1 << 20, pollIntervalMs: 60_000, isClosing: () => false, limited }, claims: () => claims };
  };
  const request = { workerId: 'w1', types: ['task'], queues: ['q'], limit: 10, leaseMs: 30_000, waitMs: 3000 };
  /** Lets the claim make its first look and start waiting. */
  const settle = () => new Promise((r) => setTimeout(r, 100));
  /** Whether the job was claimed in the transaction that inserted it (the lease runs leaseMs from its created_at, to the microsecond). */
  const claimedByItsInsert = async (id: string): Promise<boolean> => {
    const { rows } = await t.pool.query<{ same: boolean }>(
      `SELECT lease_expires_at - created_at = make_interval(secs => $2::float8 / 1000) AS same FROM task_queue WHERE id = $1`,
      [id, request.leaseMs],
    );
    return rows[0]?.same === true;
  };

  it('answers the waiting claim with the job, claimed in the statement that inserted it', async () => {
    const { deps, claims } = counted();
    const waiting = claimJobs(deps, request);
    await settle();
    const { id } = await enqueuer.enqueue({ type: 'task', queue: 'q', payload: { n: 1 } });
    const answer = await waiting;
    expect(answer.jobs.map((j) => [j.id, j.attempt])).toEqual([[id, 1]]);
    expect(claims()).toBe(1);
    expect(await readJob(t.pool, id)).toMatchObject({ status: 'claimed', worker_id: 'w1', attempt: 1 });
    expect(await claimedByItsInsert(id)).toBe(true);
  });

  it('also for jobs.enqueueMany, taking up to the claim limit in priority order', async () => {
    const { deps, claims } = counted();
    const waiting = claimJobs(deps, { ...request, limit: 2 });
    await settle();
    const refs = await enqueuer.enqueueMany([
      { type: 'task', queue: 'q', payload: { n: 1 }, priority: 1 },
      { type: 'task', queue: 'q', payload: { n: 2 }, priority: 5 },
      { type: 'task', queue: 'q', payload: { n: 3 }, priority: 3 },
    ]);
    const answer = await waiting;
    expect(answer.jobs.map((j) => j.id)).toEqual([refs[1]?.id, refs[2]?.id]);
    expect(claims()).toBe(1);
    expect((await readJob(t.pool, refs[0]?.id as string)).status).toBe('pending');
  });

  it('claims nothing for a long-poll of another type or queue, and never for a job not due yet', async () => {
    const { deps, claims } = counted();
    const waiting = claimJobs(deps, { ...request, waitMs: 600 });
    await settle();
    const other = await enqueuer.enqueue({ type: 'other', queue: 'q', payload: {} });
    const elsewhere = await enqueuer.enqueue({ type: 'task', queue: 'elsewhere', payload: {} });
    const later = await enqueuer.enqueue({ type: 'task', queue: 'q', payload: {}, delayMs: 60_000 });
    expect((await waiting).jobs).toEqual([]);
    for (const id of [other.id, elsewhere.id, later.id]) expect((await readJob(t.pool, id)).status).toBe('pending');
    // The job of queue q woke it (it looked, found nothing due), the others did not.
    expect(claims()).toBeGreaterThanOrEqual(2);
  });

  it("answers with the jobs its insert claimed even when the long-poll's poll interval and waitMs run out while the insert waits: no attempt is handed back unseen", async () => {
    const { deps } = counted();
    // A poll every 200 ms, and a wait of 300 ms: both end while the insert below is held up for 600 ms.
    const waiting = claimJobs({ ...deps, pollIntervalMs: 200 }, { ...request, waitMs: 300 });
    await settle();
    const blocker = await t.pool.connect();
    try {
      await blocker.query('BEGIN');
      // SHARE conflicts with the insert's ROW EXCLUSIVE: the insert (and the claim in its statement) waits.
      await blocker.query('LOCK TABLE task_queue IN SHARE MODE');
      const enqueued = enqueuer.enqueue({ type: 'task', queue: 'q', payload: { n: 1 } });
      await new Promise((r) => setTimeout(r, 600));
      await blocker.query('COMMIT');
      const { id } = await enqueued;
      const answer = await waiting;
      expect(answer.jobs.map((j) => [j.id, j.attempt])).toEqual([[id, 1]]);
      expect(await readJob(t.pool, id)).toMatchObject({ status: 'claimed', worker_id: 'w1', attempt: 1 });
      const { rows } = await t.pool.query<{ outcome: string }>('SELECT outcome FROM job_attempts WHERE job_id = $1', [id]);
      expect(rows).toEqual([]);
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      blocker.release();
    }
  });

  it('leaves a long-poll that may claim from a limited queue to its own statement', async () => {
    await t.pool.query(`INSERT INTO queues (name, concurrency) VALUES ('q', 5)`);
    await limited.refresh();
    const { deps, claims } = counted();
    const waiting = claimJobs(deps, request);
    await settle();
    const { id } = await enqueuer.enqueue({ type: 'task', queue: 'q', payload: {} });
    expect((await waiting).jobs.map((j) => j.id)).toEqual([id]);
    expect(claims()).toBe(2);
    expect(await claimedByItsInsert(id)).toBe(false);
  });

  it('releases the jobs claimed for a long-poll that stopped waiting while the insert ran, for the next claim', async () => {
    const { deps } = counted();
    const waiting = claimJobs(deps, { ...request, waitMs: 400 });
    await settle();
    // Holds the insert (and the claim in it) until the waiting claim has timed out (its
    // waitMs, then the second of grace a claim an enqueue is claiming for gets): an
    // uncommitted job with the same uniqueKey makes it wait on the unique index, while the
    // claim's own looks skip that row.
    const blocker = await t.pool.connect();
    let id = '';
    try {
      await blocker.query('BEGIN');
      await blocker.query(`INSERT INTO task_queue (id, task_type, queue, payload, unique_key) VALUES (gen_random_uuid()::text, 'task', 'q', '{}', 'k')`);
      const enqueued = enqueuer.enqueue({ type: 'task', queue: 'q', payload: {}, uniqueKey: 'k' }).then((r) => (id = r.id));
      expect((await waiting).jobs).toEqual([]);
      await blocker.query('ROLLBACK');
      await enqueued;
    } finally {
      blocker.release();
    }
    await waitFor(async () => (await readJob(t.pool, id)).status === 'pending', 5000, 'the job handed back');
    expect(await readJob(t.pool, id)).toMatchObject({ status: 'pending', attempt: 1, ended_by: 'release' });
    const next = await claimJobs(counted().deps, { ...request, workerId: 'w2', waitMs: 0 });
    expect(next.jobs.map((j) => [j.id, j.attempt])).toEqual([[id, 2]]);
  });

  it('hands every job to exactly one claim with 4 long-polls waiting and 200 enqueues from 8 callers', async () => {
    const seen = new Map<string, number>();
    const want = 200;
    let stop = false;
    const worker = async (workerId: string): Promise<void> => {
      while (!stop) {
        const answer = await claimJobs(counted().deps, { ...request, workerId, waitMs: 200 });
        for (const j of answer.jobs) seen.set(j.id, (seen.get(j.id) ?? 0) + 1);
      }
    };
    const workers = ['w1', 'w2', 'w3', 'w4'].map(worker);
    await settle();
    let next = 0;
    const ids: string[] = [];
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < want) {
        next++;
        ids.push((await enqueuer.enqueue({ type: 'task', queue: 'q', payload: {} })).id);
      }
    }));
    await waitFor(() => seen.size === want, 10_000, 'every job claimed');
    stop = true;
    await Promise.all(workers);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(ids)).toEqual(new Set(seen.keys()));
    const { rows } = await t.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_queue WHERE status = 'claimed' AND attempt = 1`);
    expect(rows[0]?.n).toBe(want);
  });
});
