import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createQueueServer } from '../server/app.js';
import { createApiKey, isLoopback, isLoopbackHost, revokeApiKey, type CreatedKey } from '../server/auth.js';
import { freePort, startEmbeddedPostgres, type EmbeddedDatabase } from '../server/db/embedded.js';
import type { AppRouter } from '../server/routers/_app.js';
import { createTestDb, type TestDb } from './support/db.js';
import { countJobs, insertJob, readJob, waitFor } from './support/factories.js';
import { killChildren, spawnServer } from './support/processes.js';
import { startTestServer, type TestServer } from './support/server.js';

const MiB = 1024 * 1024;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Client = ReturnType<typeof createTRPCClient<AppRouter>>;
const clientFor = (url: string, key?: CreatedKey): Client =>
  createTRPCClient<AppRouter>({ links: [httpLink({ url, transformer: superjson, headers: key ? { authorization: `Bearer ${key.key}` } : {} })] });

/** Resident set size now and at its peak (VmRSS, VmHWM) of a process, in MiB. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** What came back for a raw request: the status (or the socket error's code), the body, and how the upload ended. */
interface RawAnswer {
  status: number | string;
  text: string;
  headers: Record<string, string | string[] | undefined>;
  upload: 'sent' | string;
}

/** POSTs `body` on a connection of its own with node:http; settles once both the answer and the upload are done. */
function rawPost(url: string, body: Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let answer: Omit<RawAnswer, 'upload'> | undefined;
    let upload: string | undefined;
    const settle = () => answer && upload && resolve({ ...answer, upload });
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        answer = { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers };
        settle();
      });
    });
    req.on('finish', () => {
      upload ??= 'sent';
      settle();
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      upload ??= e.code ?? e.message;
      answer ??= { status: e.code ?? e.message, text: '', headers: {} };
      settle();
    });
    req.end(body);
  });
}

/** An enqueue body of exactly `bytes` bytes: one long payload string. */
function enqueueBody(bytes: number, batch = false): Buffer {
  const head = batch ? '{"0":{"json":{"type":"note","payload":"' : '{"json":{"type":"note","payload":"';
  const tail = batch ? '"}}}' : '"}}';
  return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail);
}

/** A parsed HTTP answer read off a raw socket. */
interface SocketAnswer {
  status: number;
  headers: Record<string, string>;
  json: { error?: { json?: { message: string; data: { code: string; httpStatus: number } } } } & Array<{ error?: { json?: { data: { code: string } } } }>;
}

/**
 * Opens a raw connection and sends request headers (and `firstBytes` of the body)
 * without finishing the body: the test decides when, or whether, the rest comes.
 */
function openUpload(url: string, path: string, options: { headers?: Record<string, string>; declared: number; firstBytes?: number }) {
  const u = new URL(`${url}/${path}`);
  const socket: Socket = connect(Number(u.port), u.hostname);
  socket.on('error', () => {});
  const head = [
    `POST ${u.pathname}${u.search} HTTP/1.1`,
    `Host: ${u.host}`,
    'Content-Type: application/json',
    `Content-Length: ${options.declared}`,
    ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  socket.write(head);
  if (options.firstBytes) socket.write(Buffer.alloc(options.firstBytes, 'x'));
  const answer = new Promise<SocketAnswer>((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length']);
      if (buffered.length < end + 4 + length) return;
      resolve({ status: Number(statusLine?.split(' ')[1]), headers, json: JSON.parse(buffered.subarray(end + 4, end + 4 + length).toString('utf8')) });
    });
    socket.on('close', () => reject(new Error('connection closed before an answer')));
  });
  // Tests that hang up themselves never look at the answer.
  answer.catch(() => {});
  return { socket, answer, send: (bytes: number) => socket.write(Buffer.alloc(bytes, 'x')) };
}

/** Runs `server/main.ts` with these arguments; its output lines as they come, and its exit code. */
function spawnMain(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'server/main.ts'), '--port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  spawned.add(child);
  void exited.then(() => spawned.delete(child));
  return { child, exited, lines: () => out.split('\n') };
}
const spawned = new Set<ReturnType<typeof spawn>>();

afterAll(async () => {
  for (const c of spawned) c.kill('SIGKILL');
  await killChildren();
});

describe('item 7.4: request bodies cannot exhaust memory (server in its own process)', () => {
  let db: TestDb;
  let key: CreatedKey;
  beforeAll(async () => {
    db = await createTestDb();
    key = await createApiKey(db.pool, { role: 'admin' });
  });
  afterEach(() => killChildren());
  afterAll(() => db?.drop());

  /**
   * Starts a server process of its own (default settings, so the default budget), sends it
   * 100 concurrent 15 MiB enqueues, half on the fast path, half as tRPC batches, and
   * answers them with its RSS figures.
   */
  async function flood(headers: Record<string, string>) {
    const srv = await spawnServer({ DATABASE_URL: db.url, SKIPQ_RESCUE_INTERVAL_MS: '60000' });
    const fast = enqueueBody(15 * MiB);
    const batched = enqueueBody(15 * MiB, true);
    const base = memoryOf(srv.pid);
    let during = base.rss;
    const sampler = setInterval(() => (during = Math.max(during, memoryOf(srv.pid).rss)), 20);
    const t0 = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => rawPost(i % 2 === 0 ? `${srv.url}/jobs.enqueue` : `${srv.url}/jobs.enqueue?batch=1`, i % 2 === 0 ? fast : batched, headers)),
    );
    const floodMs = Date.now() - t0;
    await sleep(1000);
    clearInterval(sampler);
    const after = memoryOf(srv.pid);
    // And the server still serves.
    const served = await clientFor(srv.url, key).jobs.enqueue.mutate({ type: 'note', payload: { ok: 1 } });
    return { answers, served, figures: { baseMiB: Math.round(base.rss), duringMaxMiB: Math.round(during), peakMiB: Math.round(after.peak), afterMiB: Math.round(after.rss), floodMs } };
  }

  it('100 concurrent 15 MiB POSTs without a key: every one is answered 401, RSS stays under 300 MiB during and after', async () => {
    const { answers, figures, served } = await flood({});
    console.log(`[edge:rss keyless] ${JSON.stringify(figures)}`);
    expect(answers.map((a) => a.status).filter((s) => s !== 401), JSON.stringify(answers.map((a) => a.status))).toEqual([]);
    for (const a of answers) expect(a.text).toContain('UNAUTHORIZED');
    // Refused before reading, the bodies were still taken off the wire (discarded): the clients could finish.
    expect(answers.filter((a) => a.upload !== 'sent')).toEqual([]);
    expect(figures.peakMiB).toBeLessThan(300);
    expect(figures.afterMiB).toBeLessThan(300);
    expect(served).toMatchObject({ status: 'pending' });
    expect(await countJobs(db.pool, 'pending')).toBe(1);
  });

  it('100 concurrent 15 MiB POSTs with a valid key: the in-flight bytes budget answers 429 past it, RSS stays far below the 1.2 GiB of reading them all', async () => {
    // Measured without the budget (SKIPQ_MAX_INFLIGHT_BODY_BYTES=4 GiB): every body read at once, RSS 108 -> 1189 MiB.
    const { answers, figures, served } = await flood({ authorization: `Bearer ${key.key}` });
    const counts = answers.reduce<Record<string, number>>((m, a) => ({ ...m, [a.status]: (m[a.status] ?? 0) + 1 }), {});
    console.log(`[edge:rss keyed] ${JSON.stringify({ ...figures, answers: counts })}`);
    // Read ones are over the payload limit (1 MiB): 413. The rest waited for nothing: 429 with Retry-After.
    expect(Object.keys(counts).sort()).toEqual(['413', '429']);
    for (const a of answers.filter((x) => x.status === 429)) {
      expect(a.headers['retry-after']).toBe('1');
      expect(a.text).toContain('SERVER_BUSY');
    }
    // The default budget holds one body of the largest size: only a few are read, one after another.
    expect(counts['413']).toBeLessThanOrEqual(10);
    // Each body read costs about five times its size in short-lived copies (bytes, text, parsed
    // payload, its JSON for the size check) until V8 collects them: 220-300 MiB measured here.
    expect(figures.peakMiB).toBeLessThan(400);
    expect(figures.afterMiB).toBeLessThan(400);
    expect(served).toMatchObject({ status: 'pending' });
  });
});

describe('item 7.4: the caller is identified from the headers, and body bytes are budgeted, before any body is read', () => {
  let t: TestServer;
  let key: CreatedKey;
  const logged: string[] = [];
  beforeAll(async () => {
    t = await startTestServer({ requireAuth: true, maxBodyBytes: MiB, maxInflightBodyBytes: 1.5 * MiB, log: (m) => logged.push(m) });
    key = await createApiKey(t.db.pool, { role: 'admin' });
  });
  afterAll(() => t?.stop());

  it.each(['jobs.enqueue', 'jobs.enqueue?batch=1'])('answers a keyless POST to %s with 401 before its body arrives', async (path) => {
    const upload = openUpload(t.url, path, { declared: MiB, firstBytes: 10 });
    const answer = await upload.answer;
    expect(answer.status).toBe(401);
    const error = path.includes('batch') ? answer.json[0]?.error?.json : answer.json.error?.json;
    expect(error?.data).toMatchObject({ code: 'UNAUTHORIZED', skipqCode: 'UNAUTHORIZED', httpStatus: 401 });
    upload.socket.destroy();
  });

  it('refuses with 429 SERVER_BUSY and Retry-After, before reading, a body that does not fit in the budget; serves it once the budget is free', async () => {
    const auth = { authorization: `Bearer ${key.key}` };
    // Holds 1 MiB of the 1.5 MiB budget: declared, only partly sent.
    const held = openUpload(t.url, 'jobs.enqueue', { headers: auth, declared: MiB, firstBytes: 1000 });
    await sleep(100);
    for (const path of ['jobs.enqueue', 'jobs.enqueue?batch=1']) {
      const refused = openUpload(t.url, path, { headers: auth, declared: 600 * 1024 });
      const answer = await refused.answer;
      expect(answer.status, path).toBe(429);
      expect(answer.headers['retry-after']).toBe('1');
      const error = path.includes('batch') ? answer.json[0]?.error?.json : answer.json.error?.json;
      expect(error?.data).toMatchObject({ code: 'TOO_MANY_REQUESTS', skipqCode: 'SERVER_BUSY', httpStatus: 429 });
      refused.socket.destroy();
    }
    // A small call still fits.
    const client = clientFor(t.url, key);
    expect(await client.jobs.enqueue.mutate({ type: 'note', payload: { small: true } })).toMatchObject({ status: 'pending' });
    // The held upload's client goes away: its bytes are given back.
    held.socket.destroy();
    await waitFor(() => logged.some((l) => l.startsWith('request aborted by the client')), 5000, 'the abort to be logged');
    const body = enqueueBody(600 * 1024);
    const ok = await rawPost(`${t.url}/jobs.enqueue`, body, auth);
    expect(ok.status, ok.text.slice(0, 200)).toBe(200);
    expect(await countJobs(t.db.pool)).toBe(2);
  });
});

describe('item 7.11: the server waits for PostgreSQL at start', () => {
  let dir: string;
  let pg: EmbeddedDatabase | undefined;
  afterAll(async () => {
    await killChildren();
    await pg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('started while PostgreSQL is down, it retries with backoff, logging each attempt, and serves once PostgreSQL is up', async () => {
    dir = await mkdtemp(join(tmpdir(), 'skipq-startup-'));
    await chmod(dir, 0o755);
    // A private cluster, made ready (its `skipq` database created), then stopped: the server starts against a closed port.
    pg = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), temporary: true });
    await pg.halt();
    const srv = spawnMain([], { DATABASE_URL: pg.url, SKIPQ_STARTUP_TIMEOUT_MS: '30000' });
    const failed = () => srv.lines().filter((l) => /PostgreSQL at 127\.0\.0\.1:\d+\/skipq is not reachable .*attempt \d+, retrying in \d+ ms/.test(l));
    // Let it fail a few attempts first, then start PostgreSQL.
    await waitFor(() => failed().length >= 3, 20_000, 'three failed attempts');
    await pg.restart();
    const upAt = Date.now();
    await waitFor(() => srv.lines().some((l) => /listening on http/.test(l)), 20_000, 'the server to listen');
    const url = /listening on (http:\/\/\S+\/trpc)/.exec(srv.lines().find((l) => /listening on/.test(l)) as string)?.[1] as string;
    const attempts = failed();
    console.log(`[edge:startup] ${attempts.length} failed attempts logged; listening ${Date.now() - upAt} ms after PostgreSQL came up`);
    // Backoff: the pauses grow.
    const pauses = attempts.map((l) => Number(/retrying in (\d+) ms/.exec(l)?.[1]));
    expect(pauses[1]).toBeGreaterThan(pauses[0] as number);
    expect(pauses[2]).toBeGreaterThan(pauses[1] as number);
    expect(srv.lines().some((l) => /PostgreSQL at .* is reachable \(attempt \d+/.test(l))).toBe(true);
    expect(await clientFor(url).health.query()).toMatchObject({ ok: true, database: 'up' });
    expect(await clientFor(url).jobs.enqueue.mutate({ type: 'note', payload: 1 })).toMatchObject({ status: 'pending' });
    srv.child.kill('SIGTERM');
    expect(await srv.exited).toBe(0);
  });

  it('with a short timeout it gives up: exit 1, with a clear message after the attempts', async () => {
    const port = await freePort();
    const started = Date.now();
    const srv = spawnMain(['--startup-timeout', '1500'], { DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/skipq` });
    const code = await srv.exited;
    const ms = Date.now() - started;
    const out = srv.lines().join('\n');
    expect(code, out).toBe(1);
    expect(out.match(/is not reachable .*attempt \d+, retrying/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(out).toMatch(new RegExp(`\\[skipq\\] PostgreSQL at 127\\.0\\.0\\.1:${port}/skipq was not reachable after \\d+ attempts in 1\\.\\d s .*ECONNREFUSED.*giving up`));
    expect(out).not.toMatch(/\n\s+at /);
    expect(ms).toBeGreaterThan(1400);
    expect(ms).toBeLessThan(15_000);
  });
});

describe('item 7.12: security details', () => {
  describe('keyless mode (loopback, no keys) answers only loopback Host values', () => {
    let t: TestServer;
    beforeAll(async () => {
      t = await startTestServer();
    });
    afterAll(() => t?.stop());

    /** A raw GET or POST with a given Host header. */
    async function withHost(host: string, method: 'GET' | 'POST'): Promise<{ status: number; code?: string }> {
      const u = new URL(t.url);
      const path = method === 'GET' ? '/trpc/health' : '/trpc/jobs.enqueue';
      return new Promise((resolve, reject) => {
        const body = JSON.stringify({ json: { type: 'note', payload: 1 } });
        const req = request({ host: u.hostname, port: u.port, path, method, agent: false, headers: { host, 'content-type': 'application/json', ...(method === 'POST' ? { 'content-length': String(body.length) } : {}) } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text) as { error?: { json?: { data?: { skipqCode?: string } } } }).error?.json?.data?.skipqCode }));
        });
        req.on('error', reject);
        req.end(method === 'POST' ? body : undefined);
      });
    }

    it.each(['evil.example.com', '127.example.com', 'localhost.evil.com', '127.0.0.1.nip.io', '10.0.0.1', '[::2]', 'evil.example.com:80'])(
      'refuses Host %s with 403 (DNS rebinding), GET and POST alike',
      async (host) => {
        for (const method of ['GET', 'POST'] as const) expect(await withHost(host, method), method).toEqual({ status: 403, code: 'FORBIDDEN' });
        expect(await countJobs(t.db.pool)).toBe(0);
      },
    );

    it('accepts localhost, 127.0.0.0/8 and [::1], with or without a port', async () => {
      const port = new URL(t.url).port;
      for (const host of ['localhost', `localhost:${port}`, 'LOCALHOST', '127.0.0.1', `127.0.0.1:${port}`, '127.1.2.3', `[::1]:${port}`, '[::ffff:127.0.0.1]']) {
        expect(await withHost(host, 'GET'), host).toEqual({ status: 200, code: undefined });
      }
    });

    it('parses addresses instead of matching prefixes', () => {
      for (const yes of ['localhost', '127.0.0.1', '127.255.255.254', '::1', '[::1]', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) expect(isLoopback(yes), yes).toBe(true);
      for (const no of ['127.example.com', '127.', '127', '1270.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', '0.0.0.0', '::', 'localhost.example.com', '']) expect(isLoopback(no), no).toBe(false);
      expect(isLoopbackHost('127.0.0.1:3000')).toBe(true);
      expect(isLoopbackHost('[::1]:3000')).toBe(true);
      for (const no of [undefined, '', '::1', '127.0.0.1:3000:1', '127.0.0.1@evil.com', '127.example.com:3000']) expect(isLoopbackHost(no), String(no)).toBe(false);
    });

    it('refuses to start without keys on an address that only looks like loopback (127.example.com)', async () => {
      await expect(createQueueServer({ databaseUrl: t.db.url, host: '127.example.com', port: 0, maintenance: false, log: () => {} })).rejects.toThrow(
        /refusing to listen on 127\.example\.com without API keys/,
      );
    });

    it('with keys, a key is what counts: any Host is served', async () => {
      const db = await createTestDb();
      try {
        const key = await createApiKey(db.pool, { role: 'admin' });
        const server = await createQueueServer({ databaseUrl: db.url, port: 0, maintenance: false, log: () => {} });
        try {
          const res = await new Promise<number>((resolve, reject) => {
            const req = request({ host: '127.0.0.1', port: server.port, path: '/trpc/jobs.list?input=' + encodeURIComponent('{"json":{}}'), agent: false, headers: { host: 'queue.example.com', authorization: `Bearer ${key.key}` } }, (r) => {
              r.resume();
              resolve(r.statusCode ?? 0);
            });
            req.on('error', reject);
            req.end();
          });
          expect(res).toBe(200);
        } finally {
          await server.close();
        }
      } finally {
        await db.drop();
      }
    });
  });

  describe('keys create --queues', () => {
    let db: TestDb;
    beforeAll(async () => {
      db = await createTestDb();
    });
    afterAll(() => db?.drop());

    const keys = async (...args: string[]) => {
      const run = spawnMain(['keys', 'create', ...args], { DATABASE_URL: db.url });
      return { code: await run.exited, out: run.lines().join('\n') };
    };

    it('refuses a queue list that names no queue (it would be stored as "every queue"), and a bad name; creates nothing', async () => {
      for (const queues of [' , ', '', ',', 'ok, not ok']) {
        const { code, out } = await keys('--role', 'worker', '--queues', queues);
        expect(code, out).toBe(2);
        expect(out).toMatch(/--queues/);
        expect(out).not.toMatch(/secret/);
      }
      expect((await db.pool.query('SELECT count(*)::int AS n FROM api_keys')).rows[0]).toEqual({ n: 0 });
      const { code, out } = await keys('--role', 'worker', '--queues', ' a , b ');
      expect(code, out).toBe(0);
      expect((await db.pool.query('SELECT queues FROM api_keys')).rows).toEqual([{ queues: ['a', 'b'] }]);
      // The library refuses an empty list too.
      await expect(createApiKey(db.pool, { role: 'worker', queues: [] })).rejects.toThrow(/at least one queue/);
    });
  });

  describe('with API keys', () => {
    let t: TestServer;
    let admin: CreatedKey;
    const logged: string[] = [];
    beforeAll(async () => {
      t = await startTestServer({ requireAuth: true, keyCacheSize: 50, log: (m) => logged.push(m) });
      admin = await createApiKey(t.db.pool, { role: 'admin' });
    });
    afterAll(() => t?.stop());

    it('a long-poll claim that began before its key was revoked hands out no job: it releases it and answers 401', async () => {
      const worker = await createApiKey(t.db.pool, { role: 'worker', name: 'soon revoked' });
      const claiming = clientFor(t.url, worker).worker.claim.mutate({ workerId: 'w', queues: ['revoke-q'], waitMs: 10_000 }).catch((e: unknown) => e);
      await sleep(200);
      expect(await revokeApiKey(t.db.pool, worker.id)).toBe(true);
      // The revocation has reached the server once calls with the key are refused.
      await waitFor(async () => (await clientFor(t.url, worker).jobs.list.query({}).then(() => 'ok', () => 'refused')) === 'refused', 2000, 'the revocation');
      const job = await clientFor(t.url, admin).jobs.enqueue.mutate({ type: 'note', payload: 1, queue: 'revoke-q' });
      const answer = await claiming;
      expect(answer).toBeInstanceOf(TRPCClientError);
      expect((answer as TRPCClientError<AppRouter>).data).toMatchObject({ code: 'UNAUTHORIZED', skipqCode: 'UNAUTHORIZED', httpStatus: 401 });
      expect((answer as Error).message).toContain(`API key ${worker.id} was revoked`);
      // The job went back at once, without using a retry, and another worker gets it.
      expect(await readJob(t.db.pool, job.id)).toMatchObject({ status: 'pending', lease_expires_at: null, retry_count: 0 });
      const other = await createApiKey(t.db.pool, { role: 'worker' });
      const { jobs } = await clientFor(t.url, other).worker.claim.mutate({ workerId: 'w2', queues: ['revoke-q'] });
      expect(jobs.map((j) => j.id)).toEqual([job.id]);
    });

    it('answers a job in a queue the key may not use exactly like an unknown id: 404', async () => {
      const limited = await createApiKey(t.db.pool, { role: 'admin', queues: ['mine'] });
      const c = clientFor(t.url, limited);
      const theirs = await insertJob(t.db.pool, { queue: 'theirs', status: 'failed', failed_at: new Date() });
      const unknown = '01930000-0000-7000-8000-00000000abcd';
      const answerOf = async (call: () => Promise<unknown>) => {
        const e = (await call().catch((error: unknown) => error)) as TRPCClientError<AppRouter>;
        return { data: { code: (e.data as { skipqCode?: string } | undefined)?.skipqCode, httpStatus: e.data?.httpStatus }, message: e.message };
      };
      for (const id of [theirs.id, unknown]) {
        for (const call of [() => c.jobs.get.query({ id }), () => c.jobs.cancel.mutate({ id }), () => c.jobs.retry.mutate({ id })]) {
          expect(await answerOf(call)).toEqual({ data: { code: 'JOB_NOT_FOUND', httpStatus: 404 }, message: `no job with id ${id}` });
        }
      }
      expect((await readJob(t.db.pool, theirs.id)).status).toBe('failed');
      // Its own queue's jobs it still sees.
      const own = await insertJob(t.db.pool, { queue: 'mine' });
      expect(await c.jobs.get.query({ id: own.id })).toMatchObject({ id: own.id });
    });

    it('bounds the key cache (LRU), remembers unknown ids briefly, and shares one lookup among concurrent requests', async () => {
      const auth = t.server.auth;
      const unknownKey = (i: number) => `Bearer skq_${i.toString(16).padStart(12, '0')}_${'A'.repeat(43)}`;
      const list = (authorization: string) =>
        fetch(`${t.url}/jobs.list?input=${encodeURIComponent('{"json":{}}')}`, { headers: { authorization } }).then((r) => r.status);
      // A real key, used before the flood.
      expect(await list(`Bearer ${admin.key}`)).toBe(200);
      const keysBefore = auth.stats().cachedKeys;
      // 500 made-up key ids, 25 at a time: each is refused, and the cache stays bounded.
      for (let i = 0; i < 500; i += 25) {
        const statuses = await Promise.all(Array.from({ length: 25 }, (_, j) => list(unknownKey(0xf00000 + i + j))));
        expect(new Set(statuses)).toEqual(new Set([401]));
      }
      const afterFlood = auth.stats();
      expect(afterFlood.cachedMisses).toBeLessThanOrEqual(50);
      expect(afterFlood.cachedKeys).toBeLessThanOrEqual(50);
      // Unknown ids are kept apart: the flood did not push the real key out.
      expect(afterFlood.cachedKeys).toBe(keysBefore);
      expect(await list(`Bearer ${admin.key}`)).toBe(200);
      // One unknown id sent 40 times (20 at once, then 20 in a row) costs one lookup.
      const before = auth.stats().lookups;
      await Promise.all(Array.from({ length: 20 }, () => list(unknownKey(0xabc))));
      for (let i = 0; i < 20; i++) await list(unknownKey(0xabc));
      expect(auth.stats().lookups - before).toBe(1);
      // ...but only briefly: a key created meanwhile is not refused for long, even with LISTEN down.
      await sleep(1100);
      await list(unknownKey(0xabc));
      expect(auth.stats().lookups - before).toBe(2);
      // 30 concurrent first uses of a new key: one lookup.
      const fresh = await createApiKey(t.db.pool, { role: 'producer' });
      await sleep(50);
      const beforeFresh = auth.stats().lookups;
      expect(new Set(await Promise.all(Array.from({ length: 30 }, () => list(`Bearer ${fresh.key}`))))).toEqual(new Set([200]));
      expect(auth.stats().lookups - beforeFresh).toBe(1);
    });

    it.each(['jobs.enqueue', 'jobs.enqueue?batch=1'])('logs a client that hangs up mid-upload (%s) as an aborted request: one line, no stack', async (path) => {
      logged.length = 0;
      const upload = openUpload(t.url, path, { headers: { authorization: `Bearer ${admin.key}` }, declared: 512 * 1024, firstBytes: 64 * 1024 });
      await sleep(100);
      upload.socket.destroy();
      await waitFor(() => logged.length > 0, 5000, 'a log line');
      await sleep(100);
      const pathname = path.split('?')[0] as string;
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatch(new RegExp(`^request aborted by the client: POST /trpc/${pathname.replace('.', '\\.')}\\S* after \\d+ of 524288 body bytes$`));
      expect(logged.join('\n')).not.toMatch(/internal error|\n\s+at /);
    });
  });
});
