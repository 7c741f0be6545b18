import net from 'node:net';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, type Worker, type WorkerEvent } from '../client/index.js';
import { defineJobs, LIMITS } from '../shared/index.js';
import { insertJob, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const fast = { kind: 'fixed', delayMs: 50 } as const;
const jobs = defineJobs({
  // What the handler returns or throws is chosen by `kind`.
  echo: { payload: z.object({ n: z.number().int(), kind: z.string() }), maxRetries: 2, backoff: fast },
  typed: { payload: z.object({ n: z.number().int() }), result: z.object({ rows: z.number().int() }), maxRetries: 1, backoff: fast },
  thrower: { payload: z.object({ kind: z.string() }), maxRetries: 0 },
  hang: { payload: z.object({ n: z.number().int() }), maxRetries: 1, backoff: fast },
});
type Jobs = typeof jobs;
type Options = Parameters<typeof createWorker<Jobs>>[0];

/** Resolves for everyone once `n` have arrived: handlers that return together, so their reports share a batch. */
function barrier(n: number): () => Promise<void> {
  let count = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => { open = resolve; });
  return async () => {
    if (++count === n) open();
    await opened;
  };
}

const never = new Promise<never>(() => {});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A TCP proxy in front of the server that can be frozen: while frozen it
 * swallows what clients send, so requests hang the way they do when a server
 * (or the network) stops answering without closing connections.
 */
async function startFreezableProxy(target: URL): Promise<{ url: string; freeze(): void; thaw(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => { if (!frozen) upstream.write(chunk); });
    upstream.on('data', (chunk) => { if (!frozen) client.write(chunk); });
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    freeze: () => { frozen = true; },
    thaw: () => { frozen = false; },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the worker keeps one bad item from hurting the others', () => {
  let t: TestServer;
  const workers: Worker[] = [];
  let events: WorkerEvent[] = [];
  const queue = () => createQueueClient({ url: t.url, jobs });
  const spawn = (options: Partial<Options> & Pick<Options, 'handlers'>, url = t.url): Worker => {
    const w = createWorker({ url, jobs, waitMs: 200, ...options, onEvent: (e) => events.push(e) });
    workers.push(w);
    w.start();
    return w;
  };
  const failedEvent = (id: string) => events.find((e): e is Extract<WorkerEvent, { kind: 'failed' }> => e.kind === 'failed' && e.id === id);

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.db.pool.query('DELETE FROM task_queue');
    events = [];
  });

  it('8 good + 5 bad results in one batch: the 8 complete once, each bad one fails INVALID_RESULT at once', async () => {
    const q = queue();
    const bad: Record<string, () => unknown> = {
      bigint: () => ({ n: 1n }),
      cycle: () => { const o: Record<string, unknown> = { a: 1 }; o.self = o; return o; },
      huge: () => ({ text: 'x'.repeat(LIMITS.defaultPayloadBytes + 10) }),
      nul: () => ({ text: 'a\u0000b' }),
      surrogate: () => ({ text: 'a\udc00b' }),
    };
    const kinds = [...Array.from({ length: 8 }, () => 'good'), ...Object.keys(bad)];
    const refs = await q.enqueueMany(kinds.map((kind, n) => ({ type: 'echo' as const, payload: { n, kind } })));
    const runs = new Map<string, number>();
    const arrive = barrier(kinds.length);
    spawn({
      concurrency: kinds.length,
      leaseMs: 500,
      handlers: {
        echo: async ({ n, kind }, ctx) => {
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
          await arrive();
          return kind === 'good' ? { n } : (bad[kind] as () => unknown)();
        },
      },
    });
    const good = refs.slice(0, 8);
    const wrong = refs.slice(8);
    await waitFor(async () => {
      const rows = await Promise.all(refs.map((r) => readJob(t.db.pool, r.id)));
      return rows.every((r) => r.status === 'completed' || r.status === 'failed');
    }, 5000, 'every job finished');
    for (const r of good) expect(await readJob(t.db.pool, r.id)).toMatchObject({ status: 'completed', attempt: 1, retry_count: 0 });
    const messages: Record<string, RegExp> = { bigint: /at n: a BigInt is not JSON/, cycle: /at self: a cycle/, huge: /is too large: .*the limit is 1048576/, nul: /NUL/, surrogate: /lone UTF-16 surrogate/ };
    for (const [i, r] of wrong.entries()) {
      const row = await readJob(t.db.pool, r.id);
      const kind = kinds[8 + i] as string;
      expect(row).toMatchObject({ status: 'failed', attempt: 1, retry_count: 0 });
      expect(row.error_message).toMatch(/^result of "echo" /);
      expect(row.error_message).toMatch(messages[kind] as RegExp);
      expect(failedEvent(r.id)).toMatchObject({ code: 'INVALID_RESULT', willRetry: false });
    }
    expect([...runs.values()]).toEqual(kinds.map(() => 1));
    await q.close();
  });

  it('a result the server refuses though the worker let it through (server limit below maxResultBytes) fails only its own job', async () => {
    const q = queue();
    const kinds = [...Array.from({ length: 8 }, () => 'good'), 'big'];
    const refs = await q.enqueueMany(kinds.map((kind, n) => ({ type: 'echo' as const, payload: { n, kind } })));
    const runs = new Map<string, number>();
    const arrive = barrier(kinds.length);
    spawn({
      concurrency: kinds.length,
      maxResultBytes: 2 * LIMITS.defaultPayloadBytes,
      handlers: {
        echo: async ({ n, kind }, ctx) => {
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
          await arrive();
          return kind === 'good' ? { n } : { text: 'x'.repeat(1.5 * LIMITS.defaultPayloadBytes) };
        },
      },
    });
    await waitFor(async () => (await Promise.all(refs.map((r) => readJob(t.db.pool, r.id)))).every((r) => r.status === 'completed' || r.status === 'failed'), 5000, 'every job finished');
    for (const r of refs.slice(0, 8)) expect(await readJob(t.db.pool, r.id)).toMatchObject({ status: 'completed', attempt: 1 });
    const big = await readJob(t.db.pool, refs[8]!.id);
    expect(big).toMatchObject({ status: 'failed', retry_count: 0 });
    expect(big.error_message).toMatch(/^the server refused the result: .*limit is 1048576/);
    expect(failedEvent(refs[8]!.id)).toMatchObject({ code: 'INVALID_RESULT', willRetry: false });
    expect([...runs.values()]).toEqual(kinds.map(() => 1));
    await q.close();
  });

  it('a progress the server refuses though the worker let it through is dropped and reported; every lease is still extended', async () => {
    const q = queue();
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => { finish = resolve; });
    let started = 0;
    spawn({
      concurrency: 3,
      leaseMs: 1500,
      maxResultBytes: 2 * LIMITS.defaultPayloadBytes,
      handlers: {
        echo: async ({ n, kind }, ctx) => {
          ctx.progress(kind === 'big' ? { text: 'x'.repeat(1.5 * LIMITS.defaultPayloadBytes) } : { n });
          started++;
          await finished;
          return { n };
        },
      },
    });
    const refs = await q.enqueueMany([1, 2, 3].map((n) => ({ type: 'echo' as const, payload: { n, kind: n === 2 ? 'big' : 'small' } })));
    await waitFor(() => started === 3, 5000, 'three handlers running');
    // Two lease periods: the refused beats are split and resent well within each.
    await sleep(3000);
    const { rows } = await t.db.pool.query<{ live: boolean }>('SELECT lease_expires_at > now() AS live FROM task_queue');
    finish();
    expect(rows.map((r) => r.live)).toEqual([true, true, true]);
    expect(events.filter((e) => e.kind === 'progress_rejected').map((e) => (e as { id: string }).id)).toEqual([refs[1]!.id]);
    expect((await readJob(t.db.pool, refs[0]!.id)).progress).toEqual({ n: 1 });
    expect((await readJob(t.db.pool, refs[2]!.id)).progress).toEqual({ n: 3 });
    await waitFor(async () => (await Promise.all(refs.map((r) => readJob(t.db.pool, r.id)))).every((r) => r.status === 'completed'), 5000, 'all completed');
    await q.close();
  });

  it('a result without a schema that JSON would change (Map, Set, NaN, Infinity, BigInt, a function, a class) is rejected, not stored changed', async () => {
    const q = queue();
    class Point { constructor(readonly x: number) {} }
    const bad: Record<string, unknown> = {
      map: new Map([['a', 1]]),
      set: { tags: new Set(['a']) },
      nan: { ratio: NaN },
      infinity: [1, Infinity],
      bigint: 10n,
      fn: { run: () => 1 },
      klass: new Point(1),
      undefinedInArray: [1, undefined, 2],
    };
    const refs = await q.enqueueMany(Object.keys(bad).map((kind, n) => ({ type: 'echo' as const, payload: { n, kind } })));
    const ok = await q.enqueue('echo', { n: 99, kind: 'ok' });
    const runs = new Map<string, number>();
    spawn({
      concurrency: 4,
      handlers: {
        echo: ({ kind }, ctx) => {
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
          // Accepted: a Date (its toJSON), an undefined property (left out, as JSON does).
          return kind === 'ok' ? { at: new Date(0), skipped: undefined, list: [null, true, 'é'] } : bad[kind];
        },
      },
    });
    await waitFor(async () => (await Promise.all([...refs, ok].map((r) => readJob(t.db.pool, r.id)))).every((r) => r.status === 'failed' || r.status === 'completed'), 5000, 'all finished');
    for (const r of refs) {
      const row = await readJob(t.db.pool, r.id);
      expect(row, row.error_message ?? '').toMatchObject({ status: 'failed', retry_count: 0 });
      expect(row.error_message).toMatch(/^result of "echo" cannot be stored as JSON: /);
      expect(failedEvent(r.id)).toMatchObject({ code: 'INVALID_RESULT', willRetry: false });
    }
    expect((await readJob(t.db.pool, refs[0]!.id)).error_message).toMatch(/a Map is not JSON/);
    expect((await readJob(t.db.pool, refs[2]!.id)).error_message).toMatch(/at ratio: NaN is not a JSON number/);
    expect((await readJob(t.db.pool, ok.id)).result).toEqual({ at: '1970-01-01T00:00:00.000Z', list: [null, true, 'é'] });
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    await q.close();
  });

  it('a result failing its schema with maxRetries 1: the handler ran once and the job failed INVALID_RESULT', async () => {
    const q = queue();
    let runs = 0;
    spawn({ handlers: { typed: () => { runs++; return { rows: 'many' } as unknown as { rows: number }; } } });
    const job = await q.enqueue('typed', { n: 1 });
    await waitFor(async () => (await q.get(job.id)).status === 'failed', 5000, 'failure');
    await sleep(200); // a retry (backoff 50 ms) would have run by now
    expect(runs).toBe(1);
    const view = await q.get(job.id);
    expect(view).toMatchObject({ retryCount: 0, attempt: 1 });
    expect(view.error).toMatch(/^result of "typed" fails the result schema: rows: /);
    expect(view.error).not.toContain('\n');
    expect(failedEvent(job.id)).toMatchObject({ code: 'INVALID_RESULT', willRetry: false });
    await q.close();
  });

  it('a stored payload failing its schema fails INVALID_PAYLOAD at once with a one-line path: message', async () => {
    let ran = false;
    const bad = await insertJob(t.db.pool, { task_type: 'echo', payload: { n: 'one' }, max_retries: 3 });
    spawn({ handlers: { echo: () => { ran = true; } } });
    await waitFor(async () => (await readJob(t.db.pool, bad.id)).status === 'failed', 5000, 'failure');
    const row = await readJob(t.db.pool, bad.id);
    expect(ran).toBe(false);
    expect(row.retry_count).toBe(0);
    expect(row.error_message).toMatch(/^payload of "echo" is invalid: n: .*; kind: /);
    expect(row.error_message).not.toContain('\n');
    expect(failedEvent(bad.id)).toMatchObject({ code: 'INVALID_PAYLOAD', willRetry: false });
  });

  it('a BigInt or oversized progress throws in the handler, and no job loses its lease', async () => {
    const q = queue();
    const thrown: unknown[] = [];
    let reported = false;
    const release = barrier(3);
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => { finish = resolve; });
    spawn({
      concurrency: 2,
      leaseMs: 600,
      handlers: {
        echo: async ({ kind }, ctx) => {
          if (kind === 'reporter') {
            ctx.progress({ step: 1 });
            // Each refused, none stored: the heartbeat carries { step: 1 } on.
            for (const value of [new Map(), 'x'.repeat(LIMITS.defaultPayloadBytes), { n: 1n }]) {
              try { ctx.progress(value); } catch (error) { thrown.push(error); }
            }
            reported = true;
          }
          await release();
          await finished;
          return { kind };
        },
      },
    });
    const reporter = await q.enqueue('echo', { n: 1, kind: 'reporter' });
    const other = await q.enqueue('echo', { n: 2, kind: 'other' });
    await waitFor(() => reported, 5000, 'progress calls');
    void release();
    // Three lease periods: without heartbeats that get through, both leases would have run out.
    await sleep(1800);
    const { rows } = await t.db.pool.query<{ id: string; live: boolean }>('SELECT id, lease_expires_at > now() AS live FROM task_queue');
    finish();
    expect(rows.map((r) => r.live)).toEqual([true, true]);
    expect((await readJob(t.db.pool, reporter.id)).progress).toEqual({ step: 1 });
    await waitFor(async () => (await q.get(other.id)).status === 'completed' && (await q.get(reporter.id)).status === 'completed', 5000, 'both completed');
    expect(thrown.map((e) => (e as Error).constructor.name)).toEqual(['TypeError', 'RangeError', 'TypeError']);
    expect((thrown[0] as Error).message).toMatch(/a Map is not JSON/);
    expect((thrown[2] as Error).message).toMatch(/progress of job .* cannot be stored as JSON: at n: a BigInt/);
    expect((thrown[1] as Error).message).toMatch(/is too large/);
    expect(events.filter((e) => e.kind === 'lost')).toEqual([]);
    expect((await q.get(other.id)).attempt).toBe(1);
    await q.close();
  });

  it('a thrown Object.create(null), a throwing toString and a 20 MiB message are reported at once, truncated, with an ordinary failure beside them', async () => {
    const q = queue();
    const thrownValues: Record<string, () => unknown> = {
      nullProto: () => Object.assign(Object.create(null) as object, { reason: 'no prototype' }),
      throwingToString: () => ({ toString() { throw new Error('toString exploded'); }, reason: 'hostile' }),
      huge: () => new Error('y'.repeat(20 * 1024 * 1024)),
      caused: () => new Error('outer', { cause: new TypeError('inner') }),
      plain: () => new Error('plain failure'),
    };
    const kinds = Object.keys(thrownValues);
    const refs = await q.enqueueMany(kinds.map((kind) => ({ type: 'thrower' as const, payload: { kind } })));
    const arrive = barrier(kinds.length);
    spawn({
      concurrency: kinds.length,
      handlers: {
        thrower: async ({ kind }) => {
          await arrive();
          throw (thrownValues[kind] as () => unknown)();
        },
      },
    });
    await waitFor(async () => (await Promise.all(refs.map((r) => readJob(t.db.pool, r.id)))).every((r) => r.status === 'failed'), 5000, 'all failed');
    const errorOf = async (i: number) => (await readJob(t.db.pool, refs[i]!.id)).error_message ?? '';
    expect(await errorOf(0)).toMatch(/null prototype.*no prototype/);
    expect(await errorOf(1)).toMatch(/reason: 'hostile'/);
    const huge = await errorOf(2);
    expect(huge.length).toBeLessThanOrEqual(LIMITS.errorMessage);
    expect(huge).toMatch(/^Error: yyyy.*… \[truncated: \d+ chars\]$/);
    expect(await errorOf(3)).toBe('Error: outer\ncaused by: TypeError: inner');
    expect(await errorOf(4)).toBe('Error: plain failure');
    for (const r of refs) expect(failedEvent(r.id)).toMatchObject({ code: 'HANDLER_ERROR' });
    await q.close();
  });

  it('a hung handler past timeoutMs: its signal aborts with TimeoutError, it fails TIMEOUT and is retried, and its slot runs the next job', async () => {
    const q = queue();
    let reason: unknown;
    const order: string[] = [];
    spawn({
      concurrency: 1,
      handlers: {
        hang: ({ n }, ctx) => {
          order.push(`${n}@${ctx.attempt}`);
          if (n === 1 && ctx.attempt === 1) {
            ctx.signal.addEventListener('abort', () => { reason = ctx.signal.reason; });
            return never; // ignores its signal
          }
          return undefined;
        },
      },
    });
    const hung = await q.enqueue('hang', { n: 1 }, { timeoutMs: 300 });
    await waitFor(() => order.length === 1, 5000, 'hung handler started');
    const next = await q.enqueue('hang', { n: 2 });
    await waitFor(async () => (await q.get(next.id)).status === 'completed', 5000, 'second job ran in the freed slot');
    await waitFor(async () => (await q.get(hung.id)).status === 'completed', 5000, 'retry completed');
    expect(order).toEqual(['1@1', '2@1', '1@2']);
    expect((reason as Error).name).toBe('TimeoutError');
    expect(failedEvent(hung.id)).toMatchObject({ attempt: 1, code: 'TIMEOUT', willRetry: true });
    expect(await q.get(hung.id)).toMatchObject({ retryCount: 1, attempt: 2, error: expect.stringMatching(/^TimeoutError: attempt 1 of job .* ran past its timeout of 300 ms$/) });
    await q.close();
  });

  it('a cancelled hung job frees its slot at once', async () => {
    const q = queue();
    let started = false;
    let secondRan = false;
    spawn({
      concurrency: 1,
      leaseMs: 300,
      handlers: {
        hang: ({ n }) => {
          if (n === 1) { started = true; return never; }
          secondRan = true;
          return undefined;
        },
      },
    });
    const hung = await q.enqueue('hang', { n: 1 });
    await waitFor(() => started, 5000, 'hung handler started');
    const next = await q.enqueue('hang', { n: 2 });
    await q.cancel(hung.id);
    await waitFor(async () => (await q.get(next.id)).status === 'completed', 5000, 'second job ran');
    expect(secondRan).toBe(true);
    expect(events).toContainEqual({ kind: 'lost', id: hung.id, reason: 'cancelled' });
    expect((await q.get(hung.id)).status).toBe('cancelled');
    await q.close();
  });

  it('stop() with the server gone resolves within graceMs + requestTimeoutMs and names what it could not deliver', async () => {
    const own = await startTestServer({ jobs, pollIntervalMs: 50 });
    try {
      const q = createQueueClient({ url: own.url, jobs });
      const refs = await q.enqueueMany([1, 2, 3].map((n) => ({ type: 'echo' as const, payload: { n, kind: 'good' } })));
      await q.close();
      let open!: () => void;
      const gate = new Promise<void>((resolve) => { open = resolve; });
      let running = 0;
      const w = createWorker({
        url: own.url,
        jobs,
        concurrency: 3,
        waitMs: 200,
        graceMs: 500,
        requestTimeoutMs: 500,
        handlers: { echo: async ({ n }) => { running++; await gate; return { n }; } },
      });
      w.start();
      await waitFor(() => running === 3, 5000, 'three handlers running');
      await own.server.close();
      open();
      await sleep(50);
      const began = Date.now();
      const report = await w.stop();
      const took = Date.now() - began;
      expect(took).toBeLessThan(500 + 500 + 500);
      expect(report.undelivered.map((u) => u.id).sort()).toEqual(refs.map((r) => r.id).sort());
      expect(report.undelivered.every((u) => u.kind === 'complete' && u.attempt === 1)).toBe(true);
    } finally {
      await own.db.drop();
    }
  });

  it('stop() with a server that stops answering resolves within graceMs + requestTimeoutMs', async () => {
    const proxy = await startFreezableProxy(new URL(t.url));
    try {
      const q = queue();
      const refs = await q.enqueueMany([1, 2].map((n) => ({ type: 'echo' as const, payload: { n, kind: 'good' } })));
      let open!: () => void;
      const gate = new Promise<void>((resolve) => { open = resolve; });
      let running = 0;
      const w = createWorker({
        url: proxy.url,
        jobs,
        concurrency: 2,
        waitMs: 200,
        graceMs: 300,
        requestTimeoutMs: 700,
        handlers: { echo: async ({ n }) => { running++; await gate; return { n }; } },
      });
      w.start();
      await waitFor(() => running === 2, 5000, 'two handlers running');
      proxy.freeze();
      open();
      await sleep(20);
      const began = Date.now();
      const report = await w.stop();
      const took = Date.now() - began;
      expect(took).toBeLessThan(300 + 700 + 500);
      expect(report.undelivered.map((u) => u.id).sort()).toEqual(refs.map((r) => r.id).sort());
      await q.close();
    } finally {
      await proxy.close();
    }
  });

  it('a heartbeat that fails as a whole abandons nothing: the job keeps its lease, its progress lands later, and it completes', async () => {
    const proxy = await startFreezableProxy(new URL(t.url));
    try {
      const q = queue();
      const [ref] = await q.enqueueMany([{ type: 'echo' as const, payload: { n: 1, kind: 'good' } }]);
      let open!: () => void;
      const gate = new Promise<void>((resolve) => { open = resolve; });
      let running = false;
      const events: WorkerEvent[] = [];
      const w = createWorker({
        url: proxy.url,
        jobs,
        concurrency: 1,
        waitMs: 100,
        leaseMs: 3000,
        requestTimeoutMs: 300,
        onEvent: (e) => events.push(e),
        handlers: {
          echo: async ({ n }, ctx) => {
            running = true;
            ctx.progress({ step: n });
            await gate;
            return { n };
          },
        },
      });
      w.start();
      await waitFor(() => running, 5000, 'the handler running');
      // Heartbeats go every lease/3 = 1 s; frozen for 1.5 s, at least one fails as a whole (request timeout).
      proxy.freeze();
      await sleep(1500);
      proxy.thaw();
      expect(events.some((e) => e.kind === 'error')).toBe(true);
      await waitFor(async () => JSON.stringify((await readJob(t.db.pool, ref!.id)).progress) === '{"step":1}', 5000, 'the progress stored by a later heartbeat');
      open();
      await waitFor(async () => (await readJob(t.db.pool, ref!.id)).status === 'completed', 5000, 'the job completed');
      expect(events.filter((e) => e.kind === 'lost')).toEqual([]);
      expect((await readJob(t.db.pool, ref!.id)).attempt).toBe(1);
      await w.stop();
      await q.close();
    } finally {
      await proxy.close();
    }
  });
});
