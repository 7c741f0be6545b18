import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTxEnqueuer, QueueError } from '../server/app.js';
import { createPrisma, type PrismaClient } from '../server/db/prisma.js';
import { defineJobs } from '../shared/index.js';
import { countJobs, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  'send-receipt': {
    payload: z.object({ orderId: z.number().int() }),
    result: z.object({ sentTo: z.string() }),
    queue: 'mail',
    priority: 4,
    maxRetries: 7,
  },
});

const countOrders = async (t: TestServer): Promise<number> =>
  (await t.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM orders')).rows[0]?.n ?? -1;

describe('transactional enqueue (createTxEnqueuer)', () => {
  let t: TestServer;
  let prisma: PrismaClient;
  const skipq = createTxEnqueuer({ jobs });

  beforeAll(async () => {
    // Claims poll every 10 s: a claim answered sooner was woken by the commit's NOTIFY.
    t = await startTestServer({ jobs, pollIntervalMs: 10_000 });
    // The application's own table, next to skipq's (the test's stand-in for examples/orders' Order model).
    await t.db.pool.query('CREATE TABLE orders (id serial PRIMARY KEY, email text NOT NULL)');
    // Prisma's interactive transactions through skipq's own generated client (no second client is generated for the test).
    prisma = createPrisma(t.db.pool);
    // Warm the claim path (prepared statements, PL/pgSQL plans): the wake-up is timed, not a first statement's planning.
    for (let i = 0; i < 3; i++) await t.trpc.worker.claim.mutate({ workerId: 'w-warm', limit: 1, waitMs: 0 });
  });
  afterAll(async () => {
    await prisma.$disconnect();
    await t.stop();
  });
  beforeEach(async () => {
    await t.db.pool.query('TRUNCATE task_queue, orders');
  });

  /**
   * Three rounds of: a worker's claim waits, `commitWith` enqueues in a
   * transaction, holds it open 300 ms (the claim must not answer meanwhile)
   * and commits, answering when. Answers each round's commit-to-claim
   * latency. Claims poll every 10 s, so a wake-up that did not come from the
   * commit's NOTIFY takes seconds in every round; the best of three keeps a
   * machine under load (2 cores, many suites) from failing a working path.
   */
  const timedWakes = async (commitWith: (hold: () => Promise<void>) => Promise<number>): Promise<number[]> => {
    const latencies: number[] = [];
    for (let round = 0; round < 3; round++) {
      const claim = t.trpc.worker.claim.mutate({ workerId: `w-wake-${round}`, limit: 1, waitMs: 8000 });
      let answeredAt = 0;
      void claim.then(() => (answeredAt = Date.now()));
      await new Promise((r) => setTimeout(r, 200));
      const committedAt = await commitWith(async () => {
        await new Promise((r) => setTimeout(r, 300));
        expect(answeredAt).toBe(0);
      });
      expect((await claim).jobs).toHaveLength(1);
      latencies.push(answeredAt - committedAt);
    }
    expect(Math.max(...latencies)).toBeLessThan(2000);
    return latencies;
  };

  describe('with a pg client', () => {
    it('leaves no job when the transaction rolls back', async () => {
      const client = await t.db.pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ id: number }>("INSERT INTO orders (email) VALUES ('a@b.co') RETURNING id");
        const job = await skipq.enqueue(client, 'send-receipt', { orderId: rows[0]!.id });
        expect(job.created).toBe(true);
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      expect(await countOrders(t)).toBe(0);
      expect(await countJobs(t.db.pool)).toBe(0);
    });

    it('leaves exactly one job, with the type defaults, when it commits', async () => {
      const client = await t.db.pool.connect();
      let id: string;
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ id: number }>("INSERT INTO orders (email) VALUES ('a@b.co') RETURNING id");
        ({ id } = await skipq.enqueue(client, 'send-receipt', { orderId: rows[0]!.id }));
        // Not visible outside the transaction before the commit.
        expect(await countJobs(t.db.pool)).toBe(0);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      expect(await countOrders(t)).toBe(1);
      expect(await countJobs(t.db.pool)).toBe(1);
      expect(await readJob(t.db.pool, id)).toMatchObject({ status: 'pending', queue: 'mail', priority: 4, max_retries: 7, task_type: 'send-receipt' });
    });

    it('wakes a waiting worker within 50 ms of the commit, and not before it', async () => {
      const latencies = await timedWakes(async (hold) => {
        const client = await t.db.pool.connect();
        try {
          await client.query('BEGIN');
          await skipq.enqueue(client, 'send-receipt', { orderId: 1 });
          await hold();
          await client.query('COMMIT');
          return Date.now();
        } finally {
          client.release();
        }
      });
      expect(Math.min(...latencies)).toBeLessThan(50);
    });

    it('refuses a payload that fails the registry before sending anything, so the transaction goes on', async () => {
      const client = await t.db.pool.connect();
      try {
        await client.query('BEGIN');
        // @ts-expect-error orderId must be a number
        const error = await skipq.enqueue(client, 'send-receipt', { orderId: 'x' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(QueueError);
        expect((error as QueueError).code).toBe('INVALID_PAYLOAD');
        const bad = await skipq.enqueue(client, 'send-receipt', { orderId: 1 }, { priority: 11 }).catch((e: unknown) => e);
        expect((bad as QueueError).code).toBe('INVALID_INPUT');
        await client.query("INSERT INTO orders (email) VALUES ('still@ok.co')");
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      expect(await countOrders(t)).toBe(1);
      expect(await countJobs(t.db.pool)).toBe(0);
    });

    it('answers the live job holding a uniqueKey instead of a duplicate, inside the transaction', async () => {
      const client = await t.db.pool.connect();
      try {
        await client.query('BEGIN');
        const first = await skipq.enqueue(client, 'send-receipt', { orderId: 5 }, { uniqueKey: 'order-5' });
        const again = await skipq.enqueue(client, 'send-receipt', { orderId: 5 }, { uniqueKey: 'order-5' });
        expect(again).toMatchObject({ id: first.id, created: false });
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      expect(await countJobs(t.db.pool)).toBe(1);
    });
  });

  describe('with a Prisma interactive transaction', () => {
    it('leaves no job when the transaction rolls back', async () => {
      const error = await prisma
        .$transaction(async (tx) => {
          await tx.$executeRawUnsafe("INSERT INTO orders (email) VALUES ('a@b.co')");
          const job = await skipq.enqueue(tx, 'send-receipt', { orderId: 1 }, { delayMs: 10 });
          expect(job.created).toBe(true);
          throw new Error('the app changed its mind');
        })
        .catch((e: unknown) => e);
      expect((error as Error).message).toBe('the app changed its mind');
      expect(await countOrders(t)).toBe(0);
      expect(await countJobs(t.db.pool)).toBe(0);
    });

    it('leaves exactly one job per enqueue when it commits (enqueue and enqueueMany)', async () => {
      const ids = await prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe("INSERT INTO orders (email) VALUES ('a@b.co')");
        const one = await skipq.enqueue(tx, 'send-receipt', { orderId: 1 }, { runAt: new Date(Date.now() + 60_000) });
        const many = await skipq.enqueueMany(tx, [
          { type: 'send-receipt', payload: { orderId: 2 } },
          { type: 'send-receipt', payload: { orderId: 3 }, uniqueKey: 'order-3' },
        ]);
        return [one.id, ...many.map((j) => j.id)];
      });
      expect(await countOrders(t)).toBe(1);
      expect(await countJobs(t.db.pool)).toBe(3);
      expect(new Set(ids).size).toBe(3);
      expect(await readJob(t.db.pool, ids[2]!)).toMatchObject({ unique_key: 'order-3', queue: 'mail' });
    });

    it('wakes a waiting worker within 50 ms of the commit', async () => {
      const latencies = await timedWakes(async (hold) => {
        await prisma.$transaction(async (tx) => {
          await skipq.enqueue(tx, 'send-receipt', { orderId: 9 });
          await hold();
        });
        return Date.now();
      });
      expect(Math.min(...latencies)).toBeLessThan(50);
    });

    it('refuses an id already in use with JOB_ID_CONFLICT, and the transaction stores nothing', async () => {
      const { id } = await prisma.$transaction((tx) => skipq.enqueue(tx, 'send-receipt', { orderId: 1 }));
      const error = await prisma
        .$transaction(async (tx) => {
          await tx.$executeRawUnsafe("INSERT INTO orders (email) VALUES ('a@b.co')");
          await skipq.enqueue(tx, 'send-receipt', { orderId: 2 }, { id, queue: 'other' });
        })
        .catch((e: unknown) => e);
      expect((error as QueueError).code).toBe('JOB_ID_CONFLICT');
      expect(await countOrders(t)).toBe(0);
      expect(await countJobs(t.db.pool)).toBe(1);
    });
  });
});
