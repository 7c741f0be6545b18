import { connect } from 'node:net';
import { createTRPCClient, httpBatchLink, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createQueueClient, errorCodeOf, InvalidPayloadError, isTransient } from '../client/index.js';
import type { AppRouter } from '../server/routers/_app.js';
import { defineJobs } from '../shared/index.js';
import { insertJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({ note: { payload: z.object({ text: z.string() }) } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejection(call: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TRPCClientError);
  return error as TRPCClientError<AppRouter>;
}

describe('error conventions: data.code is tRPC\'s code, data.skipqCode is skipq\'s', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ maxBodyBytes: 64 * 1024, maxInflightBodyBytes: 64 * 1024 });
  });
  afterAll(() => t?.stop());

  it('a lost lease is CONFLICT with skipqCode LEASE_LOST on the fast path (one unbatched call)', async () => {
    const job = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
    const error = await rejection(t.trpc.worker.complete.mutate({ workerId: 'w2', id: job.id, attempt: 1 }));
    expect(error.data).toMatchObject({ code: 'CONFLICT', skipqCode: 'LEASE_LOST', httpStatus: 409 });
    expect(errorCodeOf(error)).toBe('LEASE_LOST');
  });

  it('a lost lease is CONFLICT with skipqCode LEASE_LOST on the batch path (tRPC adapter)', async () => {
    const job = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
    const batch = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: t.url, transformer: superjson })] });
    const [lost, health] = await Promise.allSettled([batch.worker.complete.mutate({ workerId: 'w2', id: job.id, attempt: 1 }), batch.worker.fail.mutate({ workerId: 'w2', id: job.id, attempt: 1, error: 'x' })]);
    for (const answer of [lost, health]) {
      expect(answer.status).toBe('rejected');
      const error = (answer as PromiseRejectedResult).reason as TRPCClientError<AppRouter>;
      expect(error.data).toMatchObject({ code: 'CONFLICT', skipqCode: 'LEASE_LOST', httpStatus: 409, path: expect.stringMatching(/^worker\./) });
    }
  });

  it('a body over maxBodyBytes (413, refused before tRPC) reads as a tRPC error with tRPC code PAYLOAD_TOO_LARGE', async () => {
    const error = await rejection(t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { text: 'x'.repeat(70 * 1024) } }));
    expect(error.data).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', skipqCode: 'PAYLOAD_TOO_LARGE', httpStatus: 413 });
    expect(error.message).toMatch(/the limit is 65536/);
    expect(isTransient(error)).toBe(false);
  });

  it('a body refused for the in-flight budget (429) reads as TOO_MANY_REQUESTS / SERVER_BUSY, and is transient', async () => {
    // Holds the whole budget: a body declared at the limit, only partly sent.
    const u = new URL(t.url);
    const socket = connect(Number(u.port), u.hostname);
    await new Promise((r) => socket.once('connect', r));
    socket.write(`POST /trpc/jobs.enqueue HTTP/1.1\r\nhost: ${u.host}\r\ncontent-type: application/json\r\ncontent-length: ${64 * 1024}\r\n\r\n{"json":`);
    await sleep(100);
    try {
      const error = await rejection(t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { text: 'hi' } }));
      expect(error.data).toMatchObject({ code: 'TOO_MANY_REQUESTS', skipqCode: 'SERVER_BUSY', httpStatus: 429 });
      expect(errorCodeOf(error)).toBe('SERVER_BUSY');
      expect(isTransient(error)).toBe(true);
    } finally {
      socket.destroy();
    }
  });

  it('the client\'s own InvalidPayloadError has a skipq code: errorCodeOf gives INVALID_PAYLOAD', async () => {
    const queue = createQueueClient({ url: t.url, jobs });
    const error = await (async () => queue.enqueue('note', { text: 5 } as never))().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidPayloadError);
    expect((error as InvalidPayloadError).code).toBe('INVALID_PAYLOAD');
    expect(errorCodeOf(error)).toBe('INVALID_PAYLOAD');
    await queue.close();
  });

  it('a tRPC-only error (unknown procedure) keeps tRPC\'s code and has no skipqCode', async () => {
    const res = await fetch(`${t.url}/jobs.explode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const body = (await res.json()) as { error: { json: { data: { code: string; skipqCode?: string } } } };
    expect(res.status).toBe(404);
    expect(body.error.json.data.code).toBe('NOT_FOUND');
    expect(body.error.json.data.skipqCode).toBeUndefined();
  });
});

describe('error conventions with keys required', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ requireAuth: true });
  });
  afterAll(() => t?.stop());

  it('a call without a key (401, refused before tRPC) reads as a tRPC error with tRPC code UNAUTHORIZED', async () => {
    const keyless = createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson })] });
    const error = await rejection(keyless.jobs.enqueue.mutate({ type: 'note', payload: { text: 'hi' } }));
    expect(error.data).toMatchObject({ code: 'UNAUTHORIZED', skipqCode: 'UNAUTHORIZED', httpStatus: 401 });
    expect(isTransient(error)).toBe(false);
  });
});
