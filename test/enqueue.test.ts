import net from 'node:net';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient } from '../client/index.js';
import { createApiKey, type CreatedKey } from '../server/auth.js';
import type { TaskRow } from '../server/queries/row.js';
import type { AppRouter } from '../server/routers/_app.js';
import { createJobId, defineJobs } from '../shared/index.js';
import { countJobs, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  note: { payload: z.object({ n: z.number() }) },
  other: { payload: z.object({ n: z.number() }) },
});

type Client = ReturnType<typeof createTRPCClient<AppRouter>>;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The refusal of a reused id, word for word: the same whatever job holds the id. */
const idTaken = (id: string, where = '') =>
  `${where}job id ${id} is already used by another job; an id may be sent again only to repeat the same enqueue (same type and queue)`;

/** A call's value, or how it was refused. */
async function settle<T>(call: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; status: number; code: string; message: string; data: Record<string, unknown> }> {
  try {
    return { ok: true, value: await call };
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const data = error.data as { httpStatus: number; code: string; skipqCode: string };
    return { ok: false, status: data.httpStatus, code: data.skipqCode, message: error.message, data };
  }
}

/**
 * A TCP proxy in front of the server that can lose a reply: the request goes
 * through and runs to its commit, the answer never comes back and the
 * connection drops, as when the server is killed right after committing.
 */
interface LossyProxy {
  url: string;
  /** Loses the next reply; `meanwhile` runs before the client learns the connection is gone. */
  loseNextReply(meanwhile: () => Promise<void>): void;
  lost: number;
  close(): Promise<void>;
}

async function startLossyProxy(target: string): Promise<LossyProxy> {
  const upstreamUrl = new URL(target);
  const sockets = new Set<net.Socket>();
  let armed: (() => Promise<void>) | null = null;
  const proxy: LossyProxy = {
    url: '',
    lost: 0,
    loseNextReply(meanwhile) {
      armed = meanwhile;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(upstreamUrl.port), upstreamUrl.hostname);
    let dropping = false;
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (dropping) return;
      const meanwhile = armed;
      if (!meanwhile) {
        client.write(chunk);
        return;
      }
      armed = null;
      dropping = true;
      proxy.lost++;
      void meanwhile().finally(() => client.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  proxy.url = `http://127.0.0.1:${port}${upstreamUrl.pathname}`;
  return proxy;
}

describe('enqueue integrity', () => {
  let t: TestServer;
  let proxy: LossyProxy;
  const keys = {} as Record<'admin' | 'producerA' | 'producerB', CreatedKey>;
  const clients = {} as Record<keyof typeof keys, Client>;
  const clientFor = (key: CreatedKey): Client =>
    createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson, headers: { authorization: `Bearer ${key.key}` } })] });

  const rows = async (): Promise<TaskRow[]> => (await t.db.pool.query<TaskRow>('SELECT * FROM task_queue ORDER BY id')).rows;
  /** A worker takes every pending job and completes it. */
  const completeAll = async (): Promise<string[]> => {
    const { jobs: claimed } = await clients.admin.worker.claim.mutate({ workerId: 'w', limit: 100 });
    for (const job of claimed) await clients.admin.worker.complete.mutate({ workerId: 'w', id: job.id, attempt: job.attempt, result: 'done' });
    return claimed.map((j) => j.id);
  };

  beforeAll(async () => {
    t = await startTestServer({ jobs, requireAuth: true });
    keys.admin = await createApiKey(t.db.pool, { role: 'admin' });
    keys.producerA = await createApiKey(t.db.pool, { role: 'producer', queues: ['a'] });
    keys.producerB = await createApiKey(t.db.pool, { role: 'producer', queues: ['b'] });
    for (const name of Object.keys(keys) as Array<keyof typeof keys>) clients[name] = clientFor(keys[name]);
    proxy = await startLossyProxy(t.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.stop();
  });
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  describe('uniqueKey is scoped by queue', () => {
    it('a key held in another queue is neither returned nor in the way: the caller gets its own new job', async () => {
      const inB = await clients.producerB.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, queue: 'b', uniqueKey: 'daily' });
      expect(inB.created).toBe(true);
      // The key limited to queue a sends the same type and key.
      const inA = await clients.producerA.jobs.enqueue.mutate({ type: 'note', payload: { n: 2 }, queue: 'a', uniqueKey: 'daily' });
      expect(inA).toMatchObject({ created: true, queue: 'a', status: 'pending' });
      expect(inA.id).not.toBe(inB.id);
      // Through enqueueMany and the coalescing client too.
      const many = await clients.producerA.jobs.enqueueMany.mutate({ jobs: [{ type: 'note', payload: { n: 3 }, queue: 'a', uniqueKey: 'weekly' }] });
      const producer = createQueueClient({ url: t.url, jobs, apiKey: keys.producerA.key });
      try {
        await clients.producerB.jobs.enqueue.mutate({ type: 'note', payload: { n: 4 }, queue: 'b', uniqueKey: 'monthly' });
        const coalesced = await Promise.all([1, 2, 3].map((n) => producer.enqueue('note', { n }, { queue: 'a', uniqueKey: 'monthly' })));
        expect(coalesced.filter((c) => c.created)).toHaveLength(1);
        expect(new Set(coalesced.map((c) => c.id)).size).toBe(1);
      } finally {
        await producer.close();
      }
      expect(many.jobs[0]?.created).toBe(true);
      const live = await rows();
      expect(live.map((r) => [r.queue, r.unique_key]).sort()).toEqual([
        ['a', 'daily'],
        ['a', 'monthly'],
        ['a', 'weekly'],
        ['b', 'daily'],
        ['b', 'monthly'],
      ]);
    });

    it('a key squatted in one queue does not capture enqueues into another: the victim\'s job is created', async () => {
      const squat = await clients.producerA.jobs.enqueue.mutate({ type: 'note', payload: { n: 0 }, queue: 'a', uniqueKey: 'konzum:2026-01-23' });
      const victim = await clients.producerB.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, queue: 'b', uniqueKey: 'konzum:2026-01-23' });
      expect(victim).toMatchObject({ created: true, queue: 'b' });
      expect(victim.id).not.toBe(squat.id);
      const again = await clients.producerB.jobs.enqueueMany.mutate({ jobs: [{ type: 'note', payload: { n: 2 }, queue: 'b', uniqueKey: 'konzum:2026-01-23' }] });
      expect(again.jobs).toEqual([{ id: victim.id, created: false }]);
      expect((await readJob(t.db.pool, victim.id)).payload).toEqual({ n: 1 });
      expect(await countJobs(t.db.pool)).toBe(2);
    });

    it('50 concurrent enqueues of one key into each of two queues make one job per queue', async () => {
      const send = (client: Client, queue: string, n: number) => client.jobs.enqueue.mutate({ type: 'note', payload: { n }, queue, uniqueKey: 'k' });
      const answers = await Promise.all(Array.from({ length: 100 }, (_, n) => (n % 2 ? send(clients.producerA, 'a', n) : send(clients.producerB, 'b', n))));
      for (const queue of ['a', 'b']) {
        const mine = answers.filter((a) => a.queue === queue);
        expect(mine).toHaveLength(50);
        expect(new Set(mine.map((a) => a.id)).size).toBe(1);
        expect(mine.filter((a) => a.created)).toHaveLength(1);
      }
      expect(await countJobs(t.db.pool)).toBe(2);
    });
  });

  describe('a retried enqueue returns the job it made', () => {
    it('the producer client gives each job a UUIDv7 and resends a lost enqueue with it: the completed job comes back, no second one', async () => {
      for (const coalesce of [true, false]) {
        await t.db.pool.query('DELETE FROM task_queue');
        const producer = createQueueClient({ url: proxy.url, jobs, apiKey: keys.admin.key, coalesce });
        try {
          const lostBefore = proxy.lost;
          let completed: string[] = [];
          // The server commits the job and its answer is lost; before the client resends, a worker completes the job.
          proxy.loseNextReply(async () => {
            completed = await completeAll();
          });
          const answer = await producer.enqueue('note', { n: 1 });
          expect(proxy.lost).toBe(lostBefore + 1);
          expect(answer.id).toMatch(UUID_V7);
          expect(completed).toEqual([answer.id]);
          expect(answer).toEqual({ id: answer.id, created: false });
          const all = await rows();
          expect(all).toHaveLength(1);
          expect(all[0]).toMatchObject({ id: answer.id, status: 'completed', result: 'done', payload: { n: 1 } });
          // Each new enqueue gets a new id.
          const next = await producer.enqueue('note', { n: 2 });
          expect(next.created).toBe(true);
          expect(next.id).toMatch(UUID_V7);
          expect(next.id > answer.id).toBe(true);
        } finally {
          await producer.close();
        }
      }
    });

    it('the same for enqueueMany: a lost reply resent answers every job it made, created: false, still one row each', async () => {
      const producer = createQueueClient({ url: proxy.url, jobs, apiKey: keys.admin.key });
      try {
        proxy.loseNextReply(async () => {
          await completeAll();
        });
        const answers = await producer.enqueueMany([1, 2, 3].map((n) => ({ type: 'note' as const, payload: { n }, uniqueKey: n === 2 ? 'two' : undefined })));
        expect(answers.map((a) => a.created)).toEqual([false, false, false]);
        const all = await rows();
        expect(all.map((r) => r.id)).toEqual(answers.map((a) => a.id));
        expect(all.every((r) => r.status === 'completed')).toBe(true);
      } finally {
        await producer.close();
      }
    });

    it('an enqueue sent again with its id gets that job back, whatever its status; another type or queue is a CONFLICT that reveals nothing', async () => {
      const id = createJobId();
      const first = await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id });
      expect(first).toMatchObject({ id, created: true, status: 'pending', type: 'note', queue: 'default' });
      expect(await completeAll()).toEqual([id]);
      const again = await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id });
      expect(again).toMatchObject({ id, created: false, status: 'completed', type: 'note', queue: 'default' });
      // Hex digits in either case name the same job.
      expect(await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id: id.toUpperCase() })).toMatchObject({ id, created: false });
      expect(await clients.admin.jobs.enqueueMany.mutate({ jobs: [{ type: 'note', payload: { n: 1 }, id }] })).toEqual({ jobs: [{ id, created: false }] });

      const before = await rows();
      const limited = createQueueClient({ url: t.url, jobs, apiKey: keys.producerA.key });
      const refusals = await Promise.all([
        settle(clients.admin.jobs.enqueue.mutate({ type: 'other', payload: { n: 1 }, id })),
        settle(clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id, queue: 'a' })),
        // A key limited to queue a cannot have the job of queue default either.
        settle(clients.producerA.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id, queue: 'a' })),
        settle(limited.enqueue('note', { n: 1 }, { id, queue: 'a' })),
      ]);
      await limited.close();
      for (const refusal of refusals) {
        expect(refusal).toMatchObject({ ok: false, status: 409, code: 'JOB_ID_CONFLICT', message: idTaken(id) });
        // Nothing about the job that has the id: not its type, queue, status, payload or result.
        const text = JSON.stringify(refusal);
        expect(text).not.toMatch(/"default"|completed|done|issues|"n"/);
      }
      expect(await rows()).toEqual(before);
    });

    it('enqueueMany: a repeat answers its job, an id of another job refuses the whole call and stores nothing', async () => {
      const existing = createJobId();
      await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 0 }, id: existing });
      const fresh = createJobId();
      const mixed = await clients.admin.jobs.enqueueMany.mutate({
        jobs: [
          { type: 'note', payload: { n: 0 }, id: existing },
          { type: 'note', payload: { n: 1 }, id: fresh },
        ],
      });
      expect(mixed.jobs).toEqual([
        { id: existing, created: false },
        { id: fresh, created: true },
      ]);
      // Looked up together after the repeat: a job without a key is never answered by a key holder, not even one whose key is "null".
      const nullKey = await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 0 }, uniqueKey: 'null' });
      const lookedUp = await clients.admin.jobs.enqueueMany.mutate({
        jobs: [
          { type: 'note', payload: { n: 0 }, id: existing },
          { type: 'note', payload: { n: 1 } },
          { type: 'note', payload: { n: 2 }, uniqueKey: 'null' },
        ],
      });
      expect(lookedUp.jobs[0]).toEqual({ id: existing, created: false });
      expect(lookedUp.jobs[1]?.created).toBe(true);
      expect(lookedUp.jobs[2]).toEqual({ id: nullKey.id, created: false });

      const before = await rows();
      const clash = await settle(
        clients.admin.jobs.enqueueMany.mutate({
          jobs: [
            { type: 'note', payload: { n: 2 } },
            { type: 'other', payload: { n: 3 }, id: existing },
            { type: 'note', payload: { n: 4 }, uniqueKey: 'k' },
          ],
        }),
      );
      expect(clash).toMatchObject({ ok: false, status: 409, code: 'JOB_ID_CONFLICT', message: idTaken(existing, 'jobs[1]: ') });
      expect(await rows()).toEqual(before);

      // One id twice in one call: the same job once, or a refusal when they differ.
      const twice = createJobId();
      const repeated = await clients.admin.jobs.enqueueMany.mutate({ jobs: [0, 1].map(() => ({ type: 'note', payload: { n: 5 }, id: twice })) });
      expect(repeated.jobs).toEqual([
        { id: twice, created: true },
        { id: twice, created: false },
      ]);
      const differing = createJobId();
      const refused = await settle(
        clients.admin.jobs.enqueueMany.mutate({
          jobs: [
            { type: 'note', payload: { n: 6 }, id: differing },
            { type: 'note', payload: { n: 6 }, id: differing, queue: 'a' },
          ],
        }),
      );
      expect(refused).toMatchObject({ ok: false, code: 'JOB_ID_CONFLICT', message: idTaken(differing, 'jobs[1]: ') });
      expect(await countJobs(t.db.pool)).toBe(5);
    });

    it('with a uniqueKey, the id decides first: a repeat gets its own job even when another job now holds the key', async () => {
      const id = createJobId();
      const first = await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id, uniqueKey: 'daily' });
      expect(first.created).toBe(true);
      // Repeated while the job is live: it holds the key and has the id.
      expect(await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id, uniqueKey: 'daily' })).toMatchObject({ id, created: false });
      // It completes, which frees the key; another enqueue takes the key.
      await completeAll();
      const holder = await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 2 }, uniqueKey: 'daily' });
      expect(holder).toMatchObject({ created: true, status: 'pending' });
      // The lost-reply repeat of the first enqueue gets the first job, not the holder.
      expect(await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id, uniqueKey: 'daily' })).toMatchObject({ id, created: false, status: 'completed' });
      expect(await clients.admin.jobs.enqueueMany.mutate({ jobs: [{ type: 'note', payload: { n: 1 }, id, uniqueKey: 'daily' }] })).toEqual({ jobs: [{ id, created: false }] });
      // A new id with the held key gets the holder, as before.
      const fresh = createJobId();
      expect(await clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 3 }, id: fresh, uniqueKey: 'daily' })).toMatchObject({ id: holder.id, created: false });
      // The id of another job is refused even though the key is held, alone or in a batch, and nothing is stored.
      const before = await rows();
      const alone = await settle(clients.admin.jobs.enqueue.mutate({ type: 'other', payload: { n: 4 }, id: holder.id, uniqueKey: 'daily' }));
      const inBatch = await settle(
        clients.admin.jobs.enqueueMany.mutate({
          jobs: [
            { type: 'note', payload: { n: 5 }, uniqueKey: 'other-key' },
            { type: 'note', payload: { n: 6 }, id, queue: 'a', uniqueKey: 'daily' },
          ],
        }),
      );
      expect(alone).toMatchObject({ ok: false, code: 'JOB_ID_CONFLICT', message: idTaken(holder.id) });
      expect(inBatch).toMatchObject({ ok: false, code: 'JOB_ID_CONFLICT', message: idTaken(id, 'jobs[1]: ') });
      expect(await rows()).toEqual(before);

      // The same when the key is held in the job's own queue and type, so the insert skips it for its key
      // and never meets the primary key: the id of a job of another type is still refused, atomically.
      const foreign = await clients.admin.jobs.enqueue.mutate({ type: 'other', payload: { n: 7 } });
      const withHeldKey = { type: 'note' as const, payload: { n: 8 }, id: foreign.id, uniqueKey: 'daily' };
      const snapshot = await rows();
      const skippedAlone = await settle(clients.admin.jobs.enqueue.mutate(withHeldKey));
      const skippedInBatch = await settle(clients.admin.jobs.enqueueMany.mutate({ jobs: [{ type: 'note', payload: { n: 9 } }, withHeldKey] }));
      expect(skippedAlone).toMatchObject({ ok: false, code: 'JOB_ID_CONFLICT', message: idTaken(foreign.id) });
      expect(skippedInBatch).toMatchObject({ ok: false, code: 'JOB_ID_CONFLICT', message: idTaken(foreign.id, 'jobs[1]: ') });
      expect(await rows()).toEqual(snapshot);
    });

    it('concurrent enqueues sharing a group commit: 20 repeats of one id make one job; a foreign id fails only its own caller', async () => {
      const id = createJobId();
      const repeats = await Promise.all(Array.from({ length: 20 }, () => clients.admin.jobs.enqueue.mutate({ type: 'note', payload: { n: 1 }, id })));
      expect(repeats.every((r) => r.id === id)).toBe(true);
      expect(repeats.filter((r) => r.created)).toHaveLength(1);
      expect(await countJobs(t.db.pool)).toBe(1);

      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, n) => settle(clients.admin.jobs.enqueue.mutate({ type: n === 4 ? 'other' : 'note', payload: { n }, ...(n === 4 ? { id } : {}) }))),
      );
      expect(answers[4]).toMatchObject({ ok: false, code: 'JOB_ID_CONFLICT', message: idTaken(id) });
      expect(answers.filter((a) => a.ok && a.value.created)).toHaveLength(9);
      expect(await countJobs(t.db.pool)).toBe(10);
      expect((await readJob(t.db.pool, id)).task_type).toBe('note');
    });
  });
});
