import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { jobs as ingestionJobs } from '../examples/ingestion/jobs.js';
import { jobs as orderJobs } from '../examples/orders/jobs.js';
import { createTestDb, type TestDb } from './support/db.js';
import { waitFor } from './support/factories.js';
import { killChildren, spawnProgram, type Child } from './support/processes.js';
import { startTestServer, type TestServer } from './support/server.js';

// The README's runnable examples, run as a user runs them (`node --import tsx
// examples/...`, what `npm run example:*` does) against a real server, so an
// example that no longer runs, or prints something else than the README says,
// fails here. Each demo starts its own server on the database it is given.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

/** Runs one example script to its end; its stdout, as lines. */
async function runExample(script: string, env: Record<string, string>, args: string[] = []): Promise<string[]> {
  // Killed well inside the test's own time limit, so a hung example fails with its output and leaves no process behind.
  const { stdout } = await run(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 45_000 }).catch(
    (error: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`${script} failed: ${error.message}\nstdout:\n${error.stdout ?? ''}\nstderr:\n${error.stderr ?? ''}`);
    },
  );
  return stdout.trim().split('\n');
}

/** A long-running example (a worker), killed by afterEach if a test leaves it. */
const startExample = (script: string, env: Record<string, string>): Child => spawnProgram(process.execPath, ['--import', 'tsx', script], env, script);

/** Resolves once `child` printed a line matching `pattern` (its non-JSON lines are in `text`). */
const printed = (child: Child, pattern: RegExp, timeoutMs = 20_000): Promise<void> =>
  waitFor(() => child.text.some((l) => pattern.test(l)), timeoutMs, `a line matching ${pattern}`).catch((error: Error) => {
    throw new Error(`${error.message}; output:\n${child.text.join('\n')}`);
  });

describe('the README examples run', () => {
  const dbs: TestDb[] = [];
  const servers: TestServer[] = [];
  const database = async (): Promise<string> => {
    const db = await createTestDb();
    dbs.push(db);
    return db.url;
  };
  afterEach(() => killChildren());
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(dbs.map((d) => d.drop()));
  });

  it('npm run example:cron: a schedule every 2 s ticks in 4.5 s, a burst of 20 debounced calls is one job with the last payload, throttle answers the first job', async () => {
    const lines = await runExample('examples/cron/demo.ts', { DATABASE_URL: await database() });
    expect(lines[0]).toMatch(/^every-2s \*\/2 \* \* \* \* \* UTC next: (\S+Z(, )?){3}$/);
    expect(lines).toContainEqual(expect.stringMatching(/^nightly-report 0 3 \* \* \* Europe\/Zagreb next: /));
    const ticks = Number(/^every-2s made (\d+) job\(s\) in 4\.5 s$/.exec(lines.find((l) => l.startsWith('every-2s made')) ?? '')?.[1]);
    // Ticks at each even second of a 4.5 s window: 2 or 3, or 1 if a sweep on a loaded machine came late for the last.
    expect(ticks).toBeGreaterThanOrEqual(1);
    expect(ticks).toBeLessThanOrEqual(3);
    expect(lines).toContainEqual(expect.stringMatching(/^debounce: 1 job, payload rev 20, due \S+Z$/));
    expect(lines.at(-1)).toBe('throttle: first created true, second created false, same job true');
  }, 60_000);

  it('examples/flows/demo.ts: the report runs after its three children, and the flaky child shows three attempts', async () => {
    const lines = await runExample('examples/flows/demo.ts', { DATABASE_URL: await database() });
    expect(lines[0]).toMatch(/^right after enqueueFlow: WAITING_FOR_CHILDREN: the job waits for 3 of its 3 children/);
    expect(lines[1]).toBe('report: { rows: 1400, chains: 3, failed: [] }');
    expect(lines.slice(2).map((l) => l.replace(/ after \d+ ms/, ''))).toEqual([
      "lidl attempt 1 on demo-worker: retry_scheduled (Error: lidl's feed timed out (attempt 1))",
      "lidl attempt 2 on demo-worker: retry_scheduled (Error: lidl's feed timed out (attempt 2))",
      'lidl attempt 3 on demo-worker: completed',
    ]);
  }, 60_000);

  it('npm run example:tracing: the app span, send, process and the handler span are one trace, nested as the README draws it', async () => {
    const lines = await runExample('examples/tracing/demo.ts', { DATABASE_URL: await database() });
    expect(lines[0]).toBe('result: { sent: true }');
    const tree = lines.filter((l) => / trace [0-9a-f]{32} /.test(l) && !l.startsWith('skipq '));
    expect(tree.map((l) => l.replace(/ trace .*$/, ''))).toEqual(['POST /orders [INTERNAL]', '  send send-receipt [PRODUCER]', '    process send-receipt [CONSUMER]', '      smtp send [INTERNAL]']);
    expect(new Set(tree.map((l) => / trace ([0-9a-f]{32}) /.exec(l)?.[1])).size).toBe(1);
  }, 60_000);

  it('examples/ingestion: the producer enqueues one job per chain and sees each completed by the worker; SIGTERM stops the worker with exit 0', async () => {
    const t = await startTestServer({ jobs: ingestionJobs });
    servers.push(t);
    const worker = startExample('examples/ingestion/worker.ts', { SKIPQ_URL: t.url });
    await printed(worker, /^worker \S+ polling /);
    const lines = await runExample('examples/ingestion/producer.ts', { SKIPQ_URL: t.url }, ['2026-12-02']);
    expect(lines.filter((l) => l.startsWith('enqueued '))).toHaveLength(5);
    const done = lines.filter((l) => / completed /.test(l));
    expect(done).toHaveLength(5);
    expect(done.map((l) => l.replace(/^\S+ /, '')).sort()).toEqual(['{ rows: 600 }', '{ rows: 400 }', '{ rows: 400 }', '{ rows: 800 }', '{ rows: 700 }'].map((r) => `completed ${r}`).sort());
    worker.signal('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(worker.text).toContain('stopping: finishing running jobs');
  }, 60_000);

  it('examples/orders: the order and its job commit together, and the producer awaits the typed receipt the worker returns', async () => {
    const t = await startTestServer({ jobs: orderJobs });
    servers.push(t);
    const worker = startExample('examples/orders/worker.ts', { SKIPQ_URL: t.url });
    const lines = await runExample('examples/orders/producer.ts', { SKIPQ_URL: t.url, DATABASE_URL: t.db.url }, ['buyer@example.com', '4200']);
    const stored = /^order (\d+) stored with job (\S+)$/.exec(lines[0] ?? '');
    expect(stored).not.toBeNull();
    expect(lines[1]).toBe(`receipt R-${stored![1]}-1 sent to buyer@example.com`);
    const { rows } = await t.db.pool.query(`SELECT o.email, t.status FROM orders AS o JOIN task_queue AS t ON t.id = $1 WHERE o.id = $2`, [stored![2], Number(stored![1])]);
    expect(rows).toEqual([{ email: 'buyer@example.com', status: 'completed' }]);
    worker.signal('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
  }, 60_000);
});
