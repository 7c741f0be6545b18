import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient } from '../client/index.js';
import { defineJobs } from '../shared/index.js';
import { readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

// The producer sends a request that is plain JSON past superjson's walk
// (client/trpc.ts PlainJson, which client/queueClient.ts wraps plain inputs in); anything superjson must annotate (a
// Date, undefined, -0, a Map) still goes through superjson, so a schema that
// takes a Date gets a Date, not its ISO text.

const jobs = defineJobs({
  plain: { payload: z.unknown() },
  dated: { payload: z.object({ at: z.date(), n: z.number() }) },
  counted: { payload: z.object({ tags: z.set(z.string()) }) },
});

const tricky = [
  { n: 0, text: 'quotes " and \\ backslashes, a tab\t, a newline\n' },
  { n: 1, unicode: 'ünïcödé 日本語 🎉', nested: { a: [1, [2, [3, { b: null }]]], empty: {}, none: [] } },
  { n: 2, big: 1e21, small: -0.000001, exact: 9007199254740991, yes: true, no: false },
  [1, 'two', { three: 3 }],
  'a plain string',
  42,
  null,
];

describe('what the producer sends', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ jobs });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('stores plain JSON payloads as given, by enqueue and by enqueueMany', async () => {
    const queue = createQueueClient({ url: t.url, jobs, coalesce: false });
    try {
      const one = await Promise.all(tricky.map((payload) => queue.enqueue('plain', payload)));
      const many = await queue.enqueueMany(tricky.map((payload) => ({ type: 'plain' as const, payload })));
      for (const refs of [one, many]) {
        for (const [i, ref] of refs.entries()) expect((await readJob(t.db.pool, ref.id))?.payload).toEqual(tricky[i]);
      }
    } finally {
      await queue.close();
    }
  });

  it('sends a Date or a Set through superjson, alone or among plain jobs of one enqueueMany', async () => {
    const queue = createQueueClient({ url: t.url, jobs });
    try {
      const at = new Date('2030-01-02T03:04:05.678Z');
      const dated = await queue.enqueue('dated', { at, n: 1 });
      const [first, mixed, set] = await queue.enqueueMany([
        { type: 'plain', payload: { n: 2 } },
        { type: 'dated', payload: { at, n: 3 } },
        { type: 'counted', payload: { tags: new Set(['a', 'b']) } },
      ]);
      expect((await readJob(t.db.pool, dated.id))?.payload).toEqual({ at: at.toISOString(), n: 1 });
      expect((await readJob(t.db.pool, first!.id))?.payload).toEqual({ n: 2 });
      expect((await readJob(t.db.pool, mixed!.id))?.payload).toEqual({ at: at.toISOString(), n: 3 });
      // A Set is stored as JSON.stringify writes it ({}): what matters is that the server's z.set() accepted it.
      expect((await readJob(t.db.pool, set!.id))?.payload).toEqual({ tags: {} });
    } finally {
      await queue.close();
    }
  });

  it('sends runAt (a Date option) through superjson', async () => {
    const queue = createQueueClient({ url: t.url, jobs });
    try {
      const runAt = new Date(Date.now() + 3_600_000);
      const [ref] = await queue.enqueueMany([{ type: 'plain', payload: { n: 4 }, runAt }]);
      expect((await readJob(t.db.pool, ref!.id))?.scheduled_for.getTime()).toBe(runAt.getTime());
    } finally {
      await queue.close();
    }
  });
});
