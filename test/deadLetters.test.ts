import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { cancelManyInputSchema, LIMITS, MOVES, retryManyInputSchema } from '../shared/index.js';
import { createApiKey } from '../server/auth.js';
import { createProgram } from '../server/cli/program.js';
import type { AppRouter } from '../server/routers/_app.js';
import type { TaskRow } from '../server/queries/row.js';
import { insertJob, readJob, waitFor, type JobOverrides } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const HOUR = 3_600_000;
const T0 = new Date('2026-11-20T00:00:00Z');
const at = (hours: number) => new Date(T0.getTime() + hours * HOUR);

/** The code a refused call carries. */
async function refusal(call: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const data = error.data as { httpStatus: number; skipqCode: string };
    return { status: data.httpStatus, code: data.skipqCode, message: error.message };
  }
  throw new Error('expected the call to be refused');
}

describe('dead letters: failed jobs listed by filter and moved in bulk', () => {
  let t: TestServer;
  let trpc: ReturnType<typeof createTRPCClient<AppRouter>>;
  const clientWith = (key: string) => createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson, headers: { authorization: `Bearer ${key}` } })] });
  const dead = (error: string, overrides: JobOverrides = {}) =>
    insertJob(t.db.pool, { status: 'failed', error_message: error, failed_at: at(1), updated_at: at(1), retry_count: 3, attempt: 4, ...overrides });
  const all = async (): Promise<TaskRow[]> => (await t.db.pool.query<TaskRow>('SELECT * FROM task_queue ORDER BY id')).rows;

  beforeAll(async () => {
    t = await startTestServer({ requireAuth: true });
    trpc = clientWith((await createApiKey(t.db.pool, { role: 'admin' })).key);
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await t.db.pool.query('TRUNCATE task_queue, queues, queue_keys, queue_releases');
  });

  it('jobs.list filters by status, queue, type, error text and time ranges, and keeps its cursor', async () => {
    const a = await dead('ECONNRESET while fetching', { queue: 'ingest', task_type: 'fetch', created_at: at(-10) });
    const b = await dead('econnreset again', { queue: 'ingest', task_type: 'parse', created_at: at(-5), failed_at: at(5), updated_at: at(5) });
    const c = await dead('schema mismatch', { queue: 'mail', task_type: 'fetch', created_at: at(-1) });
    await insertJob(t.db.pool, { status: 'pending', queue: 'ingest', error_message: 'ECONNRESET (will retry)' });
    const done = await insertJob(t.db.pool, { status: 'completed', queue: 'ingest', completed_at: at(2), created_at: at(-20) });
    const ids = async (filter: Parameters<typeof trpc.jobs.list.query>[0]) => (await trpc.jobs.list.query(filter)).jobs.map((j) => j.id);

    expect(await ids({ status: 'failed' })).toEqual([c.id, b.id, a.id]);
    expect(await ids({ status: 'failed', queue: 'ingest' })).toEqual([b.id, a.id]);
    expect(await ids({ status: 'failed', type: 'fetch' })).toEqual([c.id, a.id]);
    // Case-insensitive substring of the last error; a live job's error counts too when no status is asked.
    expect(await ids({ status: 'failed', errorContains: 'ECONNreset' })).toEqual([b.id, a.id]);
    expect((await ids({ errorContains: 'econnreset' })).length).toBe(3);
    // Time ranges are [after, before): finished, and created.
    expect(await ids({ finishedAfter: at(1), finishedBefore: at(5) })).toEqual([done.id, c.id, a.id]);
    expect(await ids({ finishedAfter: at(1.5) })).toEqual([done.id, b.id]);
    expect(await ids({ createdBefore: at(-5) })).toEqual([done.id, a.id]);
    expect(await ids({ createdAfter: at(-5), createdBefore: at(0) })).toEqual([c.id, b.id]);
    // A live job has no finish time: no finished range matches it.
    expect(await ids({ status: 'pending', finishedBefore: at(1000) })).toEqual([]);

    // The cursor pages through the same filter.
    const first = await trpc.jobs.list.query({ status: 'failed', limit: 2 });
    expect(first.jobs.map((j) => j.id)).toEqual([c.id, b.id]);
    const second = await trpc.jobs.list.query({ status: 'failed', limit: 2, cursor: first.nextCursor ?? undefined });
    expect(second).toMatchObject({ jobs: [{ id: a.id, status: 'failed', error: 'ECONNRESET while fetching', queue: 'ingest', type: 'fetch' }], nextCursor: null });
  });

  it('errorContains matches % and _ as themselves', async () => {
    const percent = await dead('disk 100% full');
    await dead('disk 100 percent full');
    const under = await dead('bad_key');
    const upper = await dead('BAD_KEY again');
    await dead('badxkey');
    await dead('back\\slash');
    const ids = async (errorContains: string) => (await trpc.jobs.list.query({ errorContains })).jobs.map((j) => j.id).sort();
    expect(await ids('100%')).toEqual([percent.id]);
    expect(await ids('%')).toEqual([percent.id]);
    expect(await ids('bad_key')).toEqual([under.id, upper.id].sort());
    expect(await ids('_')).toEqual([under.id, upper.id].sort());
    expect(await ids('\\')).toHaveLength(1);
    expect(await ids('k\\s')).toHaveLength(1);
    // The same literal reading in a bulk move.
    expect(await trpc.jobs.retryMany.mutate({ filter: { errorContains: '%' }, limit: 10, dryRun: true })).toMatchObject({ matched: 1 });
  });

  it('retryMany re-queues exactly the matching failed jobs; every other job is left as it was', async () => {
    const match = [await dead('ECONNRESET', { queue: 'ingest' }), await dead('socket ECONNRESET by peer', { queue: 'ingest', task_type: 'parse' })];
    await dead('ECONNRESET', { queue: 'mail' });
    await dead('schema mismatch', { queue: 'ingest' });
    await insertJob(t.db.pool, { status: 'cancelled', queue: 'ingest', error_message: 'ECONNRESET' });
    await insertJob(t.db.pool, { status: 'completed', queue: 'ingest', error_message: 'ECONNRESET' });
    await insertJob(t.db.pool, { status: 'processing', queue: 'ingest', error_message: 'ECONNRESET' });
    const before = await all();

    const answer = await trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest', errorContains: 'econnreset' }, limit: 100 });
    expect(answer).toEqual({ dryRun: false, matched: 2, more: false, moved: 2, skipped: 0 });
    const after = await all();
    const moved = new Set(match.map((m) => m.id));
    for (const row of after) {
      const was = before.find((b) => b.id === row.id);
      if (moved.has(row.id)) expect(row).toMatchObject({ status: 'pending', retry_count: 0, failed_at: null, attempt: was?.attempt, error_message: was?.error_message });
      else expect(row, `${row.id} (${was?.status}, ${was?.queue})`).toEqual(was);
    }
    // Re-queued through the retry move: workers can claim them at once.
    const claimed = await trpc.worker.claim.mutate({ workerId: 'w', queues: ['ingest'], limit: 10 });
    expect(claimed.jobs.map((j) => j.id).sort()).toEqual([...moved].sort());
    // cancelled jobs are retried only when asked for.
    expect(await trpc.jobs.retryMany.mutate({ filter: { status: 'cancelled', queue: 'ingest' }, limit: 10 })).toMatchObject({ moved: 1 });
  });

  it('a dry run counts what would move and changes nothing; limit bounds both, and more says more match', async () => {
    for (let i = 0; i < 7; i++) await dead(`timeout ${i}`, { queue: 'ingest' });
    const before = await all();
    expect(await trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest' }, limit: 100, dryRun: true })).toEqual({ dryRun: true, matched: 7, more: false, moved: 0, skipped: 0 });
    expect(await trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest' }, limit: 5, dryRun: true })).toEqual({ dryRun: true, matched: 5, more: true, moved: 0, skipped: 0 });
    expect(await all()).toEqual(before);

    // limit: exactly that many move (the oldest first), and the rest on the next call.
    expect(await trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest' }, limit: 5 })).toEqual({ dryRun: false, matched: 5, more: true, moved: 5, skipped: 0 });
    const pending = (await all()).filter((r) => r.status === 'pending').map((r) => r.id);
    expect(pending).toEqual(before.slice(0, 5).map((r) => r.id));
    expect(await trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest' }, limit: 5 })).toEqual({ dryRun: false, matched: 2, more: false, moved: 2, skipped: 0 });
    expect(await trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest' }, limit: 5 })).toEqual({ dryRun: false, matched: 0, more: false, moved: 0, skipped: 0 });
  });

  it('moves more jobs than one batch (500) in one call', async () => {
    await t.db.pool.query(
      `INSERT INTO task_queue (task_type, payload, queue, status, failed_at, error_message)
       SELECT 'x', '{}', 'bulk', 'failed', now(), 'boom ' || g FROM generate_series(1, 1234) AS g`,
    );
    expect(await trpc.jobs.retryMany.mutate({ filter: { queue: 'bulk', errorContains: 'boom' }, limit: 1200 })).toEqual({ dryRun: false, matched: 1200, more: true, moved: 1200, skipped: 0 });
    const { rows } = await t.db.pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM task_queue GROUP BY status ORDER BY status`);
    expect(rows).toEqual([
      { status: 'failed', n: 34 },
      { status: 'pending', n: 1200 },
    ]);
  });

  it('skips a job that changed after it was picked: it is counted as skipped and left as the other change made it', async () => {
    const [first, second] = [await dead('flaky', { queue: 'ingest' }), await dead('flaky', { queue: 'ingest' })];
    // Another transaction holds the second job, and will make it fail again with another error.
    const other = await t.db.pool.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT 1 FROM task_queue WHERE id = $1 FOR UPDATE', [second?.id]);
      const call = trpc.jobs.retryMany.mutate({ filter: { queue: 'ingest', errorContains: 'flaky' }, limit: 10 });
      // The bulk move waits for that row's lock.
      await waitFor(async () => {
        const { rows } = await t.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%FOR UPDATE%'`);
        return rows.length > 0;
      }, 10_000, 'the bulk move to wait for the held row');
      await other.query(`UPDATE task_queue SET error_message = 'disk full', updated_at = now() WHERE id = $1`, [second?.id]);
      await other.query('COMMIT');
      expect(await call).toEqual({ dryRun: false, matched: 2, more: false, moved: 1, skipped: 1 });
    } finally {
      other.release();
    }
    expect(await readJob(t.db.pool, first?.id as string)).toMatchObject({ status: 'pending' });
    expect(await readJob(t.db.pool, second?.id as string)).toMatchObject({ status: 'failed', error_message: 'disk full' });
  });

  it('cancelMany cancels the matching live jobs only; dryRun counts them', async () => {
    const pending = [await insertJob(t.db.pool, { queue: 'ingest', task_type: 'reindex' }), await insertJob(t.db.pool, { queue: 'ingest', task_type: 'reindex' })];
    const running = await insertJob(t.db.pool, { queue: 'ingest', task_type: 'reindex', status: 'processing' });
    await insertJob(t.db.pool, { queue: 'ingest', task_type: 'other' });
    await insertJob(t.db.pool, { queue: 'mail', task_type: 'reindex' });
    await dead('x', { queue: 'ingest', task_type: 'reindex' });
    const before = await all();
    expect(await trpc.jobs.cancelMany.mutate({ filter: { queue: 'ingest', type: 'reindex' }, limit: 10, dryRun: true })).toMatchObject({ matched: 3, moved: 0 });
    expect(await all()).toEqual(before);
    expect(await trpc.jobs.cancelMany.mutate({ filter: { queue: 'ingest', type: 'reindex', status: 'pending' }, limit: 10 })).toEqual({ dryRun: false, matched: 2, more: false, moved: 2, skipped: 0 });
    for (const p of pending) expect(await readJob(t.db.pool, p.id)).toMatchObject({ status: 'cancelled', ended_by: 'cancel' });
    expect(await readJob(t.db.pool, running.id)).toMatchObject({ status: 'processing' });
    // Default: every status cancel moves from (pending, claimed, processing); the running job's holder learns at its next call.
    expect(await trpc.jobs.cancelMany.mutate({ filter: { type: 'reindex' }, limit: 10 })).toMatchObject({ matched: 2, moved: 2 });
    expect(await readJob(t.db.pool, running.id)).toMatchObject({ status: 'cancelled', worker_id: running.worker_id, attempt: running.attempt });
    const statuses = (await all()).map((r) => `${r.queue}/${r.task_type}:${r.status}`).sort();
    expect(statuses).toEqual(['ingest/other:pending', 'ingest/reindex:cancelled', 'ingest/reindex:cancelled', 'ingest/reindex:cancelled', 'ingest/reindex:failed', 'mail/reindex:cancelled']);
  });

  it('refuses a missing or too large limit, and statuses the move does not start from', async () => {
    expect(retryManyInputSchema.shape.filter.shape.status.parse(undefined)).toEqual(['failed']);
    // The statuses each bulk move takes are its move's own (shared/lifecycle.ts).
    expect(new Set([...MOVES.retry.from])).toEqual(new Set(['failed', 'cancelled']));
    expect(new Set([...MOVES.cancel.from])).toEqual(new Set(cancelManyInputSchema.shape.filter.shape.status.parse(undefined)));
    const bad = [
      () => trpc.jobs.retryMany.mutate({ filter: {} } as never),
      () => trpc.jobs.retryMany.mutate({ filter: {}, limit: LIMITS.bulkLimit + 1 }),
      () => trpc.jobs.retryMany.mutate({ filter: {}, limit: 0 }),
      () => trpc.jobs.retryMany.mutate({ filter: { status: 'pending' } as never, limit: 1 }),
      () => trpc.jobs.cancelMany.mutate({ filter: { status: 'failed' } as never, limit: 1 }),
      () => trpc.jobs.list.query({ errorContains: '' }),
    ];
    for (const call of bad) expect(await refusal(call())).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
  });

  it('a key limited to some queues moves only their jobs, and is refused another queue', async () => {
    const mine = await dead('boom', { queue: 'a' });
    await dead('boom', { queue: 'b' });
    const limited = clientWith((await createApiKey(t.db.pool, { role: 'admin', queues: ['a'] })).key);
    expect(await limited.jobs.retryMany.mutate({ filter: {}, limit: 10 })).toMatchObject({ matched: 1, moved: 1 });
    expect(await readJob(t.db.pool, mine.id)).toMatchObject({ status: 'pending' });
    expect(await refusal(limited.jobs.retryMany.mutate({ filter: { queue: 'b' }, limit: 10 }))).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect(await refusal(limited.jobs.cancelMany.mutate({ filter: { queue: 'b' }, limit: 10 }))).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    // A producer key may cancel one job, not thousands by filter.
    const producer = clientWith((await createApiKey(t.db.pool, { role: 'producer' })).key);
    expect(await refusal(producer.jobs.cancelMany.mutate({ filter: {}, limit: 1 }))).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect((await all()).filter((r) => r.status === 'failed').map((r) => r.queue)).toEqual(['b']);
  });

  it('skipq jobs retry --failed --queue --error-contains --limit [--dry-run] moves by filter', async () => {
    for (let i = 0; i < 3; i++) await dead('ECONNRESET', { queue: 'ingest' });
    await dead('other', { queue: 'ingest' });
    const key = (await createApiKey(t.db.pool, { role: 'admin' })).key;
    const run = async (args: string[]): Promise<string> => {
      const lines: string[] = [];
      const log = vi.spyOn(console, 'log').mockImplementation((line: unknown) => void lines.push(String(line)));
      try {
        await createProgram().exitOverride().parseAsync(['node', 'skipq', 'jobs', ...args, '--url', t.url, '--api-key', key]);
      } finally {
        log.mockRestore();
      }
      return lines.join('\n');
    };
    expect(await run(['retry', '--failed', '--queue', 'ingest', '--error-contains', 'econnreset', '--limit', '2', '--dry-run'])).toBe('would retry 2 jobs (more match beyond --limit)');
    expect((await all()).every((r) => r.status === 'failed')).toBe(true);
    expect(await run(['retry', '--failed', '--queue', 'ingest', '--error-contains', 'econnreset', '--limit', '10'])).toBe('retried 3 jobs');
    expect((await all()).map((r) => r.status).sort()).toEqual(['failed', 'pending', 'pending', 'pending']);
    expect(await run(['cancel', '--queue', 'ingest', '--limit', '10'])).toBe('cancelled 3 jobs');
    // Without ids, a filter needs --limit.
    await expect(run(['retry', '--queue', 'ingest'])).rejects.toThrow(/give --limit N/);
  });
});
