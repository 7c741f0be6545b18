import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, type QueueClient } from '../client/index.js';
import { tickJobId } from '../server/schedules.js';
import { cronJobs } from './support/cronJobs.js';
import { createTestDb, type TestDb } from './support/db.js';
import { killChildren, spawnServer } from './support/processes.js';
import { startTestServer, type TestServer } from './support/server.js';

const START = new Date('2031-03-01T12:00:00.500Z');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Row = { id: string; scheduled_for: Date; task_type: string; queue: string; payload: unknown; status: string };
const jobsOf = async (pool: TestDb['pool'], type: string): Promise<Row[]> =>
  (await pool.query<Row>('SELECT id, scheduled_for, task_type, queue, payload, status FROM task_queue WHERE task_type = $1 ORDER BY scheduled_for', [type])).rows;

describe('cron schedules (clock)', () => {
  let t: TestServer;
  let queue: QueueClient<typeof cronJobs>;
  let clock = START;
  const travel = (ms: number) => {
    clock = new Date(clock.getTime() + ms);
  };
  beforeAll(async () => {
    t = await startTestServer({ jobs: cronJobs, now: () => clock });
    queue = createQueueClient({ url: t.url, jobs: cronJobs });
  });
  afterAll(async () => {
    await queue.close();
    await t.stop();
  });
  beforeEach(async () => {
    clock = START;
    await t.db.pool.query('DELETE FROM task_queue');
    await t.db.pool.query("DELETE FROM schedules WHERE source = 'api'");
    // The registry's schedule ticks every second; tests here use their own.
    await queue.schedules.pause('every-second');
  });

  it('upserts registry schedules at start and lists every schedule with its next 3 runs', async () => {
    await queue.schedules.upsert({ name: 'hourly', type: 'report', cron: '0 * * * *', timezone: 'Europe/Zagreb', payload: { kind: 'hourly' } });
    const list = await queue.schedules.list();
    expect(list.map((s) => [s.name, s.source])).toEqual([['every-second', 'registry'], ['hourly', 'api']]);
    const hourly = list.find((s) => s.name === 'hourly');
    expect(hourly?.nextRuns).toEqual([new Date('2031-03-01T13:00:00Z'), new Date('2031-03-01T14:00:00Z'), new Date('2031-03-01T15:00:00Z')]);
    expect(list.find((s) => s.name === 'every-second')?.nextRuns).toEqual([]);
  });

  it('reads the cron in its time zone across a DST change (parser), 5 and 6 fields', async () => {
    // Europe/Zagreb moves to summer time on 2031-03-30: 02:30 local does not exist that night.
    clock = new Date('2031-03-28T12:00:00Z');
    const s = await queue.schedules.upsert({ name: 'night', type: 'report', cron: '30 2 * * *', timezone: 'Europe/Zagreb', payload: { kind: 'daily' } });
    expect(s.nextRuns).toEqual([new Date('2031-03-29T01:30:00Z'), new Date('2031-03-30T01:00:00Z'), new Date('2031-03-31T00:30:00Z')]);
    const six = await queue.schedules.upsert({ name: 'six', type: 'report', cron: '15 30 2 * * *', payload: { kind: 'daily' } });
    expect(six.nextRuns[0]).toEqual(new Date('2031-03-29T02:30:15Z'));
  });

  it('refuses a bad cron, time zone or payload, and an unknown type', async () => {
    await expect(queue.schedules.upsert({ name: 'bad', type: 'report', cron: '* * *', payload: { kind: 'daily' } })).rejects.toThrow(/cron "\* \* \*" is not valid/);
    await expect(queue.schedules.upsert({ name: 'bad', type: 'report', cron: '* * * * *', timezone: 'Mars/Olympus', payload: { kind: 'daily' } })).rejects.toThrow(/time zone/);
    await expect(queue.schedules.upsert({ name: 'bad', type: 'report', cron: '* * * * *', payload: { kind: 'weekly' } as never })).rejects.toThrow(/payload of "report" is invalid/);
    await expect(t.trpc.schedules.upsert.mutate({ name: 'bad', type: 'nope', cron: '* * * * *', payload: {} })).rejects.toThrow(/unknown job type "nope"/);
    expect((await queue.schedules.list()).map((s) => s.name)).not.toContain('bad');
  });

  it('enqueues one job per tick, whose id is derived from schedule and tick, and a second leader makes none', async () => {
    await queue.schedules.upsert({ name: 'minutely', type: 'digest', cron: '* * * * *', payload: { to: 'ops' } });
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 0, skipped: 0 });
    travel(60_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 1, skipped: 0 });
    const [job] = await jobsOf(t.db.pool, 'digest');
    const tick = new Date('2031-03-01T12:01:00Z');
    expect(job).toMatchObject({ id: tickJobId('minutely', tick), scheduled_for: tick, queue: 'default', payload: { to: 'ops' }, status: 'pending' });
    // A leader that read the schedule before the first committed produces the same tick: same id, nothing new.
    await t.db.pool.query("UPDATE schedules SET next_run_at = $1 WHERE name = 'minutely'", [tick]);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 0, skipped: 1 });
    expect(await jobsOf(t.db.pool, 'digest')).toHaveLength(1);
  });

  it("a tick's id is a UUID v7 of the tick's time, the same for the same (schedule, tick) and different otherwise, so jobs.list puts it in time order among the client's ids", async () => {
    const tick = new Date('2031-03-01T12:01:00Z');
    const id = tickJobId('minutely', tick);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(tick.getTime());
    expect(tickJobId('minutely', new Date(tick))).toBe(id);
    expect(tickJobId('hourly', tick)).not.toBe(id);
    expect(tickJobId('minutely', new Date(tick.getTime() + 60_000))).not.toBe(id);
    // Newest first: a tick between two enqueues sorts between them.
    const before = await queue.enqueue('digest', { to: 'before' });
    await new Promise((r) => setTimeout(r, 5));
    const at = new Date();
    await t.db.pool.query(`INSERT INTO task_queue (id, task_type, payload, queue) VALUES ($1, 'digest', '{"to":"tick"}', 'default')`, [tickJobId('minutely', at)]);
    await new Promise((r) => setTimeout(r, 5));
    const after = await queue.enqueue('digest', { to: 'after' });
    const listed = (await queue.list({ type: 'digest' })).jobs.map((j) => j.id);
    expect(listed.filter((j) => [before.id, after.id, tickJobId('minutely', at)].includes(j))).toEqual([after.id, tickJobId('minutely', at), before.id]);
  });

  it('pause stops ticks, resume starts from the next tick after now, remove deletes', async () => {
    await queue.schedules.upsert({ name: 'minutely', type: 'digest', cron: '* * * * *', payload: { to: 'ops' } });
    expect((await queue.schedules.pause('minutely')).nextRuns).toEqual([]);
    travel(180_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 0, skipped: 0 });
    const resumed = await queue.schedules.resume('minutely');
    expect(resumed.paused).toBe(false);
    expect(resumed.nextRuns[0]).toEqual(new Date('2031-03-01T12:04:00Z'));
    travel(60_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 1, skipped: 0 });
    await queue.schedules.remove('minutely');
    await expect(queue.schedules.remove('minutely')).rejects.toThrow(/no schedule named "minutely"/);
    await expect(queue.schedules.pause('minutely')).rejects.toThrow(/no schedule named/);
    travel(60_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 0, skipped: 0 });
  });

  it('after a 1-minute outage: catchUp skip drops missed ticks, latest runs the newest, all runs each', async () => {
    for (const catchUp of ['skip', 'latest', 'all'] as const) {
      await queue.schedules.upsert({ name: `every-15s-${catchUp}`, type: 'digest', cron: '*/15 * * * * *', payload: { to: catchUp }, catchUp });
    }
    // No leader runs for a minute: ticks :15, :30, :45, 12:01:00 are due, the last 0.5 s ago.
    travel(60_000);
    await t.server.maintenance.tickSchedules();
    const ticksOf = async (to: string) =>
      (await jobsOf(t.db.pool, 'digest')).filter((j) => (j.payload as { to: string }).to === to).map((j) => j.scheduled_for.toISOString());
    // 12:01:00 is on time (0.5 s late): it runs under every policy.
    expect(await ticksOf('skip')).toEqual(['2031-03-01T12:01:00.000Z']);
    expect(await ticksOf('latest')).toEqual(['2031-03-01T12:01:00.000Z']);
    expect(await ticksOf('all')).toEqual(['2031-03-01T12:00:15.000Z', '2031-03-01T12:00:30.000Z', '2031-03-01T12:00:45.000Z', '2031-03-01T12:01:00.000Z']);

    // Another outage ending between ticks (12:01:00.5 -> 12:02:10.5): the newest missed tick is 12:02:00, 10.5 s ago.
    await t.db.pool.query('DELETE FROM task_queue');
    travel(70_000);
    await t.server.maintenance.tickSchedules();
    expect(await ticksOf('skip')).toEqual([]);
    expect(await ticksOf('latest')).toEqual(['2031-03-01T12:02:00.000Z']);
    expect(await ticksOf('all')).toHaveLength(4);
    // Every schedule moved past now.
    for (const s of await queue.schedules.list()) if (!s.paused) expect(s.nextRuns[0]).toEqual(new Date('2031-03-01T12:02:15Z'));
  });

  it('bounds catchUp all to the newest 100 ticks', async () => {
    await queue.schedules.upsert({ name: 'each-second', type: 'digest', cron: '* * * * * *', payload: { to: 'x' }, catchUp: 'all' });
    travel(3_600_000);
    expect(await t.server.maintenance.tickSchedules()).toMatchObject({ enqueued: 100 });
    const ticks = await jobsOf(t.db.pool, 'digest');
    expect(ticks.at(-1)?.scheduled_for).toEqual(new Date('2031-03-01T13:00:00Z'));
    expect(ticks[0]?.scheduled_for).toEqual(new Date('2031-03-01T12:58:21Z'));
  });

  it('allowOverlap false skips a tick while the previous run is live', async () => {
    await queue.schedules.upsert({ name: 'single', type: 'digest', cron: '* * * * *', payload: { to: 'one' }, allowOverlap: false });
    travel(60_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 1, skipped: 0 });
    const { jobs } = await t.trpc.worker.claim.mutate({ workerId: 'w1', leaseMs: 600_000 });
    expect(jobs).toHaveLength(1);
    travel(60_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 0, skipped: 1 });
    await t.trpc.worker.complete.mutate({ workerId: 'w1', id: jobs[0]!.id, attempt: jobs[0]!.attempt, result: null });
    travel(60_000);
    expect(await t.server.maintenance.tickSchedules()).toEqual({ enqueued: 1, skipped: 0 });
    expect((await jobsOf(t.db.pool, 'digest')).map((j) => j.scheduled_for.toISOString())).toEqual(['2031-03-01T12:01:00.000Z', '2031-03-01T12:03:00.000Z']);
  });

  it('keeps the next tick when a server re-upserts an unchanged registry schedule after downtime', async () => {
    await queue.schedules.resume('every-second');
    const before = (await queue.schedules.list()).find((s) => s.name === 'every-second');
    travel(30_000);
    // A restart upserts the registry again: the missed ticks stay due for the catch-up policy.
    const again = await startTestServer({ jobs: cronJobs, now: () => clock, databaseUrl: t.db.url });
    try {
      const after = (await queue.schedules.list()).find((s) => s.name === 'every-second');
      expect(after?.nextRuns[0]).toEqual(before?.nextRuns[0]);
    } finally {
      await again.server.close();
      await again.db.drop();
    }
  });
});

describe('cron with 3 server processes', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb();
  });
  afterEach(() => killChildren());
  afterAll(() => db.drop());

  it('a schedule every second over 10 s with 3 servers: exactly one job per tick, none missing, even when one server dies', async () => {
    const env = { DATABASE_URL: db.url, SKIPQ_JOBS: './test/support/cronJobs.ts', SKIPQ_CRON_INTERVAL_MS: '200', SKIPQ_RESCUE_INTERVAL_MS: '200' };
    const started = Date.now();
    const servers = await Promise.all([spawnServer(env), spawnServer(env), spawnServer(env)]);
    await sleep(5000);
    // Whichever it is (leader or not), the others carry on.
    servers[0]!.signal('SIGKILL');
    await sleep(5500);
    for (const s of servers.slice(1)) s.signal('SIGTERM');
    await Promise.all(servers.map((s) => s.exited));
    const ranMs = Date.now() - started;

    const jobs = await jobsOf(db.pool, 'report');
    const ticks = jobs.map((j) => j.scheduled_for.getTime());
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(ticks.length).toBeGreaterThanOrEqual(9);
    expect(ticks.length).toBeLessThanOrEqual(Math.ceil(ranMs / 1000) + 1);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBe(1000);
    for (const j of jobs) expect(j).toMatchObject({ id: tickJobId('every-second', j.scheduled_for), queue: 'reports', payload: { kind: 'second' } });
    const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM schedules WHERE name = 'every-second'");
    expect(rows[0]?.n).toBe(1);
  }, 60_000);
});
