import { createTRPCClient, httpBatchLink } from '@trpc/client';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../server/routers/_app.js';
import { claimAnswerWire } from '../server/fastCall.js';
import { RawJson, stringifyAnswer } from '../server/json.js';
import type { ClaimAnswer } from '../shared/index.js';
import { startTestServer, type TestServer } from './support/server.js';

// A claimed payload leaves the server as the text PostgreSQL holds (RawJson),
// spliced into the answer where the server writes it (the hot path and REST)
// and parsed where tRPC's adapter writes it (batched calls). Every way must
// answer the payload that was enqueued.

const tricky = [
  { n: 0, text: 'quotes " and \\ backslashes, a tab\t, a newline\n' },
  { n: 1, unicode: 'ünïcödé 日本語 emoji 🎉', surrogatePair: '\ud83d\ude00' },
  { n: 2, nested: { a: [1, [2, [3, { b: null }]]], empty: {}, none: [] }, big: 1e21, small: -0.000001, exact: 9007199254740991 },
  { n: 3, lookalike: 'skipq-raw-json-0000000000000000-0', another: '"skipq-raw-json-' },
  [1, 'two', { three: 3 }],
  'a plain string',
  42,
  null,
  true,
];

describe('claimed payloads as text', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function enqueueAll(queue: string): Promise<Map<string, unknown>> {
    const { jobs } = await t.trpc.jobs.enqueueMany.mutate({ jobs: tricky.map((payload) => ({ type: 'tricky', queue, payload })) });
    return new Map(jobs.map((j, i) => [j.id, tricky[i]]));
  }

  it('answers each payload as enqueued on the hot path (tRPC, unbatched)', async () => {
    const sent = await enqueueAll('hot');
    const { jobs } = await t.trpc.worker.claim.mutate({ workerId: 'w-hot', queues: ['hot'], limit: 100, leaseMs: 30_000, waitMs: 0 });
    expect(jobs).toHaveLength(tricky.length);
    for (const job of jobs) expect(job.payload).toEqual(sent.get(job.id));
  });

  it('answers each payload as enqueued through tRPC\'s adapter (a batched call)', async () => {
    const sent = await enqueueAll('batched');
    const batched = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: t.url, transformer: superjson })] });
    const { jobs } = await batched.worker.claim.mutate({ workerId: 'w-batch', queues: ['batched'], limit: 100, leaseMs: 30_000, waitMs: 0 });
    expect(jobs).toHaveLength(tricky.length);
    for (const job of jobs) expect(job.payload).toEqual(sent.get(job.id));
  });

  it('answers each payload as enqueued over REST', async () => {
    const sent = await enqueueAll('rest');
    const origin = new URL(t.url).origin;
    const res = await fetch(`${origin}/api/worker/claim`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workerId: 'w-rest', queues: ['rest'], limit: 100, leaseMs: 30_000, waitMs: 0 }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { jobs: Array<{ id: string; payload: unknown }> };
    expect(body.jobs).toHaveLength(tricky.length);
    for (const job of body.jobs) expect(job.payload).toEqual(sent.get(job.id));
  });

  it('splices only its own placeholders: a string shaped like one stays a string', () => {
    const answer = { a: new RawJson('{"x": [1, 2]}'), b: 'skipq-raw-json-0123456789abcdef-0', c: [new RawJson('"s"'), new RawJson('null')] };
    expect(JSON.parse(stringifyAnswer(answer))).toEqual({ a: { x: [1, 2] }, b: 'skipq-raw-json-0123456789abcdef-0', c: ['s', null] });
    // Any other writer gets the parsed value.
    expect(JSON.parse(JSON.stringify(answer))).toEqual(JSON.parse(stringifyAnswer(answer)));
  });

  it('writes a claim answer on the hot path exactly as superjson would, without its walk', () => {
    const job = (id: string, payload: string) => ({ id, type: 't', queue: 'q', payload: new RawJson(payload), priority: 0, attempt: 1, retryCount: 0, maxRetries: 3, timeoutMs: null, traceContext: null });
    const answers: ClaimAnswer[] = [
      { jobs: [], leaseExpiresAt: null },
      { jobs: [job('a', '{"n":1}'), job('b', '[1,"x"]')], leaseExpiresAt: new Date('2026-12-01T12:00:00.123Z') },
      { jobs: [job('c', 'null')], leaseExpiresAt: new Date(0), completed: ['completed', 'failed', 'lease_lost'], rejected: [{ id: 'd', error: 'too big' }] },
      { jobs: [], leaseExpiresAt: null, completed: ['cancelled'] },
    ];
    for (const answer of answers) {
      expect(stringifyAnswer(claimAnswerWire(answer))).toBe(stringifyAnswer(superjson.serialize(answer)));
      // And the client reads it back to the same answer.
      expect(superjson.deserialize(JSON.parse(stringifyAnswer(claimAnswerWire(answer))))).toEqual(JSON.parse(JSON.stringify(answer), (k, v) => (k === 'leaseExpiresAt' && v !== null ? new Date(v) : v)));
    }
  });

  it('answers enqueueMany on the hot path as superjson would, ids and created flags as sent', async () => {
    const jobs = Array.from({ length: 3 }, (_, n) => ({ type: 'plain', payload: { n }, queue: 'wire' }));
    const res = await fetch(`${t.url}/jobs.enqueueMany`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(superjson.serialize({ jobs })) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { data: unknown } };
    const answer = superjson.deserialize(body.result.data as never) as { jobs: Array<{ id: string; created: boolean }> };
    expect(body.result.data).toEqual(superjson.serialize(answer));
    expect(answer.jobs).toHaveLength(3);
    for (const j of answer.jobs) expect(j).toEqual({ id: expect.any(String), created: true });
  });
});
