import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, type Worker } from '../client/index.js';
import { createTxEnqueuer } from '../server/app.js';
import { silentLogger } from '../server/logger.js';
import { defineJobs } from '../shared/index.js';
import { installClaimAudit } from './support/claimAudit.js';
import { waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const lanePayload = z.object({ tenant: z.string(), n: z.number().int() });
const jobs = defineJobs({
  // The registry's key: the tenant of the payload.
  task: { payload: lanePayload, backoff: { kind: 'fixed', delayMs: 0 }, concurrencyKey: (p: z.output<typeof lanePayload>) => p.tenant },
  loose: { payload: z.object({ n: z.number().int() }) },
  broken: { payload: z.object({ n: z.number().int() }), concurrencyKey: () => '' },
});

// Compile-time: a type's concurrencyKey is checked against its own payload.
// @ts-expect-error the payload has no field b
defineJobs({ bad: { payload: z.object({ a: z.string() }), concurrencyKey: (p: { b: string }) => p.b } });

const tasks = (tenant: string, count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => ({ type: 'task' as const, payload: { tenant, n: from + i }, queue: 'lanes' }));

describe('concurrency keys', () => {
  let t: TestServer;
  const workers: Worker[] = [];
  const client = () => createQueueClient({ url: t.url, jobs });
  const spawn = (workerId: string, queue: string, handler: (p: { tenant: string; n: number }) => Promise<void>, concurrency = 3) => {
    const w = createWorker({ url: t.url, jobs, logger: silentLogger, waitMs: 200, workerId, queues: [queue], concurrency, handlers: { task: handler, loose: async () => {}, broken: async () => {} } });
    workers.push(w);
    w.start();
    return w;
  };
  const sql = async <T extends object>(text: string, values: unknown[] = []) => (await t.db.pool.query<T>(text, values)).rows;
  const completed = async (queue: string) => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM task_queue WHERE queue = $1 AND status = 'completed'`, [queue]))[0]!.n;
  /** The counters as the next claim would fold them: queue held, and the most any key holds. */
  const counters = async (queue: string) =>
    (
      await sql<{ queue_held: number; key_held: number }>(
        `SELECT (q.held - skipq_released(q.name))::int AS queue_held,
                coalesce((SELECT max(k.held - skipq_released_key(k.queue, k.concurrency_key))
                          FROM queue_keys k WHERE k.queue = q.name), 0)::int AS key_held
         FROM queues q WHERE q.name = $1`,
        [queue],
      )
    )[0];
  const audit = async (queue: string) =>
    (await sql<{ claims: number; most_key: number; most_queue: number; keys: number }>(
      `SELECT count(*)::int AS claims, max(key_held)::int AS most_key, max(queue_held)::int AS most_queue, count(DISTINCT concurrency_key)::int AS keys
       FROM claim_audit WHERE queue = $1`,
      [queue],
    ))[0]!;

  /** Inserts `perKey` pending jobs of type loose for each key in `keys` (NULL: no key), in one statement. */
  const insertKeyed = async (queue: string, keys: readonly (string | null)[], perKey: number) =>
    sql(
      `INSERT INTO task_queue (queue, task_type, payload, concurrency_key)
       SELECT $1, 'loose', jsonb_build_object('n', g), k
       FROM unnest($2::text[]) AS k CROSS JOIN generate_series(1, $3::int) AS g`,
      [queue, keys, perKey],
    );
  /** One claim of `limit` from `queue`, answered as jobs per key ('-' for no key). */
  const claimPerKey = async (queue: string, limit: number, workerId = 'w') => {
    const { jobs: batch } = await t.trpc.worker.claim.mutate({ workerId, queues: [queue], limit });
    const rows = await sql<{ k: string | null }>(`SELECT concurrency_key AS k FROM task_queue WHERE id = ANY ($1::text[])`, [batch.map((j) => j.id)]);
    const per: Record<string, number> = {};
    for (const r of rows) per[r.k ?? '-'] = (per[r.k ?? '-'] ?? 0) + 1;
    return { batch, per };
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

  it('takes keyConcurrency 1..10,000 (null clears), shows it in queues.list, and refuses 0 and 10,001', async () => {
    const q = client();
    expect(await q.configure('lanes', { keyConcurrency: 1 })).toMatchObject({ name: 'lanes', keyConcurrency: 1, concurrency: null });
    expect(await q.configure('lanes', { keyConcurrency: 10_000 })).toMatchObject({ keyConcurrency: 10_000 });
    expect((await q.queues()).find((x) => x.name === 'lanes')).toMatchObject({ keyConcurrency: 10_000 });
    await expect(q.configure('lanes', { keyConcurrency: 0 })).rejects.toThrow();
    await expect(q.configure('lanes', { keyConcurrency: 10_001 })).rejects.toThrow();
    expect(await q.configure('lanes', { keyConcurrency: null })).toMatchObject({ keyConcurrency: null });
    await q.close();
  });

  it('stores the caller\'s concurrencyKey, else the type\'s concurrencyKey(payload), over HTTP and in a transaction', async () => {
    const q = client();
    const fromType = await q.enqueue('task', { tenant: 'acme', n: 1 });
    const fromCall = await q.enqueue('task', { tenant: 'acme', n: 2 }, { concurrencyKey: 'override' });
    const none = await q.enqueue('loose', { n: 3 });
    const { jobs: [many] } = await t.trpc.jobs.enqueueMany.mutate({ jobs: [{ type: 'task', payload: { tenant: 'globex', n: 4 } }] });
    const tx = new pg.Client({ connectionString: t.db.url });
    await tx.connect();
    await tx.query('BEGIN');
    const inTx = await createTxEnqueuer({ jobs }).enqueue(tx, 'task', { tenant: 'initech', n: 5 });
    await tx.query('COMMIT');
    await tx.end();
    const keys = Object.fromEntries(
      (await sql<{ id: string; concurrency_key: string | null }>(`SELECT id, concurrency_key FROM task_queue`)).map((r) => [r.id, r.concurrency_key]),
    );
    expect(keys).toEqual({ [fromType.id]: 'acme', [fromCall.id]: 'override', [none.id]: null, [many!.id]: 'globex', [inTx.id]: 'initech' });

    await expect(t.trpc.jobs.enqueue.mutate({ type: 'loose', payload: { n: 1 }, concurrencyKey: 'k'.repeat(256) })).rejects.toMatchObject({ data: { code: 'BAD_REQUEST' } });
    await expect(t.trpc.jobs.enqueue.mutate({ type: 'broken', payload: { n: 1 } })).rejects.toThrow(/concurrencyKey of "broken" must return a string/);
    expect(await sql(`SELECT id FROM task_queue WHERE task_type = 'broken'`)).toEqual([]);
    await q.close();
  });

  it('keys the jobs of a schedule\'s ticks by the type\'s concurrencyKey(payload)', async () => {
    const q = client();
    await q.schedules.upsert({ name: 'lane-tick', type: 'task', cron: '* * * * * *', payload: { tenant: 'cron-co', n: 1 } });
    await new Promise((r) => setTimeout(r, 1100));
    expect(await t.server.maintenance.tickSchedules()).toMatchObject({ skipped: 0 });
    const keys = await sql<{ k: string | null }>(`SELECT DISTINCT concurrency_key AS k FROM task_queue WHERE task_type = 'task'`);
    expect(keys).toEqual([{ k: 'cron-co' }]);
    await t.trpc.schedules.remove.mutate({ name: 'lane-tick' });
    await q.close();
  });

  it('never holds two jobs of one key with keyConcurrency 1 under 8 claiming workers, through fails, cancels and rescues', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 1 });
    // A worker that dies holding t0's first job: t0 waits until the rescuer puts it back.
    await q.enqueue('task', { tenant: 't0', n: -1 }, { queue: 'lanes' });
    const [zombie] = (await t.trpc.worker.claim.mutate({ workerId: 'zombie', queues: ['lanes'], limit: 1, leaseMs: 300 })).jobs;
    expect(zombie?.payload).toEqual({ tenant: 't0', n: -1 });
    const ids = (await q.enqueueMany(['t0', 't1', 't2', 't3'].flatMap((k) => tasks(k, 20)))).map((r) => r.id);
    await q.cancel(ids[25] as string);
    const failedOnce = new Set<string>();
    for (let w = 0; w < 8; w++) {
      spawn(`lane-${w}`, 'lanes', async ({ tenant, n }) => {
        await new Promise((r) => setTimeout(r, 3));
        // Every seventh job fails once (back to pending at once): the fail move must free its key too.
        if (n % 7 === 0 && !failedOnce.has(`${tenant}/${n}`)) {
          failedOnce.add(`${tenant}/${n}`);
          throw new Error('first try fails');
        }
      });
    }
    await new Promise((r) => setTimeout(r, 400));
    expect((await sql(`SELECT id FROM skipq_rescue(10)`)).map((r) => (r as { id: string }).id)).toEqual([zombie!.id]);
    await waitFor(async () => (await completed('lanes')) === 80, 60_000, '80 completed (79 enqueued and not cancelled, and the rescued one)');
    const seen = await audit('lanes');
    // 1 + 80 first claims, and 12 again after a failed first try.
    expect(seen.claims).toBe(1 + 80 + 12);
    expect(seen.most_key).toBe(1);
    expect(seen.keys).toBe(4);
    await waitFor(async () => (await counters('lanes'))?.queue_held === 0, 5000, 'the counters to come back to 0');
    expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
    await q.close();
  }, 90_000);

  it('serves keys in turn: 40 jobs of four small keys all claimed within the first 8 claims while a key with 1,000 waits', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 50 });
    // The big key first, so claim order alone (priority, then age) would serve all of it before the others.
    for (let b = 0; b < 1000; b += 500) {
      await q.enqueueMany(Array.from({ length: 500 }, (_, i) => ({ type: 'loose' as const, payload: { n: b + i }, queue: 'lanes', concurrencyKey: 'a-big' })));
    }
    await q.enqueueMany(['b', 'c', 'd', 'e'].flatMap((k) => Array.from({ length: 10 }, (_, n) => ({ type: 'loose' as const, payload: { n }, queue: 'lanes', concurrencyKey: k }))));
    const servedAt = new Map<string, number>();
    let bigServed = 0;
    for (let claim = 1; claim <= 8; claim++) {
      const { jobs: batch } = await t.trpc.worker.claim.mutate({ workerId: 'fair', queues: ['lanes'], limit: 10 });
      const keys = (await sql<{ id: string; k: string }>(`SELECT id, concurrency_key AS k FROM task_queue WHERE id = ANY ($1::text[])`, [batch.map((j) => j.id)])).map((r) => r.k);
      for (const k of keys) {
        if (k === 'a-big') bigServed++;
        else servedAt.set(k, (servedAt.get(k) ?? 0) + 1);
      }
      await t.trpc.worker.completeMany.mutate({ workerId: 'fair', jobs: batch.map((j) => ({ id: j.id, attempt: j.attempt })) });
    }
    expect(Object.fromEntries(servedAt)).toEqual({ b: 10, c: 10, d: 10, e: 10 });
    expect(bigServed).toBeLessThanOrEqual(40);
    expect(bigServed).toBeGreaterThan(0);
    await q.close();
  });

  it('answers fewer jobs, quickly, when every key it may visit is full, and reaches the free key on later claims', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 1 });
    const full = Array.from({ length: 60 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    await q.enqueueMany(full.flatMap((k) => Array.from({ length: 2 }, (_, n) => ({ type: 'loose' as const, payload: { n }, queue: 'lanes', concurrencyKey: k }))));
    // Every one of the 60 keys holds its one job.
    expect((await t.trpc.worker.claim.mutate({ workerId: 'holder', queues: ['lanes'], limit: 100 })).jobs).toHaveLength(60);
    // Between k058 and k059: 60th in the walk from the cursor (k059, the last key served).
    await q.enqueue('loose', { n: 0 }, { queue: 'lanes', concurrencyKey: 'k0585' });
    // A claim of 1 visits at most 1 * 2 + 16 keys, and the next one goes on from there.
    let claims = 0;
    let got: string[] = [];
    while (got.length === 0 && claims < 10) {
      claims++;
      const started = Date.now();
      got = (await t.trpc.worker.claim.mutate({ workerId: 'seeker', queues: ['lanes'], limit: 1 })).jobs.map((j) => j.id);
      expect(Date.now() - started).toBeLessThan(5000);
    }
    expect(claims).toBeGreaterThanOrEqual(2);
    expect(claims).toBeLessThanOrEqual(5);
    expect((await sql<{ k: string }>(`SELECT concurrency_key AS k FROM task_queue WHERE id = $1`, [got[0]]))[0]?.k).toBe('k0585');
    await q.close();
  });

  it('holds both limits at once: queue concurrency 3 and keyConcurrency 1 under 6 workers', async () => {
    const q = client();
    await q.configure('lanes', { concurrency: 3, keyConcurrency: 1 });
    await q.enqueueMany(['u', 'v', 'w', 'x', 'y', 'z'].flatMap((k) => tasks(k, 8)));
    for (let w = 0; w < 6; w++) spawn(`both-${w}`, 'lanes', async () => new Promise((r) => setTimeout(r, 3)));
    await waitFor(async () => (await completed('lanes')) === 48, 60_000, '48 completed');
    const seen = await audit('lanes');
    expect(seen.claims).toBe(48);
    expect(seen.most_key).toBe(1);
    expect(seen.most_queue).toBe(3);
    await waitFor(async () => (await counters('lanes'))?.queue_held === 0, 5000, 'the counters to come back to 0');
    expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
    await q.close();
  }, 90_000);

  it('finishes every job while 4 workers claim and complete concurrently for seconds (a hanging claim fails this)', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 2 });
    for (let b = 0; b < 4; b++) {
      await q.enqueueMany(Array.from({ length: 40 }, (_, k) => tasks(`key-${String(k).padStart(2, '0')}`, 5, b * 5)).flat());
    }
    for (let w = 0; w < 4; w++) spawn(`busy-${w}`, 'lanes', async () => {}, 20);
    // 800 no-op jobs: a second or two here; a claim statement that never ends stops every worker of the queue.
    await waitFor(async () => (await completed('lanes')) === 800, 20_000, '800 completed');
    expect((await audit('lanes')).most_key).toBeLessThanOrEqual(2);
    await waitFor(async () => (await counters('lanes'))?.queue_held === 0, 5000, 'the counters to come back to 0');
    expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
    await q.close();
  }, 40_000);

  it('counts the jobs a key already holds when keyConcurrency is set, and stops counting when it is cleared', async () => {
    const q = client();
    await q.enqueueMany([...tasks('a', 2), ...tasks('b', 1)]);
    // No policy yet: the plain claim takes a's first job.
    const [early] = (await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['lanes'], limit: 1 })).jobs;
    expect(early?.payload).toEqual({ tenant: 'a', n: 0 });
    await q.configure('lanes', { keyConcurrency: 1 });
    const later = (await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['lanes'], limit: 10 })).jobs;
    expect(later.map((j) => j.payload)).toEqual([{ tenant: 'b', n: 0 }]);
    expect(await counters('lanes')).toEqual({ queue_held: 2, key_held: 1 });
    await q.configure('lanes', { keyConcurrency: null });
    expect(await sql(`SELECT id FROM task_queue WHERE counted`)).toEqual([]);
    expect((await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['lanes'], limit: 10 })).jobs.map((j) => j.payload)).toEqual([{ tenant: 'a', n: 1 }]);
    await q.close();
  });

  it('claims a keyed queue\'s jobs without a key while 9,000 keyed jobs wait for their full keys, over HTTP and claim_tasks', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 1 });
    await insertKeyed('lanes', ['k1', 'k2', 'k3'], 3000);
    // Every key holds its one job: the 8,997 keyed jobs left must wait.
    expect((await claimPerKey('lanes', 3, 'holder')).per).toEqual({ k1: 1, k2: 1, k3: 1 });
    await insertKeyed('lanes', [null], 20);
    expect((await claimPerKey('lanes', 10)).per).toEqual({ '-': 10 });
    const viaSql = await sql<{ id: string; concurrency_key: string | null }>(`SELECT c.id, t.concurrency_key FROM claim_tasks('sql', NULL, 10) AS c JOIN task_queue AS t ON t.id = c.id`);
    expect(viaSql.map((r) => r.concurrency_key)).toEqual(Array(10).fill(null));
    expect((await claimPerKey('lanes', 10)).per).toEqual({});
    await q.close();
  });

  it('lets neither kind starve: jobs without a key get a turn each time round the keys, keys get one in every claim', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 1 });
    // Keys enough to fill every batch on their own (40 keys, claims of 10)...
    await insertKeyed('lanes', Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`), 5);
    await insertKeyed('lanes', [null], 100);
    let unkeyed = 0;
    for (let claim = 0; claim < 20; claim++) {
      const { batch, per } = await claimPerKey('lanes', 10);
      unkeyed += per['-'] ?? 0;
      expect(batch.length).toBe(10);
      expect(batch.length - (per['-'] ?? 0)).toBeGreaterThan(0);
      await t.trpc.worker.completeMany.mutate({ workerId: 'w', jobs: batch.map((j) => ({ id: j.id, attempt: j.attempt })) });
    }
    // ...yet the jobs without a key are served once per round of the 40 keys (every 4th claim or so).
    expect(unkeyed).toBeGreaterThanOrEqual(3);
    // And with two keys and 1,000 jobs without one, each claim still takes one of each key.
    await t.db.pool.query('TRUNCATE task_queue, queue_keys, queue_releases');
    await insertKeyed('lanes', ['a', 'b'], 50);
    await insertKeyed('lanes', [null], 1000);
    for (let claim = 0; claim < 5; claim++) {
      const { batch, per } = await claimPerKey('lanes', 10);
      expect(per).toEqual({ a: 1, b: 1, '-': 8 });
      await t.trpc.worker.completeMany.mutate({ workerId: 'w', jobs: batch.map((j) => ({ id: j.id, attempt: j.attempt })) });
    }
    await q.close();
  });

  it('takes the keys of one batch in turn: a claim of 8 with keyConcurrency 2 over 4 keys takes 2 of each, a claim of 4 one of each', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 2 });
    await insertKeyed('lanes', ['a', 'b', 'c', 'd'], 10);
    const eight = await claimPerKey('lanes', 8);
    expect(eight.per).toEqual({ a: 2, b: 2, c: 2, d: 2 });
    await t.trpc.worker.completeMany.mutate({ workerId: 'w', jobs: eight.batch.map((j) => ({ id: j.id, attempt: j.attempt })) });
    // Filling from the first key would answer { a: 2, b: 2 }.
    expect((await claimPerKey('lanes', 4)).per).toEqual({ a: 1, b: 1, c: 1, d: 1 });
    // Each key has room for one more: a claim of 8 gets 4.
    expect((await claimPerKey('lanes', 8)).per).toEqual({ a: 1, b: 1, c: 1, d: 1 });
    // Wider limits take several per key per turn, still evenly: 12 of keyConcurrency 5 over 4 keys.
    await t.db.pool.query('TRUNCATE task_queue, queue_keys, queue_releases');
    await q.configure('lanes', { keyConcurrency: 5 });
    await insertKeyed('lanes', ['a', 'b', 'c', 'd'], 10);
    expect((await claimPerKey('lanes', 12)).per).toEqual({ a: 3, b: 3, c: 3, d: 3 });
    // The SQL API (claim_tasks: the established columns, so the key is read back) claims by the same function.
    await t.db.pool.query('TRUNCATE task_queue, queue_keys, queue_releases');
    await insertKeyed('lanes', ['a', 'b', 'c', 'd'], 10);
    const viaSql = await sql<{ k: string }>(`SELECT t.concurrency_key AS k FROM claim_tasks('sql', NULL, 8) AS c JOIN task_queue AS t ON t.id = c.id`);
    expect(viaSql.map((r) => r.k).sort()).toEqual(['a', 'a', 'b', 'b', 'c', 'c', 'd', 'd']);
    await q.close();
  });

  it('never holds more than keyConcurrency of a key while 4 connections claim batches of 300 over 400 keys at once in SQL, and the counters end at 0', async () => {
    // The keyed claim's walk picks one job per key and claims the picks in a
    // second statement (20261201001500_key_lanes_set): the limit must hold
    // across connections claiming and completing (one ledger row per batch) at
    // the same time, with keys that hold jobs from the start.
    for (const limit of [1, 2]) {
      await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases, claim_audit');
      await sql(`INSERT INTO queues (name, key_concurrency) VALUES ('lanes', $1::int)`, [limit]);
      const keys = Array.from({ length: 400 }, (_, i) => `key-${String(i).padStart(3, '0')}`);
      await insertKeyed('lanes', keys, 6);
      await insertKeyed('lanes', [null], 50);
      const conns = await Promise.all(Array.from({ length: 4 }, async () => {
        const c = new pg.Client({ connectionString: t.db.url });
        await c.connect();
        return c;
      }));
      try {
        const total = 400 * 6 + 50;
        let done = 0;
        await Promise.all(conns.map(async (c, w) => {
          let held: { id: string; attempt: number }[] = [];
          for (let step = 0; step < 400 && done < total; step++) {
            // Complete the older half of what this connection holds and claim again, in one transaction.
            const finish = held.slice(0, Math.ceil(held.length / 2));
            held = held.slice(finish.length);
            await c.query('BEGIN');
            if (finish.length > 0) {
              const moved = await c.query(`SELECT * FROM skipq_complete($1::text, $2::text[], $3::int[], $4::text[]) WHERE moved`, [`sql-${w}`, finish.map((j) => j.id), finish.map((j) => j.attempt), finish.map(() => null)]);
              done += moved.rowCount ?? 0;
            }
            const { rows } = await c.query<{ id: string; attempt: number }>(`SELECT id, attempt FROM skipq_claim($1::text, NULL, ARRAY['lanes'], 300, 60000, NULL)`, [`sql-${w}`]);
            await c.query('COMMIT');
            held.push(...rows);
            if (rows.length === 0 && held.length === 0) await new Promise((r) => setTimeout(r, 2));
          }
        }));
        expect(done).toBe(total);
      } finally {
        await Promise.all(conns.map((c) => c.end()));
      }
      expect((await audit('lanes')).claims).toBe(400 * 6 + 50);
      // (The audit counts the jobs without a key as one lane of their own: not limited.)
      const [most] = await sql<{ n: number }>(`SELECT max(key_held)::int AS n FROM claim_audit WHERE queue = 'lanes' AND concurrency_key IS NOT NULL`);
      expect(most?.n).toBe(limit);
      expect(await completed('lanes')).toBe(400 * 6 + 50);
      expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
      // A claim folds the ledger: the counters themselves come back to 0, not just net of it.
      expect((await sql(`SELECT * FROM skipq_claim('w', NULL, ARRAY['lanes'], 10, 60000, NULL)`)).length).toBe(0);
      expect(await sql(`SELECT held FROM queues WHERE name = 'lanes'`)).toEqual([{ held: 0 }]);
      expect(await sql<{ n: number }>(`SELECT count(*)::int AS n FROM queue_keys WHERE queue = 'lanes' AND held <> 0`)).toEqual([{ n: 0 }]);
    }
  }, 60_000);

  it('writes one ledger row for a completed batch of counted jobs, and a completed job leaving completed releases nothing again', async () => {
    await sql(`INSERT INTO queues (name, key_concurrency) VALUES ('lanes', 1)`);
    await insertKeyed('lanes', ['a', 'b', 'c'], 1);
    await insertKeyed('lanes', [null], 2);
    const claimed = await sql<{ id: string; attempt: number }>(`SELECT id, attempt FROM skipq_claim('w', NULL, ARRAY['lanes'], 10, 60000, NULL)`);
    expect(claimed).toHaveLength(5);
    await sql(`SELECT * FROM skipq_complete('w', $1::text[], $2::int[], $3::text[])`, [claimed.map((j) => j.id), claimed.map((j) => j.attempt), claimed.map(() => null)]);
    // One row for the statement (the row trigger wrote one per job): 5 held jobs, the keys of 3.
    const ledger = await sql<{ n: number; keys: string[] | null; concurrency_key: string | null }>(`SELECT n, keys, concurrency_key FROM queue_releases WHERE queue = 'lanes'`);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]?.n).toBe(5);
    expect([...(ledger[0]?.keys ?? [])].sort()).toEqual(['a', 'b', 'c']);
    expect(await sql(`SELECT skipq_released('lanes') AS q, skipq_released_key('lanes', 'a') AS a`)).toEqual([{ q: 5, a: 1 }]);
    expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
    // A finished job keeps counted = true; moving it out of completed (here by hand) is no release.
    await sql(`UPDATE task_queue SET status = 'pending', completed_at = NULL WHERE id = $1`, [claimed[0]!.id]);
    expect(await sql<{ n: number }>(`SELECT count(*)::int AS n FROM queue_releases WHERE queue = 'lanes'`)).toEqual([{ n: 1 }]);
    // Other ways out of held still go through the trigger, one row each: a fail and a cancel.
    const again = await sql<{ id: string; attempt: number }>(`SELECT id, attempt FROM skipq_claim('w', NULL, ARRAY['lanes'], 10, 60000, NULL)`);
    expect(again).toHaveLength(1);
    await sql(`SELECT fail_task($1::text, 'boom', true)`, [again[0]!.id]);
    expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
    expect(await sql<{ n: number }>(`SELECT count(*)::int AS n FROM queue_releases WHERE queue = 'lanes' AND n = 1 AND keys IS NULL`)).toEqual([{ n: 1 }]);
    // A hand-written UPDATE to completed (no ended_by of skipq_complete) is released by the trigger.
    await sql(`UPDATE task_queue SET scheduled_for = now() - interval '1 minute' WHERE id = $1`, [again[0]!.id]);
    const third = await sql<{ id: string }>(`SELECT id FROM skipq_claim('w', NULL, ARRAY['lanes'], 10, 60000, NULL)`);
    expect(third).toHaveLength(1);
    await sql(`UPDATE task_queue SET status = 'completed', completed_at = now() WHERE id = $1`, [third[0]!.id]);
    expect(await counters('lanes')).toEqual({ queue_held: 0, key_held: 0 });
    // Clearing the limit uncounts held jobs only: the finished rows (still flagged) are not rewritten.
    const finished = async () => sql<{ id: string; x: string }>(`SELECT id, xmin::text AS x FROM task_queue WHERE queue = 'lanes' AND status = 'completed' ORDER BY id`);
    const before = await finished();
    expect(before.length).toBeGreaterThanOrEqual(4);
    await sql(`UPDATE queues SET key_concurrency = NULL WHERE name = 'lanes'`);
    await sql(`SELECT skipq_queue_recount('lanes')`);
    expect(await finished()).toEqual(before);
  });

  it('explains KEY_CONCURRENCY_FULL with the key and its counts, and READY once the key frees', async () => {
    const q = client();
    await q.configure('lanes', { keyConcurrency: 1 });
    const first = await q.enqueue('task', { tenant: 'acme', n: 1 }, { queue: 'lanes' });
    const second = await q.enqueue('task', { tenant: 'acme', n: 2 }, { queue: 'lanes' });
    const other = await q.enqueue('task', { tenant: 'globex', n: 3 }, { queue: 'lanes' });
    const [held] = (await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['lanes'], limit: 1 })).jobs;
    expect(held?.id).toBe(first.id);
    const why = await t.trpc.jobs.explain.query({ id: second.id });
    expect(why).toMatchObject({ status: 'pending', runnable: false, reasons: [{ code: 'KEY_CONCURRENCY_FULL' }] });
    expect(why.reasons[0]?.message).toBe('concurrency key "acme" of queue "lanes" holds 1 jobs, its limit is 1');
    expect((await t.trpc.jobs.explain.query({ id: other.id })).reasons.map((r) => r.code)).toEqual(['READY']);
    await t.trpc.worker.complete.mutate({ workerId: 'w', id: held!.id, attempt: held!.attempt });
    // The release is still in the ledger (no claim folded it): explain counts it as a claim would.
    expect((await t.trpc.jobs.explain.query({ id: second.id })).reasons.map((r) => r.code)).toEqual(['READY']);
    await q.close();
  });
});

// A type's keyConcurrency (registry option, synced to job_types): one server
// of its own, so the other tests above run without any type limit.
const typed = defineJobs({
  serial: { payload: lanePayload, queue: 'typed', concurrencyKey: (p: z.output<typeof lanePayload>) => p.tenant, keyConcurrency: 1 },
  pair: { payload: lanePayload, queue: 'typed', concurrencyKey: (p: z.output<typeof lanePayload>) => p.tenant, keyConcurrency: 2 },
  free: { payload: lanePayload, queue: 'typed', concurrencyKey: (p: z.output<typeof lanePayload>) => p.tenant },
});

describe('a job type\'s keyConcurrency', () => {
  let t: TestServer;
  const workers: Worker[] = [];
  const sql = async <T extends object>(text: string, values: unknown[] = []) => (await t.db.pool.query<T>(text, values)).rows;
  const enqueue = (type: 'serial' | 'pair' | 'free', tenants: readonly string[], perTenant: number) =>
    t.trpc.jobs.enqueueMany.mutate({ jobs: tenants.flatMap((tenant) => Array.from({ length: perTenant }, (_, n) => ({ type, payload: { tenant, n } }))) });
  const claimPerKey = async (limit: number) => {
    const { jobs: batch } = await t.trpc.worker.claim.mutate({ workerId: 'w', queues: ['typed'], limit });
    const per: Record<string, number> = {};
    for (const j of batch) {
      const { tenant } = j.payload as { tenant: string };
      per[tenant] = (per[tenant] ?? 0) + 1;
    }
    return { batch, per };
  };
  const completeAll = async () => {
    const held = await sql<{ id: string; attempt: number }>(`SELECT id, attempt FROM task_queue WHERE status IN ('claimed', 'processing')`);
    await t.trpc.worker.completeMany.mutate({ workerId: 'w', jobs: held });
  };

  beforeAll(async () => {
    t = await startTestServer({ jobs: typed, pollIntervalMs: 50 });
    await installClaimAudit(t.db.pool);
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases, claim_audit');
  });

  it('is written to job_types at start, and defineJobs refuses one outside 1..10,000', async () => {
    expect(await sql(`SELECT name, queue, key_concurrency FROM job_types ORDER BY name`)).toEqual([
      { name: 'free', queue: 'typed', key_concurrency: null },
      { name: 'pair', queue: 'typed', key_concurrency: 2 },
      { name: 'serial', queue: 'typed', key_concurrency: 1 },
    ]);
    expect(() => defineJobs({ x: { payload: lanePayload, keyConcurrency: 0 } })).toThrow(/keyConcurrency must be an integer 1..10000/);
    expect(() => defineJobs({ x: { payload: lanePayload, keyConcurrency: 1.5 } })).toThrow(/keyConcurrency/);
  });

  it('never holds two jobs of one key with the type\'s keyConcurrency 1 under 8 claiming workers, the queue having no setting', async () => {
    await enqueue('serial', ['t0', 't1', 't2', 't3'], 20);
    for (let w = 0; w < 8; w++) {
      const worker = createWorker({
        url: t.url,
        jobs: typed,
        logger: silentLogger,
        waitMs: 200,
        workerId: `typed-${w}`,
        queues: ['typed'],
        concurrency: 3,
        handlers: { serial: async () => new Promise((r) => setTimeout(r, 3)), pair: async () => {}, free: async () => {} },
      });
      workers.push(worker);
      worker.start();
    }
    await waitFor(
      async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM task_queue WHERE status = 'completed'`))[0]!.n === 80,
      60_000,
      '80 completed',
    );
    const [seen] = await sql<{ claims: number; most_key: number; keys: number }>(
      `SELECT count(*)::int AS claims, max(key_held)::int AS most_key, count(DISTINCT concurrency_key)::int AS keys FROM claim_audit`,
    );
    expect(seen).toEqual({ claims: 80, most_key: 1, keys: 4 });
  }, 90_000);

  it('holds the stricter of the queue\'s and the type\'s keyConcurrency, over HTTP and claim_tasks', async () => {
    const q = createQueueClient({ url: t.url, jobs: typed });
    // Type 2, queue 3: the type's 2 holds.
    await q.configure('typed', { keyConcurrency: 3 });
    await enqueue('pair', ['a', 'b', 'c'], 5);
    expect((await claimPerKey(100)).per).toEqual({ a: 2, b: 2, c: 2 });
    await completeAll();
    // Type 2, queue 1: the queue's 1 holds.
    await q.configure('typed', { keyConcurrency: 1 });
    expect((await claimPerKey(100)).per).toEqual({ a: 1, b: 1, c: 1 });
    await completeAll();
    // A type without a limit in that queue: the queue's 1.
    await q.configure('typed', { keyConcurrency: null });
    await t.db.pool.query(`TRUNCATE task_queue`);
    await enqueue('free', ['a', 'b'], 5);
    expect((await claimPerKey(100)).per).toEqual({ a: 5, b: 5 });
    await completeAll();
    // The same through the SQL API: type 1 beside a type without a limit, under queue 3.
    await q.configure('typed', { keyConcurrency: 3 });
    await t.db.pool.query(`TRUNCATE task_queue`);
    await enqueue('serial', ['a', 'b'], 5);
    const viaSql = await sql<{ task_type: string; k: string }>(`SELECT t.task_type, t.concurrency_key AS k FROM claim_tasks('sql', NULL, 100) AS c JOIN task_queue AS t ON t.id = c.id`);
    expect(viaSql.map((r) => `${r.task_type}/${r.k}`).sort()).toEqual(['serial/a', 'serial/b']);
    // A key's count is every held job of the key: with serial/a held, free jobs of key a take the queue's room left (2).
    await enqueue('free', ['a'], 5);
    expect((await claimPerKey(100)).per).toEqual({ a: 2 });
    await q.close();
  });

  it('explains KEY_CONCURRENCY_FULL by the type\'s limit when it is the stricter one', async () => {
    const q = createQueueClient({ url: t.url, jobs: typed });
    const first = await q.enqueue('serial', { tenant: 'acme', n: 1 });
    const second = await q.enqueue('serial', { tenant: 'acme', n: 2 });
    const loose = await q.enqueue('free', { tenant: 'acme', n: 3 });
    expect((await claimPerKey(1)).batch.map((j) => j.id)).toEqual([first.id]);
    const why = await t.trpc.jobs.explain.query({ id: second.id });
    expect(why).toMatchObject({ status: 'pending', runnable: false, reasons: [{ code: 'KEY_CONCURRENCY_FULL' }] });
    expect(why.reasons[0]?.message).toBe('concurrency key "acme" of queue "typed" holds 1 jobs, its limit is 1 (its type\'s keyConcurrency)');
    // A type without a limit in a queue without one: nothing holds it back.
    expect((await t.trpc.jobs.explain.query({ id: loose.id })).reasons.map((r) => r.code)).toEqual(['READY']);
    await q.configure('typed', { keyConcurrency: 1 });
    expect((await t.trpc.jobs.explain.query({ id: loose.id })).reasons[0]?.message).toBe('concurrency key "acme" of queue "typed" holds 1 jobs, its limit is 1');
    await q.close();
  });
});
