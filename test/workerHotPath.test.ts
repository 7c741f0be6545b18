// The worker's per-job path made cheap (client/worker/runner.ts, reporting.ts, jobSpan.ts, trpc.ts):
// what it skips must never change what is run, stored or traced.
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import superjson from 'superjson';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, type Worker } from '../client/index.js';
import { plainJson, transformer } from '../client/trpc.js';
import { defineJobs } from '../shared/index.js';
import { countJobs, readJob, waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';
import { workerSpawner } from './support/workers.js';

const jobs = defineJobs({
  count: { payload: z.object({ n: z.number().int() }) },
  valued: { payload: z.object({ kind: z.string() }) },
});

describe("the worker's per-job path", () => {
  let t: TestServer;
  const { spawn, stopAll } = workerSpawner(() => t.url, jobs);

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(() => t.stop());
  beforeEach(async () => {
    await stopAll();
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it('handlers that return at once (no promise) run 3,000 buffered jobs once each, one after another, not 3,000 deep on the stack', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    const runs = new Map<number, number>();
    let running = 0;
    let most = 0;
    // Job 0 goes first and holds the one slot while the rest of its claim waits in the buffer.
    await q.enqueue('count', { n: 0 }, { priority: 10 });
    await q.enqueueMany(Array.from({ length: 2999 }, (_, i) => ({ type: 'count' as const, payload: { n: i + 1 } })));
    spawn({
      concurrency: 1,
      prefetch: 1000,
      handlers: {
        // Not async: each settles inside launch(), which frees the slot for the next buffered job.
        count({ n }) {
          running++;
          most = Math.max(most, running);
          runs.set(n, (runs.get(n) ?? 0) + 1);
          running--;
          if (n === 0) return new Promise<void>((resolve) => setTimeout(resolve, 300));
        },
      },
    });
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === 3000, 20_000, '3,000 completions');
    expect(runs.size).toBe(3000);
    expect([...runs.values()].every((r) => r === 1)).toBe(true);
    expect(most).toBe(1);
    await q.close();
  });

  it('a handler that throws at once fails its attempt like an async one', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    spawn({ handlers: { count() { throw new Error('bad at once'); } } });
    const job = await q.enqueue('count', { n: 1 }, { maxRetries: 0 });
    await waitFor(async () => (await q.get(job.id)).status === 'failed', 5000, 'failure');
    expect((await readJob(t.db.pool, job.id)).error_message).toBe('Error: bad at once');
    await q.close();
  });

  it('results JSON changes (a Date, -0, undefined fields) still go through superjson; scalars go as plain JSON; both are stored as before', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    const results: Record<string, unknown> = {
      date: { at: new Date(0), zero: -0, gone: undefined, kept: [1, 'a'] },
      text: 'done',
      number: 42,
      nothing: null,
      negativeZero: -0,
    };
    spawn({ handlers: { valued: ({ kind }) => results[kind] as never } });
    const ids = await Promise.all(Object.keys(results).map(async (kind) => [kind, (await q.enqueue('valued', { kind })).id] as const));
    await waitFor(async () => (await countJobs(t.db.pool, 'completed')) === ids.length, 5000, 'completions');
    const stored = Object.fromEntries(await Promise.all(ids.map(async ([kind, id]) => [kind, (await readJob(t.db.pool, id)).result] as const)));
    expect(stored).toEqual({ date: { at: '1970-01-01T00:00:00.000Z', zero: 0, kept: [1, 'a'] }, text: 'done', number: 42, nothing: null, negativeZero: 0 });
    await q.close();
  });

  it('an input marked plainJson is written exactly as superjson writes it', () => {
    const input = { workerId: 'w-1', types: ['count'], complete: Array.from({ length: 1000 }, (_, i) => ({ id: String(i + 1), attempt: 1 + (i % 3) })), limit: 500, leaseMs: 30_000, waitMs: 0 };
    expect(JSON.stringify(transformer.serialize(plainJson(input)))).toBe(JSON.stringify(superjson.serialize(input)));
    // Unmarked, it is superjson's own walk.
    const withDate = { at: new Date(0) };
    expect(transformer.serialize(withDate)).toEqual(superjson.serialize(withDate));
  });
});

describe("the worker's spans follow the app's OpenTelemetry setup, looked at again at each claim", () => {
  let t: TestServer;
  let worker: Worker | undefined;
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager();

  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(async () => {
    await worker?.stop();
    await t?.stop();
    trace.disable();
    context.disable();
  });

  it('no SDK: no span and the handler sees the root context; an SDK registered later: the next claim and the next enqueue are traced; disabled again: not traced', async () => {
    const q = createQueueClient({ url: t.url, jobs });
    const activeSpans: Array<string | undefined> = [];
    worker = createWorker({
      url: t.url,
      jobs,
      waitMs: 200,
      handlers: {
        count: async () => {
          activeSpans.push(trace.getActiveSpan()?.spanContext().spanId);
        },
      },
    });
    worker.start();
    const runOne = async (n: number): Promise<string> => {
      const job = await q.enqueue('count', { n });
      await waitFor(async () => (await q.get(job.id)).status === 'completed', 5000, `job ${n}`);
      return job.id;
    };
    const spanIdsOf = (id: string) => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.message.id'] === id).map((s) => s.spanContext().spanId);

    const untraced = await runOne(1);
    expect(activeSpans).toEqual([undefined]);

    context.setGlobalContextManager(contextManager.enable());
    trace.setGlobalTracerProvider(provider);
    // The worker is long-polling a claim that left before the SDK was there: the job it brings back is traced.
    const traced = await runOne(2);
    await waitFor(() => spanIdsOf(traced).length === 1, 5000, "the traced job's span");
    expect(activeSpans[1]).toBe(spanIdsOf(traced)[0]);
    expect(spanIdsOf(untraced)).toEqual([]);
    // The producer, made before the SDK too, traces its next enqueue: a send span, stored with the job, parent of the job's span.
    const sends = (id: string) => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER && s.attributes['messaging.message.id'] === id);
    expect(sends(untraced)).toEqual([]);
    expect(sends(traced)).toHaveLength(1);
    const consumer = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.message.id'] === traced);
    expect(consumer?.parentSpanContext?.spanId).toBe(sends(traced)[0]?.spanContext().spanId);
    const stored = await t.db.pool.query<{ id: string; trace_context: string | null }>('SELECT id, trace_context FROM task_queue WHERE id = ANY($1::text[])', [[untraced, traced]]);
    expect(stored.rows.find((r) => r.id === untraced)?.trace_context).toBeNull();
    expect(stored.rows.find((r) => r.id === traced)?.trace_context).toBe(`00-${sends(traced)[0]?.spanContext().traceId}-${sends(traced)[0]?.spanContext().spanId}-01`);

    trace.disable();
    context.disable();
    exporter.reset();
    const after = await runOne(3);
    expect(activeSpans[2]).toBeUndefined();
    expect(spanIdsOf(after)).toEqual([]);
    await q.close();
  });
});
