import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createQueueClient, createWorker } from '../client/index.js';
import { createLogger } from '../server/logger.js';
import { defineJobs } from '../shared/index.js';
import { waitFor } from './support/factories.js';
import { createLogSink } from './support/logSink.js';
import { startTestServer, type TestServer } from './support/server.js';

const ID = '01930000-0000-7000-8000-000000000000';

describe('server logs: JSON lines, request ids, levels', () => {
  const sink = createLogSink();
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ logger: createLogger({ level: 'info', destination: sink.stream }) });
  });
  afterEach(async () => {
    await t.db.pool.query('ALTER TABLE IF EXISTS task_queue_hidden RENAME TO task_queue');
  });
  afterAll(() => t?.stop());

  it('logs startup (and migrations) at info as JSON', () => {
    expect(sink.lines.some((l) => l.level === 30 && l.event === 'listening' && l.url === t.url)).toBe(true);
    expect(sink.lines.some((l) => l.level === 30 && l.event === 'migrations')).toBe(true);
  });

  it('echoes a given x-request-id, and makes one when none is sent', async () => {
    const given = await fetch(`${t.url}/health`, { headers: { 'x-request-id': 'trace-me-42' } });
    expect(given.headers.get('x-request-id')).toBe('trace-me-42');
    const made = await fetch(`${t.url}/health`);
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // Not an id: replaced, not echoed.
    const odd = await fetch(`${t.url}/health`, { headers: { 'x-request-id': 'a b\tc' } });
    expect(odd.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs a 5xx at error as one JSON line with the request id that the response carries (header and error data)', async () => {
    // An unexpected fault: the table is gone, which no error class covers.
    await t.db.pool.query('ALTER TABLE task_queue RENAME TO task_queue_hidden');
    for (const [path, init] of [
      [`jobs.get?input=${encodeURIComponent(JSON.stringify({ json: { id: ID } }))}`, { headers: { 'x-request-id': 'req-5xx-adapter' } }],
      ['worker.complete', { method: 'POST', headers: { 'x-request-id': 'req-5xx-fast', 'content-type': 'application/json' }, body: JSON.stringify({ json: { workerId: 'w1', id: ID, attempt: 1 } }) }],
    ] as const) {
      const res = await fetch(`${t.url}/${path}`, init);
      expect(res.status).toBe(500);
      const requestId = res.headers.get('x-request-id');
      expect(requestId).toBe(init.headers['x-request-id']);
      const body = (await res.json()) as { error: { json: { message: string; data: { code: string; skipqCode: string; requestId: string } } } };
      expect(body.error.json.data).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', skipqCode: 'INTERNAL', requestId });
      expect(JSON.stringify(body)).not.toMatch(/task_queue|\n\s+at /);
      await waitFor(() => sink.lines.some((l) => l.requestId === requestId), 2000, 'the error line');
      const line = sink.lines.find((l) => l.requestId === requestId) as { level: number; status: number; err: { stack: string } };
      expect(line).toMatchObject({ level: 50, status: 500, path: path.split('?')[0] });
      expect(line.err.stack).toMatch(/task_queue/);
    }
  });

  it('logs a 503 from the database at error too', async () => {
    await t.db.pool.query('ALTER TABLE task_queue RENAME TO task_queue_hidden');
    const res = await fetch(`${t.url}/worker.claim`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-any-5xx' }, body: JSON.stringify({ json: { workerId: 'w1' } }) });
    expect(res.status).toBeGreaterThanOrEqual(500);
    await waitFor(() => sink.lines.some((l) => l.requestId === 'req-any-5xx' && l.level === 50), 2000, 'the error line');
  });

  it('does not log requests at info (they are debug)', async () => {
    await fetch(`${t.url}/health`, { headers: { 'x-request-id': 'quiet-one' } });
    await new Promise((r) => setTimeout(r, 50));
    expect(sink.lines.filter((l) => l.requestId === 'quiet-one')).toEqual([]);
  });
});

describe('LOG_LEVEL', () => {
  const saved = process.env.LOG_LEVEL;
  afterEach(() => {
    if (saved === undefined) delete process.env.LOG_LEVEL;
    else process.env.LOG_LEVEL = saved;
  });

  it('debug: every request is logged with its id, method, url, status and duration', async () => {
    process.env.LOG_LEVEL = 'debug';
    const sink = createLogSink();
    const t = await startTestServer({ logger: createLogger({ destination: sink.stream }) });
    try {
      await fetch(`${t.url}/health`, { headers: { 'x-request-id': 'dbg-1' } });
      await waitFor(() => sink.lines.some((l) => l.requestId === 'dbg-1'), 2000, 'the request line');
      expect(sink.lines.find((l) => l.requestId === 'dbg-1')).toMatchObject({ level: 20, msg: 'request', method: 'GET', status: 200, url: '/trpc/health' });
    } finally {
      await t.stop();
    }
  });

  it('warn: neither requests nor startup are logged', async () => {
    process.env.LOG_LEVEL = 'warn';
    const sink = createLogSink();
    const t = await startTestServer({ logger: createLogger({ destination: sink.stream }) });
    try {
      await fetch(`${t.url}/health`, { headers: { 'x-request-id': 'dbg-2' } });
      await new Promise((r) => setTimeout(r, 50));
      expect(sink.lines.filter((l) => (l.level as number) < 40)).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  it('refuses a level pino does not know', () => {
    process.env.LOG_LEVEL = 'loud';
    expect(() => createLogger()).toThrow(/LOG_LEVEL "loud"/);
  });
});

describe('worker logger', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t?.stop());

  it('takes a pino logger: a failed attempt at warn, completions only at debug', async () => {
    const jobs = defineJobs({ flaky: { payload: z.object({ ok: z.boolean() }) } });
    const sink = createLogSink();
    const logger = createLogger({ level: 'info', destination: sink.stream });
    const worker = createWorker({ url: t.url, jobs, waitMs: 200, logger, handlers: { flaky: async ({ ok }) => { if (!ok) throw new Error('boom'); return null; } } });
    const queue = createQueueClient({ url: t.url, jobs });
    worker.start();
    try {
      const good = await queue.enqueue('flaky', { ok: true });
      const bad = await queue.enqueue('flaky', { ok: false });
      await waitFor(() => sink.lines.some((l) => l.id === bad.id), 5000, 'the failure line');
      expect(sink.lines.find((l) => l.id === bad.id)).toMatchObject({ level: 40, type: 'flaky', error: expect.stringContaining('boom') });
      expect(sink.lines.some((l) => l.id === good.id)).toBe(false);
    } finally {
      await worker.stop();
      await queue.close();
    }
  });
});
