import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../server/db/pool.js';
import { createEnqueuer, type Enqueuer } from '../server/enqueue.js';
import { claimJobs, type LeaseDeps } from '../server/leases.js';
import { createNotifyHub, type NotifyHub } from '../server/notify.js';
import { countJobs, insertJob, readJob } from './support/factories.js';
import { createTestDb, type TestDb } from './support/db.js';

/**
 * A claim that may not wait (waitMs 0) and a job committed while its statement
 * ran: the interleaving is made exact by enqueueing from inside the claim's own
 * query, after the statement answered empty and before claimJobs reads it.
 */
describe('a claim that may not wait', () => {
  let t: TestDb;
  let hub: NotifyHub;
  let enqueuer: Enqueuer;
  beforeAll(async () => {
    t = await createTestDb();
    // Never started: no LISTEN, so only the enqueuer's own wake-up reaches the claim.
    hub = createNotifyHub(t.pool, t.url);
    enqueuer = createEnqueuer({ db: t.pool, registry: null, hub, maxPayloadBytes: 1 << 20 });
  });
  afterAll(async () => {
    await hub.close();
    await t.drop();
  });
  beforeEach(async () => {
    await t.pool.query('DELETE FROM task_queue');
  });

  /** LeaseDeps whose claim statements are counted, and that run `during` after the first one answered. */
  const depsWith = (during: () => Promise<void>): { deps: LeaseDeps; claims: () => number } => {
    let claims = 0;
    const db: Db = {
      query: (async (config: { name?: string }) => {
        const answer = await t.pool.query(config as never);
        if ((config.name === 'jobClaim' || config.name === 'jobCompleteAndClaim') && ++claims === 1) await during();
        return answer;
      }) as Db['query'],
    };
    return { deps: { db, hub, registry: null, maxPayloadBytes: 1 << 20, pollIntervalMs: 1000, isClosing: () => false }, claims: () => claims };
  };
  const request = { workerId: 'w1', types: null, queues: null, limit: 10, leaseMs: 30_000, waitMs: 0 };

  it('takes a job enqueued on this server while its statement ran, instead of answering empty', async () => {
    let id = '';
    const { deps, claims } = depsWith(async () => {
      id = (await enqueuer.enqueue({ type: 'late', payload: { n: 1 } })).id;
    });
    const answer = await claimJobs(deps, request);
    expect(answer.jobs.map((j) => j.id)).toEqual([id]);
    expect(claims()).toBe(2);
    expect(await readJob(t.pool, id)).toMatchObject({ status: 'claimed', worker_id: 'w1', attempt: 1 });
  });

  it("also after completing the jobs it carried (a worker's claim after each job)", async () => {
    const held = await insertJob(t.pool, { status: 'processing', worker_id: 'w1', attempt: 1, lease_expires_at: new Date(Date.now() + 30_000) });
    let id = '';
    const { deps, claims } = depsWith(async () => {
      id = (await enqueuer.enqueue({ type: 'late', payload: { n: 2 } })).id;
    });
    const answer = await claimJobs(deps, request, undefined, [{ id: held.id, attempt: 1 }]);
    expect(answer.completed).toEqual(['completed']);
    expect(answer.jobs.map((j) => j.id)).toEqual([id]);
    expect(claims()).toBe(2);
    expect((await readJob(t.pool, held.id)).status).toBe('completed');
  });

  it('looks once more at most: a wake-up for work it cannot take costs one statement, not a loop', async () => {
    const { deps, claims } = depsWith(async () => {
      // A job of another type: it wakes every claim of its queue, but this claim cannot take it.
      await enqueuer.enqueue({ type: 'other', payload: {} });
    });
    const answer = await claimJobs(deps, { ...request, types: ['late'] });
    expect(answer.jobs).toEqual([]);
    expect(claims()).toBe(2);
    expect(await countJobs(t.pool, 'pending')).toBe(1);
  });

  it('answers empty after one statement when nothing arrived', async () => {
    const { deps, claims } = depsWith(async () => {});
    expect((await claimJobs(deps, request)).jobs).toEqual([]);
    expect(claims()).toBe(1);
  });
});
