import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, type Worker } from '../client/index.js';
import { jobs } from '../examples/ingestion/jobs.js';
import { readJob, waitFor } from './support/factories.js';
import { killChildren, linesOf, spawnProgram, type Child } from './support/processes.js';
import { startTestServer, type TestServer } from './support/server.js';

// A Go program and a TypeScript program on one queue, each producing for the
// other, through skipq's SQL functions (Go: examples/go) and its HTTP API
// (TypeScript). Needs Go and Debian's pgx (.ci/run installs both).

const GO_SRC = fileURLToPath(new URL('../examples/go', import.meta.url));
const hasGo = spawnSync('go', ['version'], { encoding: 'utf8' }).status === 0;
if (!hasGo) console.log('test/goInterop.test.ts skipped: `go` is not installed (apt-get install golang-go golang-github-jackc-pgx-v4-dev; .ci/run does)');

const run = promisify(execFile);
const rowsOf = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; created: boolean; chainId: string });

describe.skipIf(!hasGo)('Go and TypeScript share one queue', () => {
  let t: TestServer;
  let bin: string;
  const workers: Worker[] = [];
  const goEnv = (): Record<string, string> => ({ DATABASE_URL: t.db.url });

  beforeAll(async () => {
    bin = await mkdtemp(join(tmpdir(), 'skipq-go-'));
    // GOPATH mode: no module proxy here. The build cache (~/.cache/go-build) makes later builds take about a second.
    const env: NodeJS.ProcessEnv = { ...process.env, GO111MODULE: 'off', GOPATH: `${GO_SRC}:/usr/share/gocode`, GOFLAGS: '' };
    if (!process.env.HOME && !process.env.GOCACHE) env.GOCACHE = join(tmpdir(), 'skipq-go-cache');
    const [, server] = await Promise.all([
      run('go', ['build', '-o', `${bin}/`, 'skipq.example/cmd/producer', 'skipq.example/cmd/worker'], { env, cwd: GO_SRC }),
      startTestServer({ jobs }),
    ]);
    t = server;
  }, 180_000);
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await killChildren();
  });
  afterAll(async () => {
    await t?.stop();
    if (bin) await rm(bin, { recursive: true, force: true });
  });

  /** A TypeScript worker that records each job its handler ran. */
  const tsWorker = (workerId: string, ran: string[]): Worker => {
    const w = createWorker({ url: t.url, jobs, workerId, waitMs: 200, handlers: { ingestion: (_payload, ctx) => { ran.push(ctx.id); return { rows: 12 }; } } });
    workers.push(w);
    w.start();
    return w;
  };
  const goWorker = (args: string[]): Child => spawnProgram(join(bin, 'worker'), args, goEnv(), `go worker ${args.join(' ')}`);

  it('the Go producer enqueues typed jobs into the registry queue; the TypeScript worker runs each once', async () => {
    const { stdout } = await run(join(bin, 'producer'), ['-count', '20', '-prefix', 'go', '-date', '2026-12-01'], { env: { ...process.env, ...goEnv() } });
    const made = rowsOf(stdout);
    expect(made).toHaveLength(20);
    expect(made.every((m) => m.created)).toBe(true);
    // Its uniqueKey (chain:date) holds: a second run answers the same jobs.
    const again = rowsOf((await run(join(bin, 'producer'), ['-chains', 'go-3', '-date', '2026-12-01'], { env: { ...process.env, ...goEnv() } })).stdout);
    expect(again).toEqual([{ id: made[3]!.id, created: false, chainId: 'go-3' }]);

    const ran: string[] = [];
    tsWorker('ts-1', ran);
    const ids = made.map((m) => m.id);
    await waitFor(async () => (await t.db.pool.query(`SELECT count(*)::int AS n FROM task_queue WHERE id = ANY ($1) AND status = 'completed'`, [ids])).rows[0].n === 20, 15_000, 'the TypeScript worker to finish');
    expect([...ran].sort()).toEqual([...ids].sort());
    const job = await readJob(t.db.pool, ids[0]!);
    expect(job).toMatchObject({ queue: 'ingestion', priority: 5, max_retries: 3, worker_id: 'ts-1', attempt: 1, result: { rows: 12 }, payload: { chainId: 'go-0', targetDate: '2026-12-01' } });
  });

  it('the TypeScript producer enqueues jobs the Go worker runs each once, with the fenced functions; SIGTERM stops it cleanly', async () => {
    const client = createQueueClient({ url: t.url, jobs });
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => client.enqueue('ingestion', { chainId: `ts-${i}`, targetDate: '2026-12-02' }).then((j) => j.id)));
    await client.close();
    const go = goWorker(['-id', 'go-1', '-concurrency', '4', '-work', '20ms']);
    await waitFor(async () => (await t.db.pool.query(`SELECT count(*)::int AS n FROM task_queue WHERE id = ANY ($1) AND status = 'completed'`, [ids])).rows[0].n === 20, 15_000, 'the Go worker to finish');
    // The Go worker prints a job's line after complete_job's commit, which the query above can see first.
    await waitFor(async () => linesOf(go, 'completed').length >= 20, 5_000, "the Go worker's line for each completion");
    const completed = linesOf(go, 'completed').map((l) => l.id as string);
    expect([...completed].sort()).toEqual([...ids].sort());
    const { rows } = await t.db.pool.query(`SELECT DISTINCT worker_id, attempt, result FROM task_queue WHERE id = ANY ($1)`, [ids]);
    expect(rows).toEqual([{ worker_id: 'go-1', attempt: 1, result: { rows: 24 } }]);
    go.signal('SIGTERM');
    expect(await go.exited).toEqual({ code: 0, signal: null });
    expect(go.lines.at(-1)?.ev).toBe('stopped');
  });

  it('a Go worker whose lease was lost is refused by the fence, and the job completes exactly once', async () => {
    const client = createQueueClient({ url: t.url, jobs });
    const { id } = await client.enqueue('ingestion', { chainId: 'slow', targetDate: '2026-12-03' });
    await client.close();
    // No heartbeats and a 300 ms lease: the lease runs out while its handler (1.5 s) is still working.
    const go = goWorker(['-id', 'go-stale', '-lease', '300ms', '-heartbeat', '-1ms', '-work', '1500ms']);
    await go.waitForLine((l) => l.ev === 'claimed' && l.id === id, 10_000, 'its claim');
    await waitFor(async () => (await readJob(t.db.pool, id)).lease_expires_at!.getTime() < Date.now() - 20, 5_000, 'the lease to run out');
    const rescued = await t.db.pool.query(`SELECT id FROM skipq_rescue(10)`);
    expect(rescued.rows).toEqual([{ id }]);
    const ran: string[] = [];
    tsWorker('ts-2', ran);
    await waitFor(async () => (await readJob(t.db.pool, id)).status === 'completed', 10_000, 'the TypeScript worker to complete it');
    // Stopping the Go worker lets its job in flight finish: its complete_job is refused.
    go.signal('SIGTERM');
    const refused = await go.waitForLine((l) => l.ev === 'refused', 10_000, 'the refusal');
    expect(refused).toMatchObject({ id, attempt: 1, outcome: 'lease_lost' });
    expect(await go.exited).toEqual({ code: 0, signal: null });
    expect(linesOf(go, 'completed')).toEqual([]);
    expect(ran).toEqual([id]);
    expect(await readJob(t.db.pool, id)).toMatchObject({ status: 'completed', worker_id: 'ts-2', attempt: 2, ended_by: 'complete', result: { rows: 12 } });
  });
});
