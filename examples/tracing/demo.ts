// npm run example:tracing (DATABASE_URL set, or an embedded PostgreSQL under .data)
// Registers an OpenTelemetry SDK the way an app would, then enqueues a job inside
// a span and prints the trace skipq made: the app's span, the producer's `send`
// span, the worker's `process` span and a span made inside the handler.
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { z } from 'zod';
import { createQueueClient, createWorker, defineJobs } from '../../client/index.js';
import { createQueueServer } from '../../server/app.js';

// The app's SDK: any exporter works (OTLP to a collector, Console...); in memory here to print the tree.
const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
const tracer = trace.getTracer('orders-app');

const jobs = defineJobs({
  'send-receipt': { payload: z.object({ orderId: z.string() }), result: z.object({ sent: z.boolean() }) },
});

const server = await createQueueServer({ jobs, port: 0, log: () => {}, ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}) });
const queue = createQueueClient({ url: server.url, jobs });
const worker = createWorker({
  url: server.url,
  jobs,
  handlers: {
    // Runs inside skipq's `process send-receipt` span: this span is its child.
    'send-receipt': ({ orderId }) => tracer.startActiveSpan('smtp send', (span) => {
      span.setAttribute('order.id', orderId);
      span.end();
      return { sent: true };
    }),
  },
});
worker.start();
try {
  await tracer.startActiveSpan('POST /orders', async (span) => {
    const job = await queue.enqueue('send-receipt', { orderId: 'o-42' });
    span.end();
    console.log('result:', await queue.result(job.id, { timeoutMs: 10_000 }));
  });
  await new Promise((r) => setTimeout(r, 100));
  const spans = exporter.getFinishedSpans();
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const depth = (s: (typeof spans)[number]): number => (s.parentSpanContext ? 1 + depth(byId.get(s.parentSpanContext.spanId) ?? s) : 0);
  for (const s of [...spans].sort((a, b) => depth(a) - depth(b))) {
    console.log(`${'  '.repeat(depth(s))}${s.name} [${SpanKind[s.kind]}] trace ${s.spanContext().traceId}`, JSON.stringify(s.attributes));
  }
} finally {
  await worker.stop();
  await queue.close();
  await server.close();
}
