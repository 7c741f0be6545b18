import { createTRPCClient, httpLink, httpSubscriptionLink, TRPCClientError } from '@trpc/client';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueServer } from '../server/app.js';
import { createApiKey, revokeApiKey, type CreatedKey } from '../server/auth.js';
import { appRouter, type AppRouter } from '../server/routers/_app.js';
import type { TaskRow } from '../server/queries/row.js';
import { createTestDb } from './support/db.js';
import { countJobs, insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

/** The queue every case works on; the limited key may only use `elsewhere`. */
const Q = 'orders';
const WORKER = 'w1';

type Client = ReturnType<typeof createTRPCClient<AppRouter>>;
type Caller = 'none' | 'malformed' | 'revoked' | 'producer' | 'worker' | 'admin' | 'otherQueue';
/**
 * What a cell must do: succeed, be refused with 401 or 403, be answered 404 as if
 * the job did not exist (a job in a queue the key may not use), or be refused by
 * the lease fence (the key holds no such job).
 */
type Outcome = 'ok' | 401 | 403 | 404 | 'fenced';

const CALLERS: readonly Caller[] = ['none', 'malformed', 'revoked', 'producer', 'worker', 'admin', 'otherQueue'];

/**
 * Opens events.jobs over SSE with `authorization`; rejects with the
 * TRPCClientError it was refused with, else resolves 'started'. tRPC opens the
 * stream (onStarted) before it sends a refusal down it, so a started stream
 * counts as accepted once no refusal followed for 300 ms.
 */
function subscribeOnce(url: string, authorization: string | undefined, input: { queues: string[] }): Promise<'started'> {
  const c = createTRPCClient<AppRouter>({
    links: [
      httpSubscriptionLink({
        url,
        transformer: superjson,
        EventSource,
        eventSourceOptions: { fetch: (u, init) => fetch(u, { ...init, headers: { ...init.headers, ...(authorization ? { authorization } : {}) } }) },
      }),
    ],
  });
  return new Promise((resolve, reject) => {
    const sub = c.events.jobs.subscribe(input, {
      onStarted: () => {
        setTimeout(() => {
          sub.unsubscribe();
          resolve('started');
        }, 300);
      },
      onError: (error) => {
        sub.unsubscribe();
        reject(error);
      },
    });
  });
}

function clientFor(url: string, authorization: string | undefined): Client {
  return createTRPCClient<AppRouter>({
    links: [httpLink({ url, transformer: superjson, headers: authorization ? { authorization } : {} })],
  });
}

/** Runs a call; answers the value, or the HTTP status and skipq code it was refused with. */
async function settle(call: Promise<unknown>): Promise<{ ok: true; value: unknown } | { ok: false; status: number; code: string; trpcCode: string; message: string }> {
  try {
    return { ok: true, value: await call };
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const data = error.data as { httpStatus: number; code: string; skipqCode: string; stack?: string };
    expect(data.stack).toBeUndefined();
    return { ok: false, status: data.httpStatus, code: data.skipqCode, trpcCode: data.code, message: error.message };
  }
}

async function snapshot(t: TestServer): Promise<TaskRow[]> {
  return (await t.db.pool.query<TaskRow>('SELECT * FROM task_queue ORDER BY id')).rows;
}

/** Who holds the job a fenced call acts on: the caller itself, except the limited key, which can never have claimed in `orders`. */
interface Env {
  t: TestServer;
  /** The worker id as stored for the caller's own claims. */
  holder: string;
  caller: Caller;
  /** The caller's Authorization header (subscriptions open their own SSE client with it). */
  authorization: string | undefined;
}

interface ProcedureCase {
  /** Roles whose keys may call it (admin may call everything). */
  roles: ReadonlyArray<'producer' | 'worker' | 'admin' | 'anyone'>;
  /** What the key limited to another queue gets. */
  otherQueue: Outcome;
  /** Prepares rows and makes the call. */
  call(c: Client, env: Env): Promise<{ run: () => Promise<unknown>; verify(value: unknown): Promise<void> }>;
}

const lease = () => new Date(Date.now() + 60_000);

/** A schedule row written directly (the server's own client has no key). */
async function insertSchedule(t: TestServer, name: string, queue: string, paused = false): Promise<void> {
  await t.db.pool.query(
    "INSERT INTO schedules (name, task_type, cron, payload, queue, paused, next_run_at) VALUES ($1, 'ingestion', '0 3 * * *', '{}', $2, $3, now() + interval '1 day')",
    [name, queue, paused],
  );
}

const held = async (env: Env, status: 'claimed' | 'processing' = 'processing') =>
  insertJob(env.t.db.pool, { queue: Q, status, worker_id: env.holder, attempt: 1, lease_expires_at: lease() });

const PROCEDURES: Record<string, ProcedureCase> = {
  'jobs.enqueue': {
    roles: ['producer'],
    otherQueue: 403,
    async call(c, env) {
      return {
        run: () => c.jobs.enqueue.mutate({ type: 'ingest', payload: { n: 1 }, queue: Q }),
        verify: async () => expect(await countJobs(env.t.db.pool)).toBe(1),
      };
    },
  },
  'jobs.enqueueMany': {
    roles: ['producer'],
    otherQueue: 403,
    async call(c, env) {
      return {
        run: () => c.jobs.enqueueMany.mutate({ jobs: [{ type: 'ingest', payload: 1, queue: Q }, { type: 'ingest', payload: 2, queue: Q }] }),
        verify: async () => expect(await countJobs(env.t.db.pool)).toBe(2),
      };
    },
  },
  'jobs.waitFor': {
    roles: ['producer'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q, status: 'completed', result: { done: true } });
      return {
        run: () => c.jobs.waitFor.query({ id: row.id, timeoutMs: 1000 }),
        verify: async (v) => expect(v).toMatchObject({ finished: true, job: { id: row.id, queue: Q, result: { done: true } } }),
      };
    },
  },
  'jobs.get': {
    roles: ['producer'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return { run: () => c.jobs.get.query({ id: row.id }), verify: async (v) => expect(v).toMatchObject({ id: row.id, queue: Q }) };
    },
  },
  'jobs.list': {
    roles: ['producer'],
    otherQueue: 403,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return { run: () => c.jobs.list.query({ queue: Q }), verify: async (v) => expect((v as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id)).toEqual([row.id]) };
    },
  },
  'jobs.cancel': {
    roles: ['producer'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return { run: () => c.jobs.cancel.mutate({ id: row.id }), verify: async () => expect((await readJob(env.t.db.pool, row.id)).status).toBe('cancelled') };
    },
  },
  'jobs.retry': {
    roles: ['admin'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q, status: 'failed', failed_at: new Date(), error_message: 'boom' });
      return { run: () => c.jobs.retry.mutate({ id: row.id }), verify: async () => expect((await readJob(env.t.db.pool, row.id)).status).toBe('pending') };
    },
  },
  'worker.claim': {
    roles: ['worker'],
    otherQueue: 403,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return {
        run: () => c.worker.claim.mutate({ workerId: WORKER, queues: [Q] }),
        verify: async (v) => {
          expect((v as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id)).toEqual([row.id]);
          expect(await readJob(env.t.db.pool, row.id)).toMatchObject({ status: 'claimed', worker_id: env.holder });
        },
      };
    },
  },
  'worker.start': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env, 'claimed');
      return {
        run: () => c.worker.start.mutate({ workerId: WORKER, jobs: [{ id: row.id, attempt: 1 }] }),
        verify: async (v) => {
          if (env.caller === 'otherQueue') return expect(v).toEqual({ started: [], lost: [row.id], cancelled: [] });
          expect(v).toEqual({ started: [row.id], lost: [], cancelled: [] });
          expect((await readJob(env.t.db.pool, row.id)).status).toBe('processing');
        },
      };
    },
  },
  'worker.heartbeat': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      return {
        run: () => c.worker.heartbeat.mutate({ workerId: WORKER, leaseMs: 3_600_000, jobs: [{ id: row.id, attempt: 1, progress: { pct: 1 } }] }),
        verify: async (v) => {
          if (env.caller === 'otherQueue') return expect(v).toMatchObject({ extended: [], lost: [row.id] });
          expect(v).toMatchObject({ extended: [{ id: row.id }], lost: [] });
          expect((await readJob(env.t.db.pool, row.id)).progress).toEqual({ pct: 1 });
        },
      };
    },
  },
  'worker.complete': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      return {
        run: () => c.worker.complete.mutate({ workerId: WORKER, id: row.id, attempt: 1, result: { ok: 1 } }),
        verify: async () => expect(await readJob(env.t.db.pool, row.id)).toMatchObject({ status: 'completed', result: { ok: 1 } }),
      };
    },
  },
  'worker.completeMany': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      return {
        run: () => c.worker.completeMany.mutate({ workerId: WORKER, jobs: [{ id: row.id, attempt: 1 }] }),
        verify: async (v) => {
          if (env.caller === 'otherQueue') return expect(v).toEqual({ results: [{ id: row.id, outcome: 'lease_lost' }] });
          expect(v).toEqual({ results: [{ id: row.id, outcome: 'completed' }] });
          expect((await readJob(env.t.db.pool, row.id)).status).toBe('completed');
        },
      };
    },
  },
  'worker.fail': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      return {
        run: () => c.worker.fail.mutate({ workerId: WORKER, id: row.id, attempt: 1, error: 'boom', retry: false }),
        verify: async () => expect(await readJob(env.t.db.pool, row.id)).toMatchObject({ status: 'failed', error_message: 'boom' }),
      };
    },
  },
  'worker.failMany': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      return {
        run: () => c.worker.failMany.mutate({ workerId: WORKER, jobs: [{ id: row.id, attempt: 1, error: 'boom', retry: false }] }),
        verify: async (v) => {
          if (env.caller === 'otherQueue') return expect(v).toEqual({ results: [{ id: row.id, outcome: 'lease_lost' }] });
          expect(v).toMatchObject({ results: [{ id: row.id, outcome: 'failed' }] });
          expect(await readJob(env.t.db.pool, row.id)).toMatchObject({ status: 'failed', error_message: 'boom' });
        },
      };
    },
  },
  'worker.release': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      return {
        run: () => c.worker.release.mutate({ workerId: WORKER, jobs: [{ id: row.id, attempt: 1 }] }),
        verify: async (v) => {
          if (env.caller === 'otherQueue') return expect(v).toEqual({ released: [], lost: [row.id], cancelled: [] });
          expect(v).toEqual({ released: [row.id], lost: [], cancelled: [] });
          expect((await readJob(env.t.db.pool, row.id)).status).toBe('pending');
        },
      };
    },
  },
  'worker.interrupt': {
    roles: ['worker'],
    // It only ever reaches the claims of the caller's own key.
    otherQueue: 'ok',
    async call(c) {
      return { run: () => c.worker.interrupt.mutate({ workerId: WORKER }), verify: async (v) => expect(v).toEqual({ interrupted: true }) };
    },
  },
  'queues.stats': {
    roles: ['admin'],
    // Allowed, but it sees only the queues the key may use.
    otherQueue: 'ok',
    async call(c, env) {
      await insertJob(env.t.db.pool, { queue: Q });
      await insertJob(env.t.db.pool, { queue: 'elsewhere' });
      return {
        run: () => c.queues.stats.query({}),
        verify: async (v) => {
          const queues = (v as { counts: Array<{ queue: string }> }).counts.map((r) => r.queue);
          expect(queues).toEqual(env.caller === 'otherQueue' ? ['elsewhere'] : ['elsewhere', Q]);
        },
      };
    },
  },
  'schedules.upsert': {
    roles: ['admin'],
    otherQueue: 403,
    async call(c, env) {
      return {
        run: () => c.schedules.upsert.mutate({ name: `s-${env.caller}`, type: 'ingestion', cron: '0 3 * * *', payload: {}, queue: Q }),
        verify: async (v) => expect(v).toMatchObject({ name: `s-${env.caller}`, queue: Q, source: 'api' }),
      };
    },
  },
  'schedules.list': {
    roles: ['admin'],
    // Allowed, but it sees only the schedules of queues the key may use.
    otherQueue: 'ok',
    async call(c, env) {
      await env.t.db.pool.query('DELETE FROM schedules');
      await insertSchedule(env.t, 'in-q', Q);
      await insertSchedule(env.t, 'elsewhere', 'elsewhere');
      return {
        run: () => c.schedules.list.query(),
        verify: async (v) => {
          const names = (v as { schedules: Array<{ name: string }> }).schedules.map((s) => s.name);
          expect(names).toEqual(env.caller === 'otherQueue' ? ['elsewhere'] : ['elsewhere', 'in-q']);
        },
      };
    },
  },
  ...Object.fromEntries(
    (['remove', 'pause', 'resume'] as const).map((op): [string, ProcedureCase] => [
      `schedules.${op}`,
      {
        roles: ['admin'],
        otherQueue: 403,
        async call(c, env) {
          await env.t.db.pool.query('DELETE FROM schedules');
          await insertSchedule(env.t, 'target', Q, op === 'resume');
          return {
            run: () => c.schedules[op].mutate({ name: 'target' }),
            verify: async () => {
              const { rows } = await env.t.db.pool.query<{ paused: boolean }>("SELECT paused FROM schedules WHERE name = 'target'");
              expect(rows.map((r) => r.paused)).toEqual(op === 'remove' ? [] : [op === 'pause']);
            },
          };
        },
      },
    ]),
  ),
  'jobs.enqueueFlow': {
    roles: ['producer'],
    otherQueue: 403,
    async call(c, env) {
      return {
        run: () => c.jobs.enqueueFlow.mutate({ parent: { type: 'report', payload: 0, queue: Q }, children: [{ type: 'ingest', payload: 1, queue: Q }] }),
        verify: async () => expect(await countJobs(env.t.db.pool)).toBe(2),
      };
    },
  },
  'jobs.attempts': {
    roles: ['producer'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return { run: () => c.jobs.attempts.query({ id: row.id }), verify: async (v) => expect(v).toEqual({ attempts: [], nextAfter: null }) };
    },
  },
  'jobs.children': {
    roles: ['producer'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return { run: () => c.jobs.children.query({ id: row.id }), verify: async (v) => expect(v).toEqual({ children: [], nextCursor: null }) };
    },
  },
  'worker.children': {
    roles: ['worker'],
    otherQueue: 'fenced',
    async call(c, env) {
      const row = await held(env);
      const child = await insertJob(env.t.db.pool, { queue: Q, parent_id: row.id, status: 'completed', result: { n: 1 } });
      return {
        run: () => c.worker.children.query({ workerId: WORKER, id: row.id, attempt: 1 }),
        verify: async (v) => expect(v).toMatchObject({ children: [{ id: child.id, status: 'completed', result: { n: 1 } }], nextCursor: null }),
      };
    },
  },
  'jobs.retryMany': {
    roles: ['admin'],
    otherQueue: 403,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q, status: 'failed', error_message: 'boom' });
      return {
        run: () => c.jobs.retryMany.mutate({ filter: { queue: Q, errorContains: 'boom' }, limit: 10 }),
        verify: async (v) => {
          expect(v).toMatchObject({ moved: 1 });
          expect((await readJob(env.t.db.pool, row.id)).status).toBe('pending');
        },
      };
    },
  },
  'jobs.cancelMany': {
    roles: ['admin'],
    otherQueue: 403,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return {
        run: () => c.jobs.cancelMany.mutate({ filter: { queue: Q }, limit: 10 }),
        verify: async (v) => {
          expect(v).toMatchObject({ moved: 1 });
          expect((await readJob(env.t.db.pool, row.id)).status).toBe('cancelled');
        },
      };
    },
  },
  'jobs.explain': {
    roles: ['producer'],
    otherQueue: 404,
    async call(c, env) {
      const row = await insertJob(env.t.db.pool, { queue: Q });
      return { run: () => c.jobs.explain.query({ id: row.id }), verify: async (v) => expect(v).toMatchObject({ id: row.id, status: 'pending' }) };
    },
  },
  'queues.list': {
    roles: ['admin'],
    // Allowed, but it sees only the queues the key may use.
    otherQueue: 'ok',
    async call(c, env) {
      await insertJob(env.t.db.pool, { queue: Q });
      await insertJob(env.t.db.pool, { queue: 'elsewhere' });
      return {
        run: () => c.queues.list.query({}),
        verify: async (v) => {
          const names = (v as { queues: Array<{ name: string }> }).queues.map((r) => r.name);
          expect(names).toEqual(env.caller === 'otherQueue' ? ['elsewhere'] : ['elsewhere', Q]);
        },
      };
    },
  },
  'queues.pause': {
    roles: ['admin'],
    otherQueue: 403,
    async call(c, env) {
      return {
        run: () => c.queues.pause.mutate({ queue: Q }),
        verify: async () => expect((await env.t.db.pool.query('SELECT paused FROM queues WHERE name = $1', [Q])).rows).toEqual([{ paused: true }]),
      };
    },
  },
  'queues.resume': {
    roles: ['admin'],
    otherQueue: 403,
    async call(c, env) {
      await env.t.db.pool.query(`INSERT INTO queues (name, paused) VALUES ($1, true) ON CONFLICT (name) DO UPDATE SET paused = true`, [Q]);
      return {
        run: () => c.queues.resume.mutate({ queue: Q }),
        verify: async () => expect((await env.t.db.pool.query('SELECT paused FROM queues WHERE name = $1', [Q])).rows).toEqual([{ paused: false }]),
      };
    },
  },
  'queues.configure': {
    roles: ['admin'],
    otherQueue: 403,
    async call(c, env) {
      return {
        run: () => c.queues.configure.mutate({ queue: Q, concurrency: 3 }),
        verify: async () => expect((await env.t.db.pool.query('SELECT concurrency FROM queues WHERE name = $1', [Q])).rows).toEqual([{ concurrency: 3 }]),
      };
    },
  },
  'workers.list': {
    roles: ['admin'],
    // Allowed, but it sees only the workers of jobs in queues the key may use.
    otherQueue: 'ok',
    async call(c, env) {
      await insertJob(env.t.db.pool, { queue: Q, status: 'processing', worker_id: 'w-orders', attempt: 1, lease_expires_at: lease() });
      await insertJob(env.t.db.pool, { queue: 'elsewhere', status: 'claimed', worker_id: 'w-elsewhere', attempt: 1, lease_expires_at: lease() });
      return {
        run: () => c.workers.list.query({}),
        verify: async (v) => {
          const ids = (v as { workers: Array<{ workerId: string }> }).workers.map((w) => w.workerId).sort();
          expect(ids).toEqual(env.caller === 'otherQueue' ? ['w-elsewhere'] : ['w-elsewhere', 'w-orders']);
        },
      };
    },
  },
  'events.jobs': {
    roles: ['producer'],
    otherQueue: 403,
    async call(_c, env) {
      return { run: () => subscribeOnce(env.t.url, env.authorization, { queues: [Q] }), verify: async (v) => expect(v).toBe('started') };
    },
  },
  health: {
    roles: ['anyone'],
    otherQueue: 'ok',
    async call(c) {
      return { run: () => c.health.query(), verify: async (v) => expect(v).toMatchObject({ ok: true }) };
    },
  },
};

function expected(procedure: ProcedureCase, caller: Caller): Outcome {
  if (procedure.roles.includes('anyone')) return 'ok';
  if (caller === 'none' || caller === 'malformed' || caller === 'revoked') return 401;
  if (caller === 'admin') return 'ok';
  if (caller === 'otherQueue') return procedure.otherQueue;
  return procedure.roles.includes(caller) ? 'ok' : 403;
}

const MATRIX = Object.entries(PROCEDURES).flatMap(([path, procedure]) =>
  CALLERS.map((caller) => ({ path, caller, outcome: expected(procedure, caller), procedure })),
);

describe('API keys over HTTP (requireAuth)', () => {
  let t: TestServer;
  const keys = {} as Record<'producer' | 'worker' | 'worker2' | 'admin' | 'otherQueue' | 'revoked', CreatedKey>;
  const clients = {} as Record<Caller, Client>;
  const holders = {} as Record<Caller, string>;
  const authorizations = {} as Record<Caller, string | undefined>;

  beforeAll(async () => {
    t = await startTestServer({ requireAuth: true });
    const pool = t.db.pool;
    keys.producer = await createApiKey(pool, { role: 'producer' });
    keys.worker = await createApiKey(pool, { role: 'worker' });
    keys.worker2 = await createApiKey(pool, { role: 'worker' });
    keys.admin = await createApiKey(pool, { role: 'admin' });
    keys.otherQueue = await createApiKey(pool, { role: 'admin', queues: ['elsewhere'] });
    keys.revoked = await createApiKey(pool, { role: 'admin' });
    await revokeApiKey(pool, keys.revoked.id);
    const bearer = (k: CreatedKey) => `Bearer ${k.key}`;
    clients.none = clientFor(t.url, undefined);
    clients.malformed = clientFor(t.url, 'Bearer not-a-skipq-key');
    for (const caller of ['producer', 'worker', 'admin', 'revoked'] as const) clients[caller] = clientFor(t.url, bearer(keys[caller]));
    clients.otherQueue = clientFor(t.url, bearer(keys.otherQueue));
    authorizations.none = undefined;
    authorizations.malformed = 'Bearer not-a-skipq-key';
    for (const caller of ['producer', 'worker', 'admin', 'revoked', 'otherQueue'] as const) authorizations[caller] = bearer(keys[caller]);
    for (const caller of CALLERS) holders[caller] = WORKER;
    for (const caller of ['producer', 'worker', 'admin', 'revoked'] as const) holders[caller] = `${keys[caller].id}/${WORKER}`;
    // The limited key cannot hold a job in `orders`: another worker key does.
    holders.otherQueue = `${keys.worker2.id}/${WORKER}`;
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue; DELETE FROM queues');
  });

  it('covers every procedure of the router', () => {
    const paths = Object.keys(PROCEDURES).sort();
    const routerPaths = Object.keys((appRouter as unknown as { _def: { procedures: Record<string, unknown> } })._def.procedures).sort();
    expect(paths).toEqual(routerPaths);
  });

  it.each(MATRIX)('$path as $caller: $outcome', async ({ procedure, caller, outcome }) => {
    const env: Env = { t, holder: holders[caller], caller, authorization: authorizations[caller] };
    const { run, verify } = await procedure.call(clients[caller], env);
    const before = outcome === 'ok' ? [] : await snapshot(t);
    const answer = await settle(run());
    if (outcome === 'ok') {
      expect(answer, JSON.stringify(answer)).toMatchObject({ ok: true });
      await verify((answer as { value: unknown }).value);
      return;
    }
    if (outcome === 'fenced') {
      // The key holds no such job: LEASE_LOST, or the job named as lost.
      if (answer.ok) await verify(answer.value);
      else expect(answer).toMatchObject({ status: 409, code: 'LEASE_LOST' });
    } else {
      expect(answer).toMatchObject({ ok: false, status: outcome, code: { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'JOB_NOT_FOUND' }[outcome] });
      const message = (answer as { message: string }).message;
      if (outcome === 401) expect(message).toMatch(caller === 'revoked' ? /revoked/ : /API key|skq_/);
      else if (outcome === 404) expect(message).toMatch(/^no job with id /);
      else if (caller === 'otherQueue') expect(message).toMatch(/queue "orders"/);
      else {
        // The role the procedure needs, named once: "producer" or "admin", "worker" or "admin", or "admin".
        const needs = procedure.roles.filter((r) => r !== 'admin');
        const phrase = needs.length === 0 ? '"admin"' : `"${needs[0]}" or "admin"`;
        expect(message).toBe(`this call needs a key with role ${phrase}; this key has role "${caller}"`);
      }
    }
    // A refused call changed nothing.
    expect(await snapshot(t)).toEqual(before);
  });

  it('refuses a key with a wrong secret, a bare key without Bearer, and Basic auth', async () => {
    const wrongSecret = keys.admin.key.slice(0, -4) + (keys.admin.key.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    // The key itself without "Bearer " was accepted before (issue 7.12): the scheme is required.
    for (const header of [`Bearer ${wrongSecret}`, `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer ', `Bearer skq_000000000000_${'A'.repeat(43)}`, keys.admin.key, `Token ${keys.admin.key}`, `Bearer${keys.admin.key}`]) {
      const answer = await settle(clientFor(t.url, header).jobs.list.query({}));
      expect(answer, header).toMatchObject({ ok: false, status: 401, code: 'UNAUTHORIZED' });
    }
    // The scheme is case-insensitive (RFC 9110).
    expect(await settle(clientFor(t.url, `bearer ${keys.admin.key}`).jobs.list.query({}))).toMatchObject({ ok: true });
  });

  it('a worker key completes only jobs it claimed: another worker key with the same workerId gets LEASE_LOST', async () => {
    await insertJob(t.db.pool, { queue: Q });
    const a = clients.worker;
    const b = clientFor(t.url, `Bearer ${keys.worker2.key}`);
    const { jobs: claimed } = await a.worker.claim.mutate({ workerId: WORKER, queues: [Q] });
    const job = claimed[0];
    if (!job) throw new Error('nothing claimed');
    const before = await readJob(t.db.pool, job.id);
    expect(before.worker_id).toBe(`${keys.worker.id}/${WORKER}`);
    const ref = { workerId: WORKER, id: job.id, attempt: job.attempt };
    expect(await settle(b.worker.complete.mutate({ ...ref, result: 'stolen' }))).toMatchObject({ ok: false, status: 409, code: 'LEASE_LOST', trpcCode: 'CONFLICT' });
    expect(await settle(b.worker.fail.mutate({ ...ref, error: 'x' }))).toMatchObject({ ok: false, status: 409, code: 'LEASE_LOST' });
    expect(await b.worker.completeMany.mutate({ workerId: WORKER, jobs: [{ id: job.id, attempt: job.attempt }] })).toEqual({ results: [{ id: job.id, outcome: 'lease_lost' }] });
    expect((await b.worker.heartbeat.mutate({ workerId: WORKER, jobs: [{ id: job.id, attempt: job.attempt }] })).lost).toEqual([job.id]);
    expect((await b.worker.start.mutate({ workerId: WORKER, jobs: [{ id: job.id, attempt: job.attempt }] })).lost).toEqual([job.id]);
    expect((await b.worker.release.mutate({ workerId: WORKER, jobs: [{ id: job.id, attempt: job.attempt }] })).released).toEqual([]);
    // Nor can it claim the job again: it is held.
    expect((await b.worker.claim.mutate({ workerId: WORKER, queues: [Q] })).jobs).toEqual([]);
    expect(await readJob(t.db.pool, job.id)).toEqual(before);
    // The holder still can.
    await a.worker.complete.mutate({ ...ref, result: 'mine' });
    expect(await readJob(t.db.pool, job.id)).toMatchObject({ status: 'completed', result: 'mine', worker_id: `${keys.worker.id}/${WORKER}` });
  });

  it('a worker key interrupts only its own waiting claims', async () => {
    const a = clients.worker;
    const b = clientFor(t.url, `Bearer ${keys.worker2.key}`);
    const started = Date.now();
    const waiting = a.worker.claim.mutate({ workerId: WORKER, waitMs: 1500 });
    await new Promise((r) => setTimeout(r, 100));
    await b.worker.interrupt.mutate({ workerId: WORKER });
    await new Promise((r) => setTimeout(r, 200));
    let settled = false;
    void waiting.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    await a.worker.interrupt.mutate({ workerId: WORKER });
    expect((await waiting).jobs).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1400);
  });

  it('revocation reaches the server through NOTIFY: calls are 401 within milliseconds, long before the 5 s cache expires', async () => {
    for (let i = 0; i < 5; i++) {
      const key = await createApiKey(t.db.pool, { role: 'producer', name: `short-lived ${i}` });
      const c = clientFor(t.url, `Bearer ${key.key}`);
      // Cached as valid first.
      expect(await settle(c.jobs.list.query({}))).toMatchObject({ ok: true });
      expect(await settle(c.jobs.list.query({}))).toMatchObject({ ok: true });
      expect(await revokeApiKey(t.db.pool, key.id)).toBe(true);
      // NOTIFY is delivered asynchronously: a call racing the delivery may still pass, for a few ms at most.
      const revokedAt = Date.now();
      let answer = await settle(c.jobs.list.query({}));
      while (answer.ok && Date.now() - revokedAt < 1000) answer = await settle(c.jobs.list.query({}));
      expect(answer, `round ${i}`).toMatchObject({ ok: false, status: 401, code: 'UNAUTHORIZED' });
      expect((answer as { message: string }).message).toContain(`API key ${key.id} was revoked`);
      expect(Date.now() - revokedAt).toBeLessThan(1000);
      // And it stays refused.
      expect(await settle(c.jobs.enqueue.mutate({ type: 'ingest', payload: 1, queue: Q }))).toMatchObject({ ok: false, status: 401 });
      expect(await countJobs(t.db.pool)).toBe(0);
      // Revoking twice answers false.
      expect(await revokeApiKey(t.db.pool, key.id)).toBe(false);
    }
  });

  it('a key created while the server runs works at once', async () => {
    const c = clientFor(t.url, `Bearer ${(await createApiKey(t.db.pool, { role: 'worker' })).key}`);
    expect(await settle(c.worker.claim.mutate({ workerId: WORKER }))).toMatchObject({ ok: true, value: { jobs: [] } });
  });
});

describe('listening beyond loopback', () => {
  it('refuses to start on 0.0.0.0 without a key, saying how to create one; starts with one', async () => {
    const db = await createTestDb();
    try {
      const options = { databaseUrl: db.url, host: '0.0.0.0', port: 0, maintenance: false, log: () => {} } as const;
      await expect(createQueueServer(options)).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without API keys.*npm run keys -- create --role admin/s);
      // A revoked key is no key.
      const old = await createApiKey(db.pool, { role: 'admin' });
      await revokeApiKey(db.pool, old.id);
      await expect(createQueueServer(options)).rejects.toThrow(/without API keys/);
      const key = await createApiKey(db.pool, { role: 'admin' });
      const server = await createQueueServer(options);
      try {
        expect(server.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/trpc$/);
        const url = `http://127.0.0.1:${server.port}/trpc`;
        expect(await clientFor(url, undefined).health.query()).toMatchObject({ ok: true });
        // Keys are required beyond loopback even without requireAuth.
        expect(await settle(clientFor(url, undefined).jobs.list.query({}))).toMatchObject({ ok: false, status: 401 });
        expect(await settle(clientFor(url, `Bearer ${key.key}`).jobs.list.query({}))).toMatchObject({ ok: true });
      } finally {
        await server.close();
      }
    } finally {
      await db.drop();
    }
  });
});
