// The clients' terminating link (client/jsonLink.ts, in place of tRPC's
// httpLink): requests and errors as httpLink made them, against the real
// server, and against a real node:http server that answers what no tRPC
// server would.
import { getEventListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TRPCClientError } from '@trpc/client';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineJobs } from '../shared/index.js';
import { createTrpc, type SkipqTrpc } from '../client/trpc.js';
import type { Transport } from '../client/transport.js';
import { waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({ ping: { payload: z.object({ n: z.number() }) } });

describe('the JSON link', () => {
  let t: TestServer;
  let odd: http.Server;
  let oddUrl: string;
  const seen: Array<{ method: string; url: string; body: string; contentType: string | undefined }> = [];
  let closedEarly = 0;
  const clients: Transport[] = [];
  const client = (url: string): SkipqTrpc => {
    const { trpc, transport } = createTrpc({ url }, false);
    clients.push(transport);
    return trpc;
  };

  beforeAll(async () => {
    t = await startTestServer({ jobs });
    odd = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body, contentType: req.headers['content-type'] });
        if (req.url?.includes('silent')) {
          res.on('close', () => closedEarly++);
          return; // never answers
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(req.url?.includes('array') ? '[1,2]' : req.url?.includes('badError') ? '{"error":{"message":"no code"}}' : '{"hello":1}');
      });
    });
    await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
    oddUrl = `http://127.0.0.1:${(odd.address() as AddressInfo).port}/trpc`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await new Promise((resolve) => odd.close(resolve));
    await t.stop();
  });

  it('sends a mutation as a JSON POST and a query as GET with ?input=, and reads their answers', async () => {
    const trpc = client(t.url);
    const made = await trpc.jobs.enqueue.mutate({ type: 'ping', payload: { n: 7 } });
    const job = await trpc.jobs.get.query({ id: made.id });
    expect(job).toMatchObject({ id: made.id, type: 'ping', payload: { n: 7 }, status: 'pending' });
    // Answers pass through superjson: dates come back as Date.
    expect(job.createdAt).toBeInstanceOf(Date);

    await client(oddUrl).jobs.get.query({ id: made.id }).catch(() => {});
    await client(oddUrl).jobs.enqueue.mutate({ type: 'ping', payload: { n: 8 } }).catch(() => {});
    const [get, post] = seen.slice(-2);
    expect(get).toEqual({ method: 'GET', url: `/trpc/jobs.get?input=${encodeURIComponent(JSON.stringify({ json: { id: made.id } }))}`, body: '', contentType: undefined });
    expect(post).toMatchObject({ method: 'POST', url: '/trpc/jobs.enqueue', contentType: 'application/json' });
    expect(JSON.parse(post!.body)).toEqual({ json: { type: 'ping', payload: { n: 8 } } });
  });

  it("turns the server's error into tRPC's TRPCClientError, with its code, data and the HTTP response in meta", async () => {
    const error = await client(t.url)
      .jobs.get.query({ id: '01a2341d-01f0-7000-a56f-37555a01aabe' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    const e = error as TRPCClientError<never>;
    expect(e.data).toMatchObject({ code: 'NOT_FOUND', httpStatus: 404 });
    expect(e.shape).toMatchObject({ code: -32004 });
    expect((e.meta?.response as Response).status).toBe(404);
    expect(e.meta?.responseJSON).toMatchObject({ error: { json: { data: { code: 'NOT_FOUND' } } } });
  });

  it("answers that are not tRPC's fail with tRPC's own message, whatever their shape", async () => {
    for (const path of ['plain', 'array', 'badError']) {
      const error = await client(oddUrl.replace('/trpc', `/${path}/trpc`)).jobs.get.query({ id: 'x' }).catch((e: unknown) => e);
      expect(error, path).toBeInstanceOf(TRPCClientError);
      expect((error as Error).message, path).toBe('Unable to transform response from server');
    }
  });

  it("an input that cannot be written fails the call with tRPC's error and sends nothing, leaving no listener on the caller's signal", async () => {
    const before = seen.length;
    const ac = new AbortController();
    const unwritable = { toJSON: () => { throw new Error('not today'); } };
    const error = await client(oddUrl).jobs.enqueue.mutate({ type: 'ping', payload: unwritable as never }, { signal: ac.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as Error).message).toBe('not today');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(before);
  });

  it("cuts the request when the caller's signal aborts: the call rejects at once and the server sees the connection close", async () => {
    const before = closedEarly;
    const ac = new AbortController();
    const pending = client(oddUrl.replace('/trpc', '/silent/trpc')).jobs.get.query({ id: 'x' }, { signal: ac.signal }).catch((e: unknown) => e);
    // Aborted once the server holds the request (its close listener is then in place).
    await waitFor(() => seen.some((s) => s.url.startsWith('/silent/')), 5_000, 'the server to hold the request');
    const abortedAt = Date.now();
    ac.abort();
    const error = await pending;
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    expect(error).toBeInstanceOf(TRPCClientError);
    await waitFor(() => closedEarly !== before, 1_000, 'the server to see the connection close');
    expect(closedEarly).toBe(before + 1);
  });
});
