import http from 'node:http';
import net from 'node:net';
import { z } from 'zod';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { tracked } from '@trpc/server';
import { sseStreamProducer } from '@trpc/server/unstable-core-do-not-import';
import superjson from 'superjson';
import { createQueueClient, type QueueClient, type TypedJobEvent } from '../client/index.js';
import { createApiKey } from '../server/auth.js';
import { createQueueServer, type QueueServer } from '../server/app.js';
import { silentLogger } from '../server/logger.js';
import { defineJobs, type JobId } from '../shared/index.js';
import { eventsHorizon, eventsRead, eventsStart } from '../server/queries/events.js';
import { createTestDb, type TestDb } from './support/db.js';
import { startTestServer, type TestServer } from './support/server.js';
import { waitFor } from './support/factories.js';

// tRPC's SSE options are per process (server/trpc.ts): pings every 400 ms, so
// a client takes a silent server for dead after 1.2 s. Set before the server loads.
vi.hoisted(() => {
  process.env.SKIPQ_SSE_PING_MS = '400';
});

const jobs = defineJobs({
  ingestion: { payload: z.object({ n: z.number() }), result: z.object({ rows: z.number() }), queue: 'ingest', maxRetries: 3 },
  report: { payload: z.object({ kind: z.string() }), queue: 'reports' },
});

type Event = TypedJobEvent<typeof jobs>;

/** Collects a stream's events in the background until `stop()`. */
function collect(stream: AsyncIterableIterator<Event> & { close(): void }) {
  const seen: Event[] = [];
  let failure: unknown;
  const done = (async () => {
    try {
      for await (const e of stream) seen.push(e);
    } catch (error) {
      failure = error;
    }
  })();
  return {
    seen,
    get failure() {
      return failure;
    },
    async stop() {
      stream.close();
      await done;
    },
  };
}

/** Subscribes and waits until the server has registered the subscription. */
async function subscribed(queue: QueueClient<typeof jobs>, options: Parameters<QueueClient<typeof jobs>['subscribe']>[0] = {}) {
  let started!: () => void;
  const ready = new Promise<void>((r) => (started = r));
  const c = collect(queue.subscribe({ ...options, onStarted: () => started() }));
  await Promise.race([ready, new Promise((_, reject) => setTimeout(() => reject(new Error(`subscription did not start${c.failure ? `: ${String(c.failure)}` : ''}`)), 5000))]);
  return c;
}

/** An events.jobs request's URL, as tRPC's httpSubscriptionLink makes it (superjson input). */
const eventsUrl = (base: string, input: Record<string, unknown> = {}): string =>
  `${base}/events.jobs?input=${encodeURIComponent(JSON.stringify({ json: input }))}`;

/** One SSE message: its event name ('message' when none), data and id. */
interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * A raw SSE reader over node:http that can stop reading its socket
 * (`pause()`): then the kernel's buffers fill and the server's writes wait,
 * as they do for a client that stops reading.
 */
function rawStream(url: string) {
  const messages: SseMessage[] = [];
  let buffer = '';
  let res: http.IncomingMessage | undefined;
  const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (response) => {
    res = response;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const m: SseMessage = { event: 'message', data: '', id: undefined };
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) m.event = line.slice(7);
          else if (line.startsWith('data: ')) m.data = line.slice(6);
          else if (line.startsWith('id: ')) m.id = line.slice(4);
        }
        if (block.trim() !== '') messages.push(m);
      }
    });
    response.on('error', () => {});
  });
  req.on('error', () => {});
  return {
    messages,
    data: () => messages.filter((m) => m.event === 'message'),
    pause: () => res?.pause(),
    resume: () => res?.resume(),
    close: () => req.destroy(),
  };
}

/**
 * A TCP proxy in front of a server that can go silent: `freeze()` stops
 * passing bytes on the connections it holds (keeping them open, as a hung
 * server or a dead path does), and new connections go to `target` from then on.
 */
async function startProxy(targetPort: number) {
  let target = targetPort;
  let connections = 0;
  const live = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(target, '127.0.0.1');
    const pair = { client, upstream, frozen: false };
    live.add(pair);
    client.on('data', (d) => {
      if (!pair.frozen) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!pair.frozen) client.write(d);
    });
    const end = (): void => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/trpc`,
    get connections() {
      return connections;
    },
    /** The connections open now go silent; new ones reach `nextPort`. */
    freeze(nextPort: number) {
      for (const pair of live) pair.frozen = true;
      target = nextPort;
    },
    async close() {
      for (const pair of live) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The event-logging triggers on task_queue, by name. */
const loggingTriggers = async (pool: { query: (q: string) => Promise<{ rows: Array<{ tgname: string }> }> }): Promise<string[]> =>
  (await pool.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'task_queue'::regclass AND tgname LIKE 'task_queue_log_%' ORDER BY tgname")).rows.map((r) => r.tgname);

const kindsOf = (events: readonly Event[], id: string): string[] => events.filter((e) => e.id === id).map((e) => e.kind);

describe('live events (events.jobs over SSE)', () => {
  let a: TestServer;
  let b: QueueServer;
  let queueA: QueueClient<typeof jobs>;
  let queueB: QueueClient<typeof jobs>;

  /** Claims up to `limit` jobs through server A's worker API. */
  const claimOnA = async (limit: number, queues?: string[]) => (await a.trpc.worker.claim.mutate({ workerId: 'w-a', limit, ...(queues ? { queues } : {}) })).jobs;

  beforeAll(async () => {
    a = await startTestServer({ jobs });
    b = await createQueueServer({ databaseUrl: a.db.url, jobs, port: 0, logger: silentLogger, maintenance: false, pollIntervalMs: 100, eventsPruneIntervalMs: 0 });
    queueA = createQueueClient({ url: a.url, jobs });
    queueB = createQueueClient({ url: b.url, jobs });
  });
  afterAll(async () => {
    await queueA.close();
    await queueB.close();
    await b.close();
    await a.stop();
  });

  it('writes nothing to the event log while nobody subscribes', async () => {
    const { id } = await queueA.enqueue('ingestion', { n: 0 });
    const [job] = await claimOnA(1);
    expect(job?.id).toBe(id);
    await a.trpc.worker.start.mutate({ workerId: 'w-a', jobs: [{ id, attempt: 1 }] });
    await a.trpc.worker.heartbeat.mutate({ workerId: 'w-a', jobs: [{ id, attempt: 1, progress: { pct: 50 } }] });
    await a.trpc.worker.complete.mutate({ workerId: 'w-a', id, attempt: 1, result: { rows: 1 } });
    const { rows } = await a.db.pool.query<{ events: number; listeners: number }>(
      'SELECT (SELECT count(*) FROM job_events)::int AS events, (SELECT count(*) FROM job_event_listeners)::int AS listeners',
    );
    expect(rows[0]).toEqual({ events: 0, listeners: 0 });
    // Not even idle triggers: their transition tables would copy every moved row.
    expect(await loggingTriggers(a.db.pool)).toEqual([]);
  });

  it('shows a subscriber on server B every change made through server A, in order per job', async () => {
    const sub = await subscribed(queueB);
    const ok = await queueA.enqueue('ingestion', { n: 1 });
    const flaky = await queueA.enqueue('ingestion', { n: 2 });
    const doomed = await queueA.enqueue('report', { kind: 'daily' });
    const claimed = await claimOnA(10, ['ingest']);
    expect(claimed.map((j) => j.id).sort()).toEqual([ok.id, flaky.id].sort());
    const held = claimed.map((j) => ({ id: j.id, attempt: j.attempt }));
    await a.trpc.worker.start.mutate({ workerId: 'w-a', jobs: held });
    await a.trpc.worker.heartbeat.mutate({ workerId: 'w-a', jobs: [{ id: ok.id, attempt: 1, progress: { pct: 50 } }] });
    // The same progress again is no change.
    await a.trpc.worker.heartbeat.mutate({ workerId: 'w-a', jobs: [{ id: ok.id, attempt: 1, progress: { pct: 50 } }] });
    await a.trpc.worker.complete.mutate({ workerId: 'w-a', id: ok.id, attempt: 1, result: { rows: 3 } });
    await a.trpc.worker.fail.mutate({ workerId: 'w-a', id: flaky.id, attempt: 1, error: 'boom', retry: true, retryDelayMs: 0 });
    const [again] = await claimOnA(1, ['ingest']);
    expect(again?.id).toBe(flaky.id);
    // Rescued by the SQL function (its lease "ran out" an hour from now), then cancelled.
    await a.db.pool.query("SELECT count(*) FROM skipq_rescue(10, now() + interval '1 hour')");
    await queueA.cancel(flaky.id as JobId<'ingestion'>);
    await queueA.retry(flaky.id as JobId<'ingestion'>);
    await queueA.cancel(doomed.id as JobId<'report'>);

    await waitFor(() => sub.seen.length >= 14, 5000, '14 events on server B');
    await new Promise((r) => setTimeout(r, 100));
    await sub.stop();
    expect(sub.failure).toBeUndefined();
    expect(kindsOf(sub.seen, ok.id)).toEqual(['enqueued', 'claimed', 'started', 'progress', 'completed']);
    expect(kindsOf(sub.seen, flaky.id)).toEqual(['enqueued', 'claimed', 'started', 'retry_scheduled', 'claimed', 'rescued', 'cancelled', 'retried']);
    expect(kindsOf(sub.seen, doomed.id)).toEqual(['enqueued', 'cancelled']);
    const progress = sub.seen.find((e) => e.kind === 'progress');
    expect(progress).toMatchObject({ id: ok.id, type: 'ingestion', queue: 'ingest', status: 'processing', attempt: 1, progress: { pct: 50 } });
    expect(progress?.at).toBeInstanceOf(Date);
    expect(sub.seen.find((e) => e.kind === 'retry_scheduled')).toMatchObject({ status: 'pending', error: 'boom', attempt: 1 });
    expect(sub.seen.find((e) => e.kind === 'rescued')?.error).toMatch(/lease expired/);
    // Event ids are unique and increasing.
    const ids = sub.seen.map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('resumes from lastEventId after a disconnect without losing or repeating an event', async () => {
    const whole = await subscribed(queueB, { types: ['report'] });
    const first = await subscribed(queueB, { types: ['report'] });
    const before = await queueA.enqueue('report', { kind: 'one' });
    await waitFor(() => first.seen.length >= 1, 5000, 'the first event');
    await first.stop();
    const lastEventId = first.seen.at(-1)?.eventId as string;
    // Changes while nobody of `first` listens.
    await queueA.cancel(before.id as JobId<'report'>);
    const during = await queueA.enqueue('report', { kind: 'two' });
    const resumed = collect(queueB.subscribe({ types: ['report'], lastEventId }));
    const after = await queueA.enqueue('report', { kind: 'three' });
    await waitFor(() => resumed.seen.length >= 3 && whole.seen.length >= 4, 5000, 'the events after the disconnect');
    await new Promise((r) => setTimeout(r, 100));
    await resumed.stop();
    await whole.stop();
    const pieced = [...first.seen, ...resumed.seen].map((e) => `${e.id}:${e.kind}`);
    expect(pieced).toEqual(whole.seen.map((e) => `${e.id}:${e.kind}`));
    expect(pieced).toEqual([`${before.id}:enqueued`, `${before.id}:cancelled`, `${during.id}:enqueued`, `${after.id}:enqueued`]);
  });

  it('refuses a lastEventId whose events were pruned (EVENTS_LOST)', async () => {
    const sub = await subscribed(queueB);
    await queueA.enqueue('report', { kind: 'old' });
    await waitFor(() => sub.seen.length >= 1, 5000, 'an event');
    await sub.stop();
    const lastEventId = sub.seen[0]?.eventId as string;
    await queueA.enqueue('report', { kind: 'newer' });
    // Everything logged so far is past a retention of 0 ms.
    await b.pool.query('SELECT skipq_events_prune(0, 100000)');
    const late = collect(queueB.subscribe({ lastEventId }));
    await waitFor(() => late.failure !== undefined, 5000, 'the refusal');
    expect(late.failure).toBeInstanceOf(TRPCClientError);
    expect((late.failure as TRPCClientError<never>).data).toMatchObject({ code: 'CONFLICT', skipqCode: 'EVENTS_LOST' });
  });

  it('stops logging a resume window after the last subscriber left, and says so to a subscriber resuming from before (EVENTS_LOST)', async () => {
    const c = await startTestServer({ jobs, eventsResumeWindowMs: 300, eventsPruneIntervalMs: 0 });
    const queueC = createQueueClient({ url: c.url, jobs });
    try {
      const sub = await subscribed(queueC);
      await queueC.enqueue('report', { kind: 'seen' });
      await waitFor(() => sub.seen.length >= 1, 5000, 'an event');
      expect(await loggingTriggers(c.db.pool)).toEqual(['task_queue_log_enqueues', 'task_queue_log_moves']);
      await sub.stop();
      const count = async () => (await c.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_events')).rows[0]?.n;
      await waitFor(async () => (await c.db.pool.query('SELECT 1 FROM job_event_listeners WHERE live_until > now()')).rowCount === 0, 5000, 'the listener row to run out');
      const logged = await count();
      await queueC.enqueue('report', { kind: 'unseen' });
      expect(await count()).toBe(logged);
      const late = collect(queueC.subscribe({ lastEventId: sub.seen[0]?.eventId as string }));
      await waitFor(() => late.failure !== undefined, 5000, 'the refusal');
      expect((late.failure as TRPCClientError<never>).data).toMatchObject({ code: 'CONFLICT', skipqCode: 'EVENTS_LOST' });
      expect(late.seen).toEqual([]);
      // Pruning drops the triggers once no listener is live, and the next subscriber makes them again.
      await waitFor(async () => (await c.db.pool.query('SELECT 1 FROM job_event_listeners WHERE live_until > now()')).rowCount === 0, 5000, 'the refused subscriber to run out');
      await c.db.pool.query('SELECT skipq_events_prune(600000, 1000)');
      expect(await loggingTriggers(c.db.pool)).toEqual([]);
      const again = await subscribed(queueC);
      expect(await loggingTriggers(c.db.pool)).toEqual(['task_queue_log_enqueues', 'task_queue_log_moves']);
      const { id } = await queueC.enqueue('report', { kind: 'after re-arm' });
      await waitFor(() => again.seen.some((e) => e.id === id), 5000, 'the event after the triggers came back');
      await again.stop();
    } finally {
      await queueC.close();
      await c.stop();
    }
  });

  it('sees every change made after onStarted fired, from the first one', async () => {
    const ids: string[] = [];
    for (let round = 0; round < 15; round++) {
      const sub = await subscribed(queueB, { queues: ['reports'] });
      const { id } = await queueA.enqueue('report', { kind: `r${round}` });
      ids.push(id);
      await waitFor(async () => sub.seen.some((e) => e.id === id), 5000, `round ${round}: the enqueue right after onStarted`);
      await sub.stop();
    }
    // The tests below claim from every queue.
    await a.db.pool.query('DELETE FROM task_queue WHERE id = ANY ($1::text[])', [ids]);
  });

  it('filters by ids, queues and types', async () => {
    const target = await queueA.enqueue('ingestion', { n: 10 });
    const byId = await subscribed(queueB, { ids: [target.id] });
    const byQueue = await subscribed(queueB, { queues: ['reports'] });
    const byType = await subscribed(queueB, { types: ['ingestion'] });
    const report = await queueA.enqueue('report', { kind: 'x' });
    const other = await queueA.enqueue('ingestion', { n: 11 });
    await queueA.cancel(target.id);
    await waitFor(() => byId.seen.length >= 1 && byQueue.seen.length >= 1 && byType.seen.length >= 2, 5000, 'filtered events');
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all([byId.stop(), byQueue.stop(), byType.stop()]);
    expect(byId.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${target.id}:cancelled`]);
    expect(byQueue.seen.map((e) => e.id)).toEqual([report.id]);
    expect(byType.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${other.id}:enqueued`, `${target.id}:cancelled`]);
    expectTypeOf(byType.seen[0]?.type).toEqualTypeOf<'ingestion' | 'report' | undefined>();
  });

  it('types events from the registry: the type names narrow', () => {
    const stream = queueB.subscribe({ types: ['report'] });
    stream.close();
    expectTypeOf(stream).toEqualTypeOf<ReturnType<typeof queueB.subscribe<'report'>>>();
    type ReportEvent = TypedJobEvent<typeof jobs, 'report'>;
    expectTypeOf<ReportEvent['type']>().toEqualTypeOf<'report'>();
    expectTypeOf<ReportEvent['id']>().toEqualTypeOf<JobId<'report'>>();
    expectTypeOf<ReportEvent['at']>().toEqualTypeOf<Date>();
    // @ts-expect-error: not a job type of the registry
    queueB.subscribe({ types: ['nope'] }).close();
  });

  it('writes each event as one chunk in tRPC\'s own SSE format (what tRPC\'s sseStreamProducer makes of the same events)', async () => {
    // HTTP/1.1 chunk boundaries survive any TCP segmentation: a raw socket sees each res.write as its own chunk.
    const { port } = new URL(b.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    const path = new URL(eventsUrl(b.url, { queues: ['reports'] })).pathname + new URL(eventsUrl(b.url, { queues: ['reports'] })).search;
    let raw = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (raw = Buffer.concat([raw, d])));
    socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n`);
    /** The body's chunks so far (chunked transfer encoding), as text. */
    const chunks = (): string[] => {
      const text = raw.toString('latin1');
      const start = text.indexOf('\r\n\r\n');
      if (start < 0) return [];
      const out: string[] = [];
      let at = start + 4;
      for (;;) {
        const eol = text.indexOf('\r\n', at);
        if (eol < 0) return out;
        const size = parseInt(text.slice(at, eol), 16);
        if (!(size > 0) || text.length < eol + 2 + size + 2) return out;
        out.push(Buffer.from(text.slice(eol + 2, eol + 2 + size), 'latin1').toString('utf8'));
        at = eol + 2 + size + 2;
      }
    };
    try {
      await waitFor(() => chunks().some((c) => c.startsWith('event: connected')), 5000, 'the stream to start');
      const first = await queueA.enqueue('report', { kind: 'ünïcode' });
      const second = await queueA.enqueue('report', { kind: 'weekly' });
      await queueA.cancel(first.id as JobId<'report'>);
      const isEvent = (c: string): boolean => c.startsWith('data: ');
      await waitFor(() => chunks().filter(isEvent).length >= 3, 5000, 'three events');
      const head = raw.toString('latin1').slice(0, raw.toString('latin1').indexOf('\r\n\r\n')).toLowerCase();
      expect(head).toMatch(/^http\/1\.1 200/);
      expect(head).toContain('content-type: text/event-stream');
      expect(head).toContain('cache-control: no-cache, no-transform');
      const events = chunks().filter(isEvent).slice(0, 3);
      // One chunk an event: its data and its id together (tRPC's adapter wrote `data:`, `id:` and the blank lines as separate chunks).
      for (const c of events) expect(c).toMatch(/^data: \{.*\}\nid: \d+:\d+\n\n\n$/);
      // The same bytes tRPC's own producer writes for these events.
      const values = events.map((c) => {
        const [, data, id] = /^data: (.*)\nid: (.*)\n\n\n$/.exec(c) as RegExpExecArray;
        return tracked(id as string, superjson.deserialize(JSON.parse(data as string)));
      });
      expect(values.map((v) => (v[1] as { id: string }).id)).toEqual([first.id, second.id, first.id]);
      async function* replay() {
        yield* values;
      }
      const reference = sseStreamProducer({ data: replay(), serialize: (v: unknown) => superjson.serialize(v), ping: { enabled: false }, client: { reconnectAfterInactivityMs: 1200 } });
      let expected = '';
      for await (const piece of reference as unknown as AsyncIterable<Uint8Array>) expected += new TextDecoder().decode(piece);
      const connected = chunks().find((c) => c.startsWith('event: connected')) as string;
      expect(connected + events.join('') + 'event: return\ndata: \n\n\n').toBe(expected);
    } finally {
      socket.destroy();
    }
  });

  it('keeps an idle stream alive with SSE pings and tells the client when to give up on a silent server', async () => {
    const raw = rawStream(eventsUrl(b.url));
    try {
      await waitFor(() => raw.messages.filter((m) => m.event === 'ping').length >= 3, 5000, 'three pings on an idle stream');
      const connected = raw.messages.find((m) => m.event === 'connected');
      // tRPC's client reconnects after this long without a byte (server/trpc.ts: three pings missed).
      expect(JSON.parse(connected?.data ?? 'null')).toEqual({ reconnectAfterInactivityMs: 1200 });
      expect(raw.data()).toEqual([]);
    } finally {
      raw.close();
    }
  });

  it('reconnects when its server goes silent and resumes from its last event on another server, losing and repeating nothing', async () => {
    const proxy = await startProxy(a.server.port);
    const viaProxy = createQueueClient({ url: proxy.url, jobs });
    try {
      const sub = await subscribed(viaProxy, { types: ['report'] });
      const first = await queueA.enqueue('report', { kind: 'before the silence' });
      await waitFor(() => sub.seen.length >= 1, 5000, 'the event before the silence');
      // Server A hangs (its socket stays open, nothing comes through); new connections reach B.
      proxy.freeze(b.port);
      const during = await queueA.enqueue('report', { kind: 'during the silence' });
      await queueA.cancel(first.id as JobId<'report'>);
      await waitFor(() => proxy.connections >= 2, 5000, 'the client to reconnect after 1.2 s of silence');
      const after = await queueA.enqueue('report', { kind: 'after the reconnect' });
      await waitFor(() => sub.seen.length >= 4, 5000, 'the events after the reconnect');
      await new Promise((r) => setTimeout(r, 300));
      await sub.stop();
      expect(sub.failure).toBeUndefined();
      expect(sub.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${first.id}:enqueued`, `${during.id}:enqueued`, `${first.id}:cancelled`, `${after.id}:enqueued`]);
      await a.db.pool.query('DELETE FROM task_queue WHERE id = ANY ($1::text[])', [[first.id, during.id, after.id]]);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('reads each new page once for all its subscribers, and a resuming one catches up alone, then joins them', async () => {
    // Polls a minute apart: every read below was woken by a NOTIFY.
    const c = await createQueueServer({ databaseUrl: a.db.url, jobs, port: 0, logger: silentLogger, maintenance: false, pollIntervalMs: 60_000, eventsPruneIntervalMs: 0 });
    const queueC = createQueueClient({ url: c.url, jobs });
    const room = c.deps.events as NonNullable<typeof c.deps.events>;
    const ids: string[] = [];
    try {
      const subs = await Promise.all(Array.from({ length: 10 }, () => subscribed(queueC, { queues: ['reports'] })));
      await waitFor(() => room.stats().joined === 10, 5000, 'ten joined subscribers');
      const before = room.stats();
      for (let i = 0; i < 20; i++) {
        const { id } = await queueA.enqueue('report', { kind: `w${i}` });
        ids.push(id);
        await waitFor(() => subs.every((s) => s.seen.some((e) => e.id === id)), 5000, `enqueue ${i} at every subscriber`);
      }
      const after = room.stats();
      // One reader: nobody read on its own, and 20 wake-ups cost at most a few reads each, not ten.
      expect(after.ownReads - before.ownReads).toBe(0);
      expect(after.sharedReads - before.sharedReads).toBeLessThanOrEqual(3 * 20);
      for (const s of subs) expect(s.seen.map((e) => e.id)).toEqual(ids);

      const resumed = await subscribed(queueC, { queues: ['reports'], lastEventId: subs[0]?.seen[0]?.eventId as string });
      await waitFor(() => resumed.seen.length >= 19, 5000, 'the resumed subscriber to catch up');
      await waitFor(() => room.stats().joined === 11, 5000, 'the resumed subscriber to join');
      expect(room.stats().ownReads).toBeGreaterThan(after.ownReads);
      const { id } = await queueA.enqueue('report', { kind: 'after the join' });
      ids.push(id);
      await waitFor(() => resumed.seen.some((e) => e.id === id), 5000, 'the event after the join');
      await Promise.all([...subs, resumed].map((s) => s.stop()));
      expect(resumed.seen.map((e) => e.id)).toEqual(ids.slice(1));
    } finally {
      await a.db.pool.query('DELETE FROM task_queue WHERE id = ANY ($1::text[])', [ids]);
      await queueC.close();
      await c.close();
    }
  });

  it('bounds what a subscriber that stops reading costs: others keep up, and it gets all 20,000 events in order once it reads again', async () => {
    const room = b.deps.events as NonNullable<typeof b.deps.events>;
    const fast = await subscribed(queueB, { queues: ['reports'] });
    // Stops reading its socket: the kernel's buffers fill, then tRPC stops pulling its generator.
    const stalledSocket = rawStream(eventsUrl(b.url, { queues: ['reports'] }));
    await waitFor(() => stalledSocket.messages.some((m) => m.event === 'connected'), 5000, 'the stalled stream to start');
    // Pulled, then not at all: what tRPC does with a subscriber whose socket never drains.
    const stalled = await room.open({ ids: null, queues: ['reports'], types: null }, null);
    const halt = new AbortController();
    const stalledEvents = stalled.events(halt.signal);
    const firstPull = stalledEvents.next();
    await waitFor(() => room.subscribers === 3, 5000, 'three subscribers');
    // One event first, so each has an event id to resume from: a client that reconnects before its
    // first event (this machine can stall this process past reconnectAfterInactivityMs) starts afresh.
    const warmUp = await queueA.enqueue('report', { kind: 'warm-up' });
    await waitFor(() => fast.seen.length === 1 && stalledSocket.data().length === 1, 5000, 'the warm-up event');
    stalledSocket.pause();

    let maxBuffered = 0;
    let detached = 0;
    const sampler = setInterval(() => {
      const stats = room.stats();
      maxBuffered = Math.max(maxBuffered, stats.bufferedEvents);
      detached = Math.max(detached, stats.catchingUp);
    }, 5);
    const ids: string[] = [warmUp.id];
    try {
      for (let batch = 0; batch < 40; batch++) {
        const answer = await a.trpc.jobs.enqueueMany.mutate({ jobs: Array.from({ length: 500 }, (_, i) => ({ type: 'report', payload: { kind: `b${batch}-${i}` } })) });
        ids.push(...answer.jobs.map((j) => j.id));
      }
      await waitFor(() => fast.seen.length >= ids.length, 60_000, 'the fast subscriber to get all 20,001');
    } finally {
      clearInterval(sampler);
    }
    // Two stalled subscribers and one fast one held at most a ring and three inboxes (1,000 each), not 20,000 events.
    expect(maxBuffered).toBeLessThanOrEqual(4_000);
    expect(detached).toBeGreaterThanOrEqual(1);
    expect(fast.seen.map((e) => e.id)).toEqual(ids);

    // Reading again: each gets every event, in order, the first pages by its own reads.
    const ownBefore = room.stats().ownReads;
    const got: string[] = [];
    const first = await firstPull;
    if (!first.done) got.push(first.value[1].id);
    for await (const [, event] of { [Symbol.asyncIterator]: () => stalledEvents }) {
      got.push(event.id);
      if (got.length === ids.length) break;
    }
    halt.abort();
    expect(got).toEqual(ids);
    expect(room.stats().ownReads).toBeGreaterThan(ownBefore);
    stalledSocket.resume();
    await waitFor(() => stalledSocket.data().length >= ids.length, 60_000, 'the stalled socket to get all 20,001');
    stalledSocket.close();
    const socketIds = stalledSocket.data().map((m) => (JSON.parse(m.data) as { json: { id: string } }).json.id);
    expect(socketIds).toEqual(ids);
    expect(stalledSocket.data().map((m) => m.id)).toEqual(fast.seen.map((e) => e.eventId));
    await fast.stop();
    expect(fast.failure).toBeUndefined();
    await a.db.pool.query('DELETE FROM task_queue WHERE id = ANY ($1::text[])', [ids]);
  }, 180_000);

  it('shows a key limited to queues only the events of its queues (last: keys turn authentication on)', async () => {
    const admin = await createApiKey(a.db.pool, { role: 'admin' });
    const limited = await createApiKey(a.db.pool, { role: 'producer', queues: ['reports'] });
    const worker = await createApiKey(a.db.pool, { role: 'worker' });
    const adminA = createQueueClient({ url: a.url, jobs, apiKey: admin.key });
    const limitedB = createQueueClient({ url: b.url, jobs, apiKey: limited.key });
    const workerB = createQueueClient({ url: b.url, jobs, apiKey: worker.key });
    try {
      const sub = await subscribed(limitedB);
      const hidden = await adminA.enqueue('ingestion', { n: 20 });
      const shown = await adminA.enqueue('report', { kind: 'y' });
      await adminA.cancel(hidden.id);
      await adminA.cancel(shown.id);
      await waitFor(() => sub.seen.length >= 2, 5000, 'the limited key events');
      await new Promise((r) => setTimeout(r, 150));
      await sub.stop();
      expect(sub.seen.map((e) => `${e.id}:${e.kind}`)).toEqual([`${shown.id}:enqueued`, `${shown.id}:cancelled`]);

      const forbidden = collect(limitedB.subscribe({ queues: ['ingest'] }));
      await waitFor(() => forbidden.failure !== undefined, 5000, 'FORBIDDEN');
      expect((forbidden.failure as TRPCClientError<never>).data).toMatchObject({ code: 'FORBIDDEN' });
      const wrongRole = collect(workerB.subscribe());
      await waitFor(() => wrongRole.failure !== undefined, 5000, 'FORBIDDEN for a worker key');
      expect((wrongRole.failure as TRPCClientError<never>).data).toMatchObject({ code: 'FORBIDDEN' });
      const anonymous = collect(queueB.subscribe());
      await waitFor(() => anonymous.failure !== undefined, 5000, 'UNAUTHORIZED');
      expect((anonymous.failure as TRPCClientError<never>).data).toMatchObject({ code: 'UNAUTHORIZED' });
    } finally {
      await Promise.all([adminA.close(), limitedB.close(), workerB.close()]);
    }
  });
});

describe('where logging starts (a fresh subscription never reads a marker as lost events)', () => {
  let db: TestDb;
  beforeEach(async () => {
    db = await createTestDb();
  });
  afterEach(async () => {
    await db.drop();
  });

  const gaps = async (): Promise<number> => (await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM job_events WHERE kind = 'gap'")).rows[0]?.n ?? -1;

  it('starts a new subscription past the marker of its own listen, even when a higher xid committed while the listen ran', async () => {
    const listen = await db.pool.connect();
    const other = await db.pool.connect();
    try {
      await listen.query('BEGIN');
      // The listen's xid, then a higher one that commits before the marker is keyed:
      // the marker takes the xmax after it, and so does the next snapshot.
      await listen.query('SELECT pg_current_xact_id()');
      await other.query('BEGIN');
      await other.query('SELECT pg_current_xact_id()');
      await other.query('COMMIT');
      const { rows } = await listen.query<{ gap_tx: string; gap_seq: string }>("SELECT gap_tx, gap_seq::text FROM skipq_events_listen('server-1', 60000)");
      await listen.query('COMMIT');
      const gap = rows[0];
      expect(gap).toBeDefined();
      const start = await eventsStart(db.pool);
      const [tx, seq] = [BigInt(start.tx), BigInt(start.seq)];
      const [gapTx, gapSeq] = [BigInt(gap?.gap_tx ?? '0'), BigInt(gap?.gap_seq ?? '0')];
      expect(tx > gapTx || (tx === gapTx && seq >= gapSeq), `start ${start.tx}:${start.seq} is past the marker ${gapTx}:${gapSeq}`).toBe(true);
      // And a read from that start sees no marker.
      await db.pool.query('SELECT pg_current_xact_id()');
      const page = await eventsRead(db.pool, { after: start, horizon: await eventsHorizon(db.pool), filter: { ids: null, queues: null, types: null }, limit: 100 });
      expect(page.events.map((e) => e.kind)).toEqual([]);
    } finally {
      listen.release();
      other.release();
    }
  });

  it('writes one marker when two servers get their first subscriber at the same moment', async () => {
    const first = await db.pool.connect();
    const second = await db.pool.connect();
    try {
      await first.query('BEGIN');
      const a = await first.query("SELECT gap_tx FROM skipq_events_listen('server-a', 60000)");
      expect(a.rowCount).toBe(1);
      // The second listen waits for the first (it looks only under the lock) ...
      let answered = false;
      const b = second.query("SELECT gap_tx FROM skipq_events_listen('server-b', 60000)").finally(() => (answered = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(answered).toBe(false);
      await first.query('COMMIT');
      // ... and then finds the first one live: no second marker.
      expect((await b).rowCount).toBe(0);
      expect(await gaps()).toBe(1);
    } finally {
      first.release();
      second.release();
    }
  });
});
