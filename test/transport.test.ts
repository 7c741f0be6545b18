// The clients' HTTP transport (client/transport.ts, node:http with keep-alive):
// against a real node:http server on a real port that misbehaves on purpose.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTransport, RequestTimeoutError, TransportClosedError } from '../client/transport.js';

describe('the client transport', () => {
  let server: http.Server;
  let base: string;
  const sockets = new Set<Socket>();
  let connections = 0;
  let bodies: string[] = [];
  let headersSeen: http.IncomingHttpHeaders[] = [];
  let inFlight = 0;
  let mostInFlight = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        bodies.push(body);
        headersSeen.push(req.headers);
        const path = req.url ?? '';
        if (path.startsWith('/silent')) return; // accepts, never answers
        if (path.startsWith('/cut')) {
          // Promises 1,000 bytes, sends 10, then drops the connection.
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
          res.write('{"result":');
          setTimeout(() => req.socket.destroy(), 20);
          return;
        }
        if (path.startsWith('/slow')) {
          inFlight++;
          mostInFlight = Math.max(mostInFlight, inFlight);
          setTimeout(() => {
            inFlight--;
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ path }));
          }, 150);
          return;
        }
        if (path.startsWith('/status')) {
          res.writeHead(503, { 'content-type': 'application/json' });
          return res.end('{"error":"busy"}');
        }
        if (path.startsWith('/chunked')) {
          // No Content-Length: chunked, with a two-byte character split between two chunks.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(Buffer.from('{"s":"a'));
          res.write(Buffer.from([0xc3]));
          setTimeout(() => res.end(Buffer.concat([Buffer.from([0xa9]), Buffer.from('b"}')])), 20);
          return;
        }
        if (path.startsWith('/text')) {
          res.writeHead(200, { 'content-type': 'text/plain' });
          return res.end('not json at all');
        }
        // Large enough to arrive in several chunks.
        const answer = JSON.stringify({ echo: body, pad: 'é'.repeat(100_000) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
        res.end(answer);
      });
    });
    server.keepAliveTimeout = 65_000;
    server.on('connection', (socket) => {
      connections++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    connections = 0;
    bodies = [];
    headersSeen = [];
    mostInFlight = 0;
    for (const s of sockets) s.destroy();
  });

  const post = (body: string) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it('sends the body and headers, reads a large answer in chunks whole (multi-byte text intact), and reuses one connection', async () => {
    const t = createTransport(`${base}/trpc`, { headers: { authorization: 'Bearer k' } });
    for (let i = 0; i < 5; i++) {
      const res = await t.fetch(`${base}/trpc/echo`, post(`{"i":${i},"s":"ü"}`));
      expect(res.ok).toBe(true);
      expect(res.status).toBe(200);
      const data = (await res.json()) as { echo: string; pad: string };
      expect(data.echo).toBe(`{"i":${i},"s":"ü"}`);
      expect(data.pad).toBe('é'.repeat(100_000));
    }
    expect(bodies).toHaveLength(5);
    expect(headersSeen[0]?.authorization).toBe('Bearer k');
    expect(headersSeen[0]?.['content-length']).toBe(String(Buffer.byteLength('{"i":0,"s":"ü"}')));
    expect(connections).toBe(1);
    await t.close();
  });

  it('never opens more connections than asked for: 20 concurrent calls over 3', async () => {
    const t = createTransport(`${base}/trpc`, { connections: 3 });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => t.fetch(`${base}/slow/${i}`, post('{}')).then((r) => r.json())));
    expect(answers.map((a) => (a as { path: string }).path).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `/slow/${i}`).sort());
    expect(connections).toBe(3);
    expect(mostInFlight).toBe(3);
    await t.close();
  });

  it('reads an answer without a Content-Length (chunked), a character split between chunks intact', async () => {
    const t = createTransport(`${base}/trpc`);
    const res = await t.fetch(`${base}/chunked`, post('{}'));
    expect(await res.json()).toEqual({ s: 'aéb' });
    await t.close();
  });

  it('cuts a request the server never answers after its time limit, with RequestTimeoutError', async () => {
    const t = createTransport(`${base}/trpc`, { requestTimeoutMs: 200 });
    const began = Date.now();
    const error = await t.fetch(`${base}/silent`, post('{}')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect((error as RequestTimeoutError).timeoutMs).toBe(200);
    expect(Date.now() - began).toBeGreaterThanOrEqual(190);
    expect(Date.now() - began).toBeLessThan(2_000);
    // fetchWithin gives another limit to the same transport.
    const longer = await t.fetchWithin(400)(`${base}/silent`, post('{}')).catch((e: unknown) => e);
    expect((longer as RequestTimeoutError).timeoutMs).toBe(400);
    await t.close();
  });

  it('rejects with the caller\'s abort reason, at once and when already aborted', async () => {
    const t = createTransport(`${base}/trpc`);
    const abort = new AbortController();
    const pending = t.fetch(`${base}/silent`, { ...post('{}'), signal: abort.signal }).catch((e: unknown) => e);
    setTimeout(() => abort.abort(new Error('caller went away')), 50);
    expect(((await pending) as Error).message).toBe('caller went away');
    const already = new AbortController();
    already.abort(new Error('before sending'));
    expect(((await t.fetch(`${base}/echo`, { ...post('{}'), signal: already.signal }).catch((e: unknown) => e)) as Error).message).toBe('before sending');
    await t.close();
  });

  it('fails a call whose connection drops mid-answer instead of answering a truncated body', async () => {
    const t = createTransport(`${base}/trpc`);
    const error = await t.fetch(`${base}/cut`, post('{}')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(RequestTimeoutError);
    // The transport still works afterwards, on a new connection.
    expect((await t.fetch(`${base}/echo`, post('"again"'))).ok).toBe(true);
    await t.close();
  });

  it('answers an error status and a body that is not JSON as they are (tRPC\'s links decide), naming the status', async () => {
    const t = createTransport(`${base}/trpc`);
    const busy = await t.fetch(`${base}/status`, post('{}'));
    expect(busy.ok).toBe(false);
    expect(busy.status).toBe(503);
    expect(await busy.json()).toEqual({ error: 'busy' });
    const text = await t.fetch(`${base}/text`, post('{}'));
    await expect(text.json()).rejects.toThrow(/HTTP 200 with a body that is not JSON: not json at all/);
    await t.close();
  });

  it('fails at once when nobody listens', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const t = createTransport(`http://127.0.0.1:${closedPort}/trpc`, { requestTimeoutMs: 5_000 });
    const began = Date.now();
    const error = await t.fetch(`http://127.0.0.1:${closedPort}/trpc/x`, post('{}')).catch((e: unknown) => e);
    expect((error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(Date.now() - began).toBeLessThan(1_000);
    await t.close();
  });

  it('close() lets calls in flight finish, refuses new ones, and drops what is still running after the grace', async () => {
    const t = createTransport(`${base}/trpc`);
    const running = t.fetch(`${base}/slow/1`, post('{}')).then((r) => r.json());
    await new Promise((r) => setTimeout(r, 20));
    const closing = t.close();
    await expect(t.fetch(`${base}/echo`, post('{}'))).rejects.toBeInstanceOf(TransportClosedError);
    expect(await running).toEqual({ path: '/slow/1' });
    await closing;

    const u = createTransport(`${base}/trpc`, { requestTimeoutMs: 60_000 });
    const stuck = u.fetch(`${base}/silent`, post('{}')).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 20));
    const began = Date.now();
    await u.close(100);
    expect(Date.now() - began).toBeLessThan(1_000);
    const error = await stuck;
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(RequestTimeoutError);
  });
});
