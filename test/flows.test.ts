import { TRPCClientError } from '@trpc/client';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, InvalidPayloadError, JobFailedError, PermanentError, type ChildResult, type Worker } from '../client/index.js';
import { createJobId, defineJobs, FLOW_HOLD, LIMITS, type FlowInput } from '../shared/index.js';
import { countJobs, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  part: { payload: z.object({ n: z.number().int() }), result: z.object({ square: z.number().int() }), maxRetries: 0 },
  report: { payload: z.object({ name: z.string() }), result: z.object({ total: z.number().int(), children: z.number().int() }) },
  broken: { payload: z.object({ why: z.string() }), maxRetries: 0 },
  wait: { payload: z.object({}) },
});

type Child = ChildResult<typeof jobs>;

function codeOf(error: unknown): { status?: number; code?: string; issues?: Array<{ path: PropertyKey[] }> } {
  if (!(error instanceof TRPCClientError)) throw error;
  const data = error.data as { httpStatus: number; skipqCode: string; issues?: Array<{ path: PropertyKey[] }> };
  return { status: data.httpStatus, code: data.skipqCode, ...(data.issues ? { issues: data.issues } : {}) };
}

describe('flows', () => {
  let t: TestServer;
  const workers: Worker[] = [];
  const queue = () => createQueueClient({ url: t.url, jobs });
  /** Parent runs and what each saw in ctx.children(). */
  let reports: Array<{ id: string; children: Child[] }> = [];
  /** Which worker ran each `part`. */
  let ranOn: Map<string, string> = new Map();
  /** `part` handlers that returned so far, and how many had when each `report` handler began. */
  let partsReturned = 0;
  let partsReturnedWhenParentStarted: number[] = [];

  const spawn = (name: string, extra: { leaseMs?: number } = {}) => {
    const w = createWorker({
      url: t.url,
      jobs,
      workerId: name,
      concurrency: 4,
      waitMs: 500,
      ...extra,
      handlers: {
        part: async ({ n }, ctx) => {
          ranOn.set(ctx.id, name);
          // Long enough that 4 workers share 50 children.
          await new Promise((r) => setTimeout(r, 5));
          partsReturned++;
          return { square: n * n };
        },
        report: async (_payload, ctx) => {
          partsReturnedWhenParentStarted.push(partsReturned);
          const children = await ctx.children();
          reports.push({ id: ctx.id, children });
          const total = children.reduce((sum, c) => sum + (c.type === 'part' && c.result ? c.result.square : 0), 0);
          return { total, children: children.length };
        },
        broken: async ({ why }) => {
          throw new PermanentError(why);
        },
        // Runs until cancelled.
        wait: (_payload, ctx) =>
          new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
          }),
      },
    });
    workers.push(w);
    w.start();
    return w;
  };

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.stop();
  });
  beforeEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.db.pool.query('DELETE FROM task_queue');
    reports = [];
    ranOn = new Map();
    partsReturned = 0;
    partsReturnedWhenParentStarted = [];
  });

  it('runs the parent once, after the last of its 50 children (run on 4 workers), with all 50 results', { timeout: 60_000 }, async () => {
    const q = queue();
    for (const name of ['w1', 'w2', 'w3', 'w4']) spawn(name);
    const flow = await q.enqueueFlow({
      parent: { type: 'report', payload: { name: 'squares' } },
      children: Array.from({ length: 50 }, (_, n) => ({ type: 'part' as const, payload: { n } })),
    });
    expect(flow).toMatchObject({ type: 'report', created: true });
    expect(flow.children).toHaveLength(50);

    const result = await q.result(flow.id, { timeoutMs: 30_000 });
    const expected = Array.from({ length: 50 }, (_, n) => n * n).reduce((a, b) => a + b, 0);
    expect(result).toEqual({ total: expected, children: 50 });

    expect(reports).toHaveLength(1);
    const seen = reports[0]!.children;
    expect(seen.map((c) => c.id)).toEqual(flow.children.map((c) => c.id));
    expect(seen.every((c) => c.status === 'completed')).toBe(true);
    expect(seen.map((c) => (c.type === 'part' ? c.result?.square : null))).toEqual(Array.from({ length: 50 }, (_, n) => n * n));
    // Real workers shared the children.
    expect(new Set(ranOn.values()).size).toBeGreaterThan(1);

    // The parent's handler began only once every child's handler had returned, and ran once.
    // (Timestamps of the rows would not show it: each is its statement's start, and a
    // statement may start, wait for the parent's row lock, and commit after a later one.)
    expect(partsReturnedWhenParentStarted).toEqual([50]);
    expect((await readJob(t.db.pool, flow.id)).attempt).toBe(1);
    await q.close();
  });

  it('jobs.explain says WAITING_FOR_CHILDREN with the counts, until the last child finishes', async () => {
    const q = queue();
    const flow = await q.enqueueFlow({ parent: { type: 'report', payload: { name: 'x' } }, children: [1, 2, 3].map((n) => ({ type: 'part' as const, payload: { n } })) });
    const before = await q.explain(flow.id);
    expect(before).toMatchObject({ status: 'pending', runnable: false });
    expect(before.reasons).toHaveLength(1);
    expect(before.reasons[0]).toMatchObject({ code: 'WAITING_FOR_CHILDREN', children: { total: 3, left: 3, byStatus: { pending: 3, completed: 0 } } });
    expect(before.reasons[0]!.message).toMatch(/waits for 3 of its 3 children/);
    // A waiting parent is pending and never due: no claim takes it.
    expect((await q.get(flow.id)).scheduledFor).toEqual(FLOW_HOLD);

    // One child completes through the API, by hand.
    const { jobs: claimed } = await t.trpc.worker.claim.mutate({ workerId: 'hand', types: ['part'], limit: 1 });
    expect(claimed.map((j) => j.type)).toEqual(['part']);
    await t.trpc.worker.complete.mutate({ workerId: 'hand', id: claimed[0]!.id, attempt: 1, result: { square: 1 } });
    const during = await q.explain(flow.id);
    expect(during.reasons[0]).toMatchObject({ code: 'WAITING_FOR_CHILDREN', children: { total: 3, left: 2, byStatus: { pending: 2, completed: 1 } } });

    // The other two: the parent becomes runnable at once.
    const { jobs: rest } = await t.trpc.worker.claim.mutate({ workerId: 'hand', limit: 10 });
    expect(rest.map((j) => j.type)).toEqual(['part', 'part']);
    await t.trpc.worker.completeMany.mutate({ workerId: 'hand', jobs: rest.map((j) => ({ id: j.id, attempt: j.attempt, result: { square: 0 } })) });
    expect(await q.explain(flow.id)).toMatchObject({ runnable: true, reasons: [{ code: 'READY' }] });
    const { jobs: parent } = await t.trpc.worker.claim.mutate({ workerId: 'hand', limit: 10 });
    expect(parent.map((j) => j.id)).toEqual([flow.id]);
    await q.close();
  });

  it("a failing child fails its parent at once (onChildFailure 'fail', the default), naming the child; its siblings still run", async () => {
    const q = queue();
    spawn('w1');
    const flow = await q.enqueueFlow({
      parent: { type: 'report', payload: { name: 'doomed' } },
      children: [
        { type: 'part', payload: { n: 2 } },
        { type: 'broken', payload: { why: 'source is gone' } },
        { type: 'part', payload: { n: 3 } },
      ],
    });
    const bad = flow.children[1]!.id;
    const error = await q.result(flow.id, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as JobFailedError).errorCode).toBe('CHILD_FAILED');
    expect((error as JobFailedError).lastError).toBe(`child ${bad} (broken) failed: PermanentError: source is gone`);
    // Never ran, no retry.
    expect(reports).toEqual([]);
    expect(await readJob(t.db.pool, flow.id)).toMatchObject({ status: 'failed', attempt: 0, retry_count: 0 });
    // The other children are not stopped: they complete, and the failed parent stays failed.
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === 2, 10_000, 'the siblings to complete');
    expect((await readJob(t.db.pool, flow.id)).status).toBe('failed');
    await q.close();
  });

  it("under onChildFailure 'continue' the parent runs once every child is finished, and sees the failed one", async () => {
    const q = queue();
    spawn('w1');
    const flow = await q.enqueueFlow({
      parent: { type: 'report', payload: { name: 'partial' }, onChildFailure: 'continue' },
      children: [
        { type: 'part', payload: { n: 4 } },
        { type: 'broken', payload: { why: 'one bad apple' } },
      ],
    });
    expect(await q.result(flow.id, { timeoutMs: 10_000 })).toEqual({ total: 16, children: 2 });
    const seen = reports[0]!.children;
    expect(seen.map((c) => [c.type, c.status])).toEqual([
      ['part', 'completed'],
      ['broken', 'failed'],
    ]);
    expect(seen[1]).toMatchObject({ result: null, error: 'PermanentError: one bad apple', errorCode: 'HANDLER_ERROR' });
    await q.close();
  });

  it('cancelling a parent cancels its live children and grandchildren (running ones see their signal)', async () => {
    const q = queue();
    spawn('w1', { leaseMs: 1500 });
    const flow = await q.enqueueFlow({
      parent: { type: 'report', payload: { name: 'stop me' } },
      children: [
        { type: 'wait', payload: {} },
        { type: 'wait', payload: {} },
        { type: 'part', payload: { n: 5 } },
        { parent: { type: 'report', payload: { name: 'inner' } }, children: [{ type: 'wait', payload: {} }, { type: 'part', payload: { n: 6 }, delayMs: 3_600_000 }] },
      ],
    });
    // Three `wait` jobs running, the plain part done.
    await waitFor(async () => (await countJobs(t.db.pool, 'processing')) + (await countJobs(t.db.pool, 'claimed')) === 3, 10_000, 'the waits to run');
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === 1, 10_000, 'the part to complete');
    const cancelled = await q.cancel(flow.id);
    expect(cancelled.status).toBe('cancelled');
    const { rows } = await t.db.pool.query<{ task_type: string; status: string }>('SELECT task_type, status FROM task_queue ORDER BY id');
    expect(rows.map((r) => `${r.task_type}:${r.status}`).sort()).toEqual(
      ['report:cancelled', 'report:cancelled', 'wait:cancelled', 'wait:cancelled', 'wait:cancelled', 'part:completed', 'part:cancelled'].sort(),
    );
    // The running children's attempts ended as cancelled; their worker learns at its next heartbeat.
    const attempts = await t.db.pool.query<{ outcome: string }>(`SELECT a.outcome FROM job_attempts a JOIN task_queue t ON t.id = a.job_id WHERE t.task_type = 'wait'`);
    expect(attempts.rows.map((r) => r.outcome)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    await waitFor(() => workers[0]!.running === 0, 5000, 'the handlers to be aborted');
    await q.close();
  });

  it('runs a nested tree bottom-up: each parent after its own children, the root last', { timeout: 30_000 }, async () => {
    const q = queue();
    spawn('w1');
    spawn('w2');
    const flow = await q.enqueueFlow({
      parent: { type: 'report', payload: { name: 'root' } },
      children: [
        { type: 'part', payload: { n: 1 } },
        {
          parent: { type: 'report', payload: { name: 'middle' } },
          children: [
            { type: 'part', payload: { n: 2 } },
            { parent: { type: 'report', payload: { name: 'bottom' } }, children: [{ type: 'part', payload: { n: 3 } }] },
          ],
        },
        { type: 'part', payload: { n: 4 } },
      ],
    });
    const [, middle] = flow.children;
    expect(middle!.children).toHaveLength(2);
    const bottom = middle!.children[1]!;
    expect(await q.result(flow.id, { timeoutMs: 20_000 })).toEqual({ total: 1 + 16, children: 3 });
    expect(reports.map((r) => r.id)).toEqual([bottom.id, middle!.id, flow.id]);
    // The root sees its direct children: two parts and the middle report, with its typed result.
    const root = reports[2]!.children;
    expect(root.map((c) => c.type)).toEqual(['part', 'report', 'part']);
    const mid = root[1]!;
    expect(mid.type === 'report' ? mid.result : null).toEqual({ total: 4, children: 2 });
    // Every part (4 of them) had returned before the root began; the bottom report began after its one part.
    expect(partsReturnedWhenParentStarted.at(-1)).toBe(4);
    await q.close();
  });

  it('refuses the whole flow for one bad child payload, and stores nothing', async () => {
    const flow = (bad: unknown): FlowInput => ({
      parent: { type: 'report', payload: { name: 'x' } },
      children: [
        { type: 'part', payload: { n: 1 } },
        { parent: { type: 'report', payload: { name: 'y' } }, children: [{ type: 'part', payload: { n: 2 } }, { type: 'part', payload: bad }] },
      ],
    });
    const refused = codeOf(await t.trpc.jobs.enqueueFlow.mutate(flow({ n: 'two' })).catch((e: unknown) => e));
    expect(refused).toMatchObject({ status: 400, code: 'INVALID_PAYLOAD' });
    expect(refused.issues?.[0]?.path).toEqual(['children', 1, 'children', 1, 'payload', 'n']);
    expect(await countJobs(t.db.pool)).toBe(0);

    // The producer client refuses it before sending, naming the place too.
    const q = queue();
    const local = await q.enqueueFlow(flow({ n: 'two' }) as never).catch((e: unknown) => e);
    expect(local).toBeInstanceOf(InvalidPayloadError);
    expect((local as InvalidPayloadError).issues[0]?.path).toEqual(['children', 1, 'children', 1, 'payload', 'n']);
    // An unknown type is refused the same way.
    expect(codeOf(await t.trpc.jobs.enqueueFlow.mutate({ parent: { type: 'report', payload: { name: 'x' } }, children: [{ type: 'nope', payload: {} }] }).catch((e: unknown) => e))).toMatchObject({ code: 'UNKNOWN_JOB_TYPE' });
    expect(await countJobs(t.db.pool)).toBe(0);
    await q.close();
  });

  it('bounds a flow: at most LIMITS.flowJobs jobs and LIMITS.flowDepth levels; a parent takes no runAt; ids are its own', async () => {
    const refusal = async (input: FlowInput) => codeOf(await t.trpc.jobs.enqueueFlow.mutate(input).catch((e: unknown) => e));
    const part = { type: 'part', payload: { n: 1 } };
    const wide: FlowInput = { parent: { type: 'report', payload: { name: 'w' } }, children: [{ parent: { type: 'report', payload: { name: 'v' } }, children: Array.from({ length: LIMITS.flowJobs - 1 }, () => part) }] };
    expect(await refusal(wide)).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    // Parents on levels 1 to 4, a job on level 5: five levels pass...
    let deep: FlowInput = { parent: { type: 'report', payload: { name: 'l4' } }, children: [part] };
    for (let level = 3; level >= 1; level--) deep = { parent: { type: 'report', payload: { name: `l${level}` } }, children: [deep] };
    const ok = await t.trpc.jobs.enqueueFlow.mutate(deep);
    expect(ok.created).toBe(true);
    expect(await countJobs(t.db.pool)).toBe(5);
    // ...six do not.
    expect(await refusal({ parent: { type: 'report', payload: { name: 'l0' } }, children: [deep] })).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    expect(await refusal({ parent: { type: 'report', payload: { name: 'x' }, runAt: new Date() }, children: [part] })).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    const id = createJobId();
    expect(await refusal({ parent: { type: 'report', payload: { name: 'x' } }, children: [{ ...part, id }, { ...part, id }] })).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    expect(await countJobs(t.db.pool)).toBe(5);
  });

  it('answers a repeated flow (same ids, reply lost) with the flow it made, and refuses ids of other jobs', async () => {
    const input: FlowInput = {
      parent: { type: 'report', payload: { name: 'once' }, id: createJobId() },
      children: [{ type: 'part', payload: { n: 1 }, id: createJobId() }, { type: 'part', payload: { n: 2 }, id: createJobId() }],
    };
    const first = await t.trpc.jobs.enqueueFlow.mutate(input);
    const again = await t.trpc.jobs.enqueueFlow.mutate(input);
    expect(first.created).toBe(true);
    expect(again).toEqual({ ...first, created: false, children: first.children.map((c) => ({ ...c, created: false })) });
    expect(await countJobs(t.db.pool)).toBe(3);
    // A child id reused in another flow is a conflict, and that flow stores nothing.
    const other: FlowInput = { parent: { type: 'report', payload: { name: 'two' } }, children: [{ type: 'part', payload: { n: 1 }, id: first.children[0]!.id }] };
    expect(codeOf(await t.trpc.jobs.enqueueFlow.mutate(other).catch((e: unknown) => e))).toMatchObject({ status: 409, code: 'JOB_ID_CONFLICT' });
    expect(await countJobs(t.db.pool)).toBe(3);
  });

  it('a child retried after its parent failed runs again, and the parent stays failed', async () => {
    const q = queue();
    const flow = await q.enqueueFlow({ parent: { type: 'report', payload: { name: 'p' } }, children: [{ type: 'broken', payload: { why: 'first' } }, { type: 'part', payload: { n: 1 } }] });
    const { jobs: claimed } = await t.trpc.worker.claim.mutate({ workerId: 'hand', types: ['broken'], limit: 1 });
    await t.trpc.worker.fail.mutate({ workerId: 'hand', id: claimed[0]!.id, attempt: 1, error: 'nope', retry: false });
    expect(await readJob(t.db.pool, flow.id)).toMatchObject({ status: 'failed', error_code: 'CHILD_FAILED', children_left: 1 });
    await t.trpc.jobs.retry.mutate({ id: claimed[0]!.id });
    const { jobs: again } = await t.trpc.worker.claim.mutate({ workerId: 'hand', types: ['broken'], limit: 1 });
    await t.trpc.worker.complete.mutate({ workerId: 'hand', id: again[0]!.id, attempt: again[0]!.attempt });
    expect(await readJob(t.db.pool, flow.id)).toMatchObject({ status: 'failed', children_left: 1 });
    // jobs.children shows where each child stands; an admin who wants the parent to run retries it (it runs at once).
    const { children } = await t.trpc.jobs.children.query({ id: flow.id });
    expect(children.map((c) => c.status)).toEqual(['completed', 'pending']);
    expect((await q.retry(flow.id)).status).toBe('pending');
    expect(await q.explain(flow.id)).toMatchObject({ runnable: true });
    await q.close();
  });

  it('a handler reading its children after its attempt ended gets LEASE_LOST, and a stranger gets nothing', async () => {
    const q = queue();
    const flow = await q.enqueueFlow({ parent: { type: 'report', payload: { name: 'p' } }, children: [{ type: 'part', payload: { n: 1 } }] });
    const { jobs: child } = await t.trpc.worker.claim.mutate({ workerId: 'hand', limit: 1 });
    await t.trpc.worker.complete.mutate({ workerId: 'hand', id: child[0]!.id, attempt: 1, result: { square: 1 } });
    const { jobs: parent } = await t.trpc.worker.claim.mutate({ workerId: 'hand', limit: 1 });
    expect(parent[0]!.id).toBe(flow.id);
    const mine = await t.trpc.worker.children.query({ workerId: 'hand', id: flow.id, attempt: 1 });
    expect(mine.children).toMatchObject([{ id: child[0]!.id, status: 'completed', result: { square: 1 } }]);
    expect(codeOf(await t.trpc.worker.children.query({ workerId: 'stranger', id: flow.id, attempt: 1 }).catch((e: unknown) => e))).toMatchObject({ status: 409, code: 'LEASE_LOST' });
    await q.cancel(flow.id);
    expect(codeOf(await t.trpc.worker.children.query({ workerId: 'hand', id: flow.id, attempt: 1 }).catch((e: unknown) => e))).toMatchObject({ status: 409, code: 'JOB_CANCELLED' });
    await q.close();
  });
});

// Its own server, closed before the deadlock counter is read: each backend
// flushes its statistics late, at the latest when it exits (as in deadlock.test.ts).
describe('cancelling a flow under load', () => {
  it('never deadlocks with 4 workers completing its children, and leaves every child finished', { timeout: 90_000 }, async () => {
    const t = await startTestServer({ jobs, pollIntervalMs: 50 });
    const workers = ['w1', 'w2', 'w3', 'w4'].map((name) =>
      createWorker({
        url: t.url,
        jobs,
        workerId: name,
        concurrency: 4,
        waitMs: 500,
        // Heartbeats every 500 ms: a cancelled `wait` frees its slot soon.
        leaseMs: 1500,
        handlers: {
          part: async ({ n }) => {
            await new Promise((r) => setTimeout(r, 2));
            return { square: n * n };
          },
          report: async () => {
            throw new Error('a cancelled parent never runs');
          },
          wait: (_payload, ctx) =>
            new Promise((_resolve, reject) => {
              ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
            }),
        },
      }),
    );
    const q = createQueueClient({ url: t.url, jobs });
    try {
      const before = await settledDeadlocks(t);
      for (const w of workers) w.start();
      for (let round = 0; round < 5; round++) {
        const flow = await q.enqueueFlow({
          parent: { type: 'report', payload: { name: `race ${round}` } },
          // Two children that run until cancelled: the cancel always meets live children, whatever the parts' pace.
          children: [...Array.from({ length: 400 }, (_, n) => ({ type: 'part' as const, payload: { n } })), { type: 'wait' as const, payload: {} }, { type: 'wait' as const, payload: {} }],
        });
        const done = async () => (await t.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_queue WHERE parent_id = $1 AND status = 'completed'`, [flow.id])).rows[0]!.n;
        await waitFor(async () => (await done()) > 20 + round * 40, 20_000, 'children to complete');
        expect((await q.cancel(flow.id)).status).toBe('cancelled');
        const { rows } = await t.db.pool.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM task_queue WHERE parent_id = $1 GROUP BY status', [flow.id]);
        const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
        // Every child is finished: completed before the cancel reached it, or cancelled (running ones too).
        expect(Object.keys(by).sort()).toEqual(['cancelled', 'completed']);
        expect((by.completed ?? 0) + (by.cancelled ?? 0)).toBe(402);
        expect(by.cancelled).toBeGreaterThanOrEqual(2);
      }
      await Promise.all(workers.map((w) => w.stop()));
      await t.server.close();
      expect((await settledDeadlocks(t)) - before).toBe(0);
      expect(await countJobs(t.db.pool, 'failed')).toBe(0);
    } finally {
      await q.close();
      await t.db.drop();
    }
  });
});

/** The database's deadlock counter once it stops moving (statistics are flushed late). */
async function settledDeadlocks(t: TestServer): Promise<number> {
  let last = -1;
  for (let i = 0; i < 30; i++) {
    await t.db.pool.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await t.db.pool.query<{ d: string }>('SELECT deadlocks AS d FROM pg_stat_database WHERE datname = current_database()');
    const now = Number(rows[0]?.d ?? 0);
    if (now === last) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}
