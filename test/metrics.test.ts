import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueServer, type QueueServer } from '../server/app.js';
import { createApiKey } from '../server/auth.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../server/db/embedded.js';
import { silentLogger } from '../server/logger.js';
import { MAX_LABEL_SETS, OVERFLOW_LABEL } from '../server/metrics.js';
import { insertJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

/** Parses Prometheus text: `name{labels}` → value, and the TYPE of each family. */
function parseProm(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name as string, type as string);
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    samples.set(m[1] as string, Number(m[2]));
  }
  return { samples, types };
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const res = await fetch(url, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseProm(await res.text()).samples;
}

describe('metrics, health and readiness', () => {
  let t: TestServer;
  let base: string;
  beforeAll(async () => {
    t = await startTestServer();
    base = t.url.replace(/\/trpc$/, '');
  });
  afterAll(() => t?.stop());

  it('GET /metrics is Prometheus text with every family typed', async () => {
    const res = await fetch(`${base}/metrics`);
    const { types } = parseProm(await res.text());
    for (const [name, type] of [
      ['skipq_jobs_enqueued_total', 'counter'],
      ['skipq_jobs_claimed_total', 'counter'],
      ['skipq_jobs_completed_total', 'counter'],
      ['skipq_jobs_failed_total', 'counter'],
      ['skipq_jobs_retried_total', 'counter'],
      ['skipq_jobs_rescued_total', 'counter'],
      ['skipq_http_requests_total', 'counter'],
      ['skipq_claim_duration_seconds', 'histogram'],
      ['skipq_queue_depth', 'gauge'],
      ['skipq_queue_oldest_pending_age_seconds', 'gauge'],
      ['skipq_jobs_held', 'gauge'],
      ['skipq_db_pool_connections', 'gauge'],
    ]) {
      expect(types.get(name as string), name).toBe(type);
    }
  });

  it('counts a claim and its completions per queue and type when one batch interleaves them', async () => {
    // Priorities interleave the two queues in the claim's order: a, b, a, b, a.
    const made = [];
    for (const [i, queue] of ['mix-a', 'mix-b', 'mix-a', 'mix-b', 'mix-a'].entries()) made.push(await insertJob(t.db.pool, { queue, task_type: 'mixed', priority: 9 - i }));
    const before = await scrape(`${base}/metrics`);
    const claimed = await t.trpc.worker.claim.mutate({ workerId: 'mix', queues: ['mix-a', 'mix-b'], limit: 10 });
    expect(claimed.jobs.map((j) => j.queue)).toEqual(['mix-a', 'mix-b', 'mix-a', 'mix-b', 'mix-a']);
    await t.trpc.worker.completeMany.mutate({ workerId: 'mix', jobs: claimed.jobs.map((j) => ({ id: j.id, attempt: j.attempt })) });
    const after = await scrape(`${base}/metrics`);
    const moved = (name: string, queue: string) => (after.get(`${name}{queue="${queue}",type="mixed"}`) ?? 0) - (before.get(`${name}{queue="${queue}",type="mixed"}`) ?? 0);
    expect([moved('skipq_jobs_claimed_total', 'mix-a'), moved('skipq_jobs_claimed_total', 'mix-b')]).toEqual([3, 2]);
    expect([moved('skipq_jobs_completed_total', 'mix-a'), moved('skipq_jobs_completed_total', 'mix-b')]).toEqual([3, 2]);
  });

  it('counters move after enqueue, claim, complete, fail (retry and for good) and rescue; gauges show depth, age and held jobs', async () => {
    const q = 'metrics-q';
    await t.trpc.jobs.enqueueMany.mutate({ jobs: [1, 2, 3, 4].map((n) => ({ type: 'note', queue: q, payload: { n }, maxRetries: n === 3 ? 0 : 1 })) });
    let m = await scrape(`${base}/metrics`);
    expect(m.get(`skipq_jobs_enqueued_total{queue="${q}",type="note"}`)).toBe(4);
    expect(m.get(`skipq_queue_depth{queue="${q}"}`)).toBe(4);
    expect(m.get(`skipq_queue_oldest_pending_age_seconds{queue="${q}"}`)).toBeGreaterThanOrEqual(0);

    const { jobs } = await t.trpc.worker.claim.mutate({ workerId: 'w1', queues: [q], limit: 4 });
    expect(jobs).toHaveLength(4);
    const [a, b, c, d] = jobs as [(typeof jobs)[number], (typeof jobs)[number], (typeof jobs)[number], (typeof jobs)[number]];
    m = await scrape(`${base}/metrics`);
    expect(m.get(`skipq_jobs_claimed_total{queue="${q}",type="note"}`)).toBe(4);
    expect(m.get(`skipq_jobs_held{queue="${q}"}`)).toBe(4);
    expect(m.get(`skipq_queue_depth{queue="${q}"}`)).toBe(0);
    expect(m.get('skipq_claim_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(m.get('skipq_claim_duration_seconds_sum')).toBeGreaterThan(0);
    expect(m.get('skipq_claim_duration_seconds_bucket{le="+Inf"}')).toBe(m.get('skipq_claim_duration_seconds_count'));

    await t.trpc.worker.complete.mutate({ workerId: 'w1', id: a.id, attempt: a.attempt });
    await t.trpc.worker.completeMany.mutate({ workerId: 'w1', jobs: [{ id: b.id, attempt: b.attempt }] });
    await t.trpc.worker.fail.mutate({ workerId: 'w1', id: c.id, attempt: c.attempt, error: 'no retries', retry: true });
    await t.trpc.worker.fail.mutate({ workerId: 'w1', id: d.id, attempt: d.attempt, error: 'again', retry: true });
    // A lost lease is counted as a CONFLICT call.
    await t.trpc.worker.complete.mutate({ workerId: 'w2', id: a.id, attempt: a.attempt }).catch(() => {});
    m = await scrape(`${base}/metrics`);
    // One through worker.complete, one through worker.completeMany; a claim that carries completions is counted below.
    expect(m.get(`skipq_jobs_completed_total{queue="${q}",type="note"}`)).toBe(2);
    expect(m.get(`skipq_jobs_failed_total{queue="${q}",type="note"}`)).toBe(1);
    expect(m.get(`skipq_jobs_retried_total{queue="${q}",type="note"}`)).toBe(1);
    expect(m.get('skipq_http_requests_total{procedure="worker.complete",code="OK"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('skipq_http_requests_total{procedure="worker.complete",code="CONFLICT"}')).toBe(1);
    expect(m.get('skipq_http_requests_total{procedure="jobs.enqueueMany",code="OK"}')).toBe(1);
    expect(m.get('skipq_db_pool_connections{state="total"}')).toBeGreaterThan(0);

    // An expired lease, swept by the rescuer.
    await insertJob(t.db.pool, { queue: q, status: 'processing', worker_id: 'w9', lease_expires_at: new Date(Date.now() - 60_000) });
    await t.server.maintenance.sweep();
    m = await scrape(`${base}/metrics`);
    expect(m.get('skipq_jobs_rescued_total{outcome="pending"}')).toBe(1);
  });

  it('labels completions carried by a claim, and failures of refused results, by queue and type', async () => {
    const q = 'metrics-carried';
    await t.trpc.jobs.enqueueMany.mutate({ jobs: [{ type: 'alpha', queue: q, payload: 1 }, { type: 'beta', queue: q, payload: 2 }, { type: 'beta', queue: q, payload: 3 }] });
    const { jobs } = await t.trpc.worker.claim.mutate({ workerId: 'w3', queues: [q], limit: 3 });
    const alpha = jobs.find((j) => j.type === 'alpha');
    const [beta1, beta2] = jobs.filter((j) => j.type === 'beta');
    if (!alpha || !beta1 || !beta2) throw new Error('expected alpha and two beta jobs');
    // A result over the size limit is refused: that job fails (INVALID_RESULT), the others complete.
    const big = 'x'.repeat(t.server.deps.maxPayloadBytes + 1);
    await t.trpc.worker.claim.mutate({
      workerId: 'w3',
      queues: [q],
      complete: [{ id: alpha.id, attempt: alpha.attempt }, { id: beta1.id, attempt: beta1.attempt }, { id: beta2.id, attempt: beta2.attempt, result: big }],
    });
    const m = await scrape(`${base}/metrics`);
    expect(m.get(`skipq_jobs_completed_total{queue="${q}",type="alpha"}`)).toBe(1);
    expect(m.get(`skipq_jobs_completed_total{queue="${q}",type="beta"}`)).toBe(1);
    expect(m.get(`skipq_jobs_failed_total{queue="${q}",type="beta"}`)).toBe(1);
  });

  it(`keeps at most ${MAX_LABEL_SETS} label sets per family; the rest are counted under "${OVERFLOW_LABEL}"`, async () => {
    const other = await startTestServer();
    try {
      const names = Array.from({ length: MAX_LABEL_SETS + 5 }, (_, i) => `card-${i}`);
      for (let i = 0; i < names.length; i += 500) {
        await other.trpc.jobs.enqueueMany.mutate({ jobs: names.slice(i, i + 500).map((queue) => ({ type: 'card', queue, payload: 0 })) });
      }
      const m = await scrape(`${other.url.replace(/\/trpc$/, '')}/metrics`);
      const series = [...m.keys()].filter((k) => k.startsWith('skipq_jobs_enqueued_total{'));
      expect(series).toHaveLength(MAX_LABEL_SETS + 1);
      expect(m.get(`skipq_jobs_enqueued_total{queue="${OVERFLOW_LABEL}",type="${OVERFLOW_LABEL}"}`)).toBe(5);
      expect(m.get('skipq_jobs_enqueued_total{queue="card-0",type="card"}')).toBe(1);
    } finally {
      await other.stop();
    }
  });

  it('/healthz answers while the process is up; /readyz while the database answers and migrations are applied', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('ready\n');
  });

  it('/readyz fails when a migration is missing', async () => {
    const { rows } = await t.db.pool.query<{ migration_name: string }>('SELECT migration_name FROM _prisma_migrations ORDER BY migration_name DESC LIMIT 1');
    const name = rows[0]?.migration_name as string;
    await t.db.pool.query('UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = $1', [name]);
    try {
      const res = await fetch(`${base}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/1 of \d+ migrations not applied/);
    } finally {
      await t.db.pool.query('UPDATE _prisma_migrations SET rolled_back_at = NULL WHERE migration_name = $1', [name]);
    }
  });

  it('several servers in one process keep their own registries', async () => {
    const other = await startTestServer();
    try {
      await other.trpc.jobs.enqueue.mutate({ type: 'solo', queue: 'other-q', payload: 1 });
      const mine = await scrape(`${base}/metrics`);
      const theirs = await scrape(`${other.url.replace(/\/trpc$/, '')}/metrics`);
      expect(theirs.get('skipq_jobs_enqueued_total{queue="other-q",type="solo"}')).toBe(1);
      expect(mine.get('skipq_jobs_enqueued_total{queue="other-q",type="solo"}')).toBeUndefined();
    } finally {
      await other.stop();
    }
  });
});

describe('/metrics with keys', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ metricsPort: 0 });
  });
  afterAll(() => t?.stop());

  it('needs an admin key once keys exist (401 without, 403 for another role); the metrics port needs none', async () => {
    const base = t.url.replace(/\/trpc$/, '');
    const admin = await createApiKey(t.db.pool, { role: 'admin' });
    const worker = await createApiKey(t.db.pool, { role: 'worker' });
    await waitFor(async () => (await fetch(`${base}/metrics`)).status === 401, 5000, 'keys to be required');
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${worker.key}` } })).status).toBe(403);
    await scrape(`${base}/metrics`, { authorization: `Bearer ${admin.key}` });
    // Probes stay open: a load balancer has no key.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(t.server.metricsPort).toBeGreaterThan(0);
    await scrape(`http://127.0.0.1:${t.server.metricsPort}/metrics`);
  });
});

describe('/readyz while PostgreSQL is down (private cluster)', () => {
  let dir: string;
  let pg: EmbeddedDatabase | undefined;
  let server: QueueServer | undefined;
  afterAll(async () => {
    await server?.close();
    await pg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fails while the database is down and recovers when it is back; /healthz stays 200', async () => {
    dir = await mkdtemp(join(tmpdir(), 'skipq-readyz-'));
    await chmod(dir, 0o755);
    pg = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), temporary: true });
    server = await createQueueServer({ databaseUrl: pg.url, port: 0, maintenance: false, logger: silentLogger });
    const base = server.url.replace(/\/trpc$/, '');
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await pg.halt();
    const down = await fetch(`${base}/readyz`);
    expect(down.status).toBe(503);
    expect(await down.text()).toMatch(/database unreachable/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await pg.restart();
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 15_000, 'readyz to recover');
  });
});
