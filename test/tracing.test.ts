import { context, metrics, propagation, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { TRPCClientError } from '@trpc/client';
import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, PermanentError, type QueueClient, type Worker } from '../client/index.js';
import { createTxEnqueuer } from '../server/txEnqueue.js';
import { silentLogger } from '../server/logger.js';
import { defineJobs } from '../shared/index.js';
import { waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  traced: { payload: z.object({ n: z.number().int() }), queue: 'traces-q', maxRetries: 0 },
  broken: { payload: z.object({ n: z.number().int() }), maxRetries: 0 },
});

// One SDK for the file, as an app would register it: a tracer provider with an
// in-memory exporter, AsyncLocalStorage for the active context, a meter provider.
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
const meterProvider = new MeterProvider({ readers: [metricReader] });
const contextManager = new AsyncLocalStorageContextManager();

const spansNamed = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);
const spanOfJob = (id: string): ReadableSpan | undefined =>
  exporter.getFinishedSpans().find((s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.message.id'] === id);

async function jobSpan(id: string): Promise<ReadableSpan> {
  await waitFor(async () => spanOfJob(id) !== undefined, 10_000, `the worker's span for job ${id}`);
  return spanOfJob(id) as ReadableSpan;
}

describe('traces: producer → job → handler as one trace (OpenTelemetry)', () => {
  let t: TestServer;
  let queue: QueueClient<typeof jobs>;
  let worker: Worker;
  let app: Tracer;

  beforeAll(async () => {
    context.setGlobalContextManager(contextManager.enable());
    trace.setGlobalTracerProvider(provider);
    metrics.setGlobalMeterProvider(meterProvider);
    app = trace.getTracer('the-app');
    t = await startTestServer({ jobs });
    queue = createQueueClient({ url: t.url, jobs });
    worker = createWorker({
      url: t.url,
      jobs,
      workerId: 'tracing-worker',
      waitMs: 1000,
      logger: silentLogger,
      handlers: {
        // The app's own span inside the handler: it must nest under skipq's job span.
        traced: async ({ n }) => app.startActiveSpan('inside the handler', async (span) => {
          span.setAttribute('n', n);
          span.end();
          return { n };
        }),
        broken: async ({ n }) => {
          throw new PermanentError(`broken job ${n}`);
        },
      },
    });
    worker.start();
  });
  afterAll(async () => {
    await worker?.stop();
    await queue?.close();
    await t?.stop();
    trace.disable();
    metrics.disable();
    context.disable();
  });
  beforeEach(() => exporter.reset());

  it("the worker's span is a CONSUMER child of the enqueue's PRODUCER span, inside the caller's trace, linked to it", async () => {
    const { job, parent } = await app.startActiveSpan('place order', async (span) => {
      const ref = await queue.enqueue('traced', { n: 1 });
      span.end();
      return { job: ref, parent: span };
    });
    const processed = await jobSpan(job.id);
    const [send] = spansNamed('send traced');
    expect(send).toBeDefined();
    if (!send) return;
    const traceId = parent.spanContext().traceId;
    // place order → send traced (PRODUCER) → process traced (CONSUMER): one trace.
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.spanContext().traceId).toBe(traceId);
    expect(send.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(send.attributes).toMatchObject({ 'messaging.system': 'skipq', 'messaging.operation.type': 'send', 'messaging.destination.name': 'traces-q', 'messaging.message.id': job.id });
    expect(processed.name).toBe('process traced');
    expect(processed.spanContext().traceId).toBe(traceId);
    expect(processed.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(processed.parentSpanContext?.isRemote).toBe(true);
    expect(processed.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
    expect(processed.attributes).toMatchObject({
      'messaging.system': 'skipq',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'traces-q',
      'messaging.message.id': job.id,
      'messaging.client.id': 'tracing-worker',
      'skipq.job.type': 'traced',
      'skipq.job.attempt': 1,
    });
    expect(processed.status.code).toBe(SpanStatusCode.UNSET);
    // The job stored the send span's context as a W3C traceparent.
    const { rows } = await t.db.pool.query<{ trace_context: string }>('SELECT trace_context FROM task_queue WHERE id = $1', [job.id]);
    expect(rows[0]?.trace_context).toBe(`00-${traceId}-${send.spanContext().spanId}-01`);
  });

  it("a span the handler makes is a child of the job's span", async () => {
    const job = await app.startActiveSpan('caller', async (span) => {
      const ref = await queue.enqueue('traced', { n: 2 });
      span.end();
      return ref;
    });
    const processed = await jobSpan(job.id);
    const inner = spansNamed('inside the handler').find((s) => s.attributes.n === 2);
    expect(inner?.spanContext().traceId).toBe(processed.spanContext().traceId);
    expect(inner?.parentSpanContext?.spanId).toBe(processed.spanContext().spanId);
  });

  it("a failing handler's span has status ERROR, error.type and the exception event", async () => {
    const job = await queue.enqueue('broken', { n: 3 });
    const processed = await jobSpan(job.id);
    expect(processed.name).toBe('process broken');
    expect(processed.status).toEqual({ code: SpanStatusCode.ERROR, message: expect.stringContaining('broken job 3') });
    expect(processed.attributes['error.type']).toBe('HANDLER_ERROR');
    const exception = processed.events.find((e) => e.name === 'exception');
    expect(exception?.attributes).toMatchObject({ 'exception.type': 'PermanentError', 'exception.message': 'broken job 3' });
    expect(String(exception?.attributes?.['exception.stacktrace'])).toContain('PermanentError: broken job 3');
  });

  it('a job enqueued with no active span gets a root span of its own (its send span is the parent, which has none)', async () => {
    const job = await queue.enqueue('traced', { n: 4 });
    const processed = await jobSpan(job.id);
    const send = spansNamed('send traced').find((s) => s.attributes['messaging.message.id'] === job.id);
    expect(send?.parentSpanContext).toBeUndefined();
    expect(processed.parentSpanContext?.spanId).toBe(send?.spanContext().spanId);
  });

  it('a job enqueued over SQL has no trace context: it runs, in a root span with no link', async () => {
    const { rows } = await t.db.pool.query<{ id: string }>(
      `SELECT (schedule_task('traced', '{"n":5}'::jsonb, 0, now()::timestamp, 0)) AS id`,
    );
    const id = String(rows[0]?.id);
    const processed = await jobSpan(id);
    expect(processed.parentSpanContext).toBeUndefined();
    expect(processed.links).toEqual([]);
    await waitFor(async () => (await t.db.pool.query('SELECT 1 FROM task_queue WHERE id = $1 AND status = $2', [id, 'completed'])).rowCount === 1, 5000, 'the SQL job to complete');
    const { rows: done } = await t.db.pool.query<{ trace_context: string | null }>('SELECT trace_context FROM task_queue WHERE id = $1', [id]);
    expect(done[0]?.trace_context).toBeNull();
  });

  it("a caller's own traceContext is stored as given, and the worker's span continues it (no send span)", async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const job = await queue.enqueue('traced', { n: 6 }, { traceContext: `${traceparent} congo=t61rcWkgMzE` });
    const processed = await jobSpan(job.id);
    expect(processed.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(processed.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(processed.parentSpanContext?.traceState?.get('congo')).toBe('t61rcWkgMzE');
    expect(spansNamed('send traced')).toEqual([]);
  });

  it('enqueueMany makes one send span whose context every job carries', async () => {
    const refs = await app.startActiveSpan('batch', async (span) => {
      const r = await queue.enqueueMany([1, 2, 3].map((n) => ({ type: 'traced' as const, payload: { n: 100 + n } })));
      span.end();
      return r;
    });
    const processed = await Promise.all(refs.map((r) => jobSpan(r.id)));
    const [send] = spansNamed('send traced').filter((s) => s.attributes['messaging.batch.message_count'] === 3);
    expect(send?.kind).toBe(SpanKind.PRODUCER);
    for (const p of processed) expect(p.parentSpanContext?.spanId).toBe(send?.spanContext().spanId);
  });

  it('createTxEnqueuer, in the app process, stores the active span context', async () => {
    const tx = createTxEnqueuer({ jobs });
    const client = new pg.Client({ connectionString: t.db.url });
    await client.connect();
    try {
      const { job, span } = await app.startActiveSpan('request', async (s) => {
        await client.query('BEGIN');
        const j = await tx.enqueue(client, 'traced', { n: 7 });
        await client.query('COMMIT');
        s.end();
        return { job: j, span: s };
      });
      const processed = await jobSpan(job.id);
      expect(processed.parentSpanContext?.spanId).toBe(span.spanContext().spanId);
    } finally {
      await client.end();
    }
  });

  it('a bad traceContext is refused at enqueue with a clear error and stores nothing', async () => {
    const before = await t.db.pool.query('SELECT count(*)::int AS n FROM task_queue');
    for (const bad of [
      'not a traceparent',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01', // all-zero trace id
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', // all-zero span id
      'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', // version ff
      '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', // uppercase
      `00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ${'x'.repeat(1000)}`, // over 1024
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 a=\u0001', // control character
    ]) {
      const error = await queue.enqueue('traced', { n: 8 }, { traceContext: bad }).catch((e: unknown) => e);
      expect(error, bad).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<never>).data).toMatchObject({ code: 'BAD_REQUEST' });
      expect((error as Error).message).toMatch(/traceContext: must be (a W3C traceparent|at most 1024 characters)/);
    }
    const after = await t.db.pool.query('SELECT count(*)::int AS n FROM task_queue');
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('records messaging.process.duration per attempt, by queue, type and error.type', async () => {
    const ok = await queue.enqueue('traced', { n: 9 });
    const bad = await queue.enqueue('broken', { n: 10 });
    await Promise.all([jobSpan(ok.id), jobSpan(bad.id)]);
    await metricReader.forceFlush();
    const points = metricExporter
      .getMetrics()
      .flatMap((r) => r.scopeMetrics)
      .filter((s) => s.scope.name === 'skipq')
      .flatMap((s) => s.metrics)
      .filter((m): m is HistogramMetricData => m.descriptor.name === 'messaging.process.duration')
      .at(-1)?.dataPoints;
    expect(points).toBeDefined();
    const traced = points?.find((p) => p.attributes['skipq.job.type'] === 'traced' && p.attributes['error.type'] === undefined);
    const broken = points?.find((p) => p.attributes['skipq.job.type'] === 'broken');
    expect(traced?.attributes).toMatchObject({ 'messaging.system': 'skipq', 'messaging.operation.name': 'process', 'messaging.destination.name': 'traces-q' });
    expect(traced?.value.count).toBeGreaterThanOrEqual(1);
    expect(broken?.attributes['error.type']).toBe('HANDLER_ERROR');
    expect(broken?.value.count).toBeGreaterThanOrEqual(1);
    expect(metricExporter.getMetrics()[0]?.scopeMetrics.find((s) => s.scope.name === 'skipq')?.metrics[0]?.descriptor.unit).toBe('s');
  });

  it("the server's enqueue and claim run in SERVER spans that link to the job's creation context", async () => {
    const job = await app.startActiveSpan('caller', async (span) => {
      const ref = await queue.enqueue('traced', { n: 11 });
      span.end();
      return ref;
    });
    const processed = await jobSpan(job.id);
    const send = spansNamed('send traced').find((s) => s.attributes['messaging.message.id'] === job.id);
    const sendId = send?.spanContext().spanId;
    expect(sendId).toBeDefined();
    const linksToSend = (s: ReadableSpan): boolean => s.links.some((l) => l.context.spanId === sendId);
    const enqueueSpan = exporter.getFinishedSpans().find((s) => s.name.startsWith('skipq jobs.enqueue') && linksToSend(s));
    const claimSpan = exporter.getFinishedSpans().find((s) => s.name === 'skipq worker.claim' && linksToSend(s));
    expect(enqueueSpan?.kind).toBe(SpanKind.SERVER);
    expect(enqueueSpan?.attributes).toMatchObject({ 'rpc.system': 'trpc', 'skipq.trpc.code': 'OK' });
    expect(claimSpan?.kind).toBe(SpanKind.SERVER);
    expect(claimSpan?.attributes['rpc.method']).toBe('worker.claim');
    expect(processed.parentSpanContext?.spanId).toBe(sendId);
  });

  it("a refused call's server span has status ERROR with tRPC's code", async () => {
    await queue.enqueue('traced', { n: 12 }, { traceContext: 'bad' }).catch(() => undefined);
    await waitFor(async () => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER && s.attributes['skipq.trpc.code'] === 'BAD_REQUEST'), 5000, 'the refused call');
    const refused = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER && s.attributes['skipq.trpc.code'] === 'BAD_REQUEST');
    expect(refused?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'BAD_REQUEST' });
  });

  it('the propagator the app registers plays no part: the stored context is W3C', () => {
    // No global propagator is registered in this file: inject writes nothing, yet the tests above carried contexts.
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    expect(carrier).toEqual({});
  });
});
