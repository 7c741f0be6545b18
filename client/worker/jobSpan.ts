import type { Histogram, TracerProvider } from '@opentelemetry/api';
import type { ClaimedJob } from '../../shared/index.js';
import { otelApi, registeredOtel } from '../otel.js';
import { contextFromTrace, failSpan, processDuration, SYSTEM_ATTRIBUTES, tracer } from '../tracing.js';
import type { RunTrace } from './run.js';

/** What the attempts launched now are traced with (see {@link telemetryNow}). */
export interface Telemetry {
  /** A CONSUMER span per attempt, the handler running in its context. */
  readonly spans: boolean;
  /** `messaging.process.duration`, or undefined while no MeterProvider is registered. */
  readonly duration: Histogram | undefined;
}

// What @opentelemetry/api hands out while nothing is registered: the
// provider behind a fresh proxy, and the class of a no-op histogram (made
// once the API is loaded).
let noop: { tracerProvider: TracerProvider; histogram: unknown; probe: symbol } | undefined;

/**
 * Whether OpenTelemetry is set up, asked once per claim's answer rather than
 * per attempt. Spans are left out only when the app registered no tracer
 * provider *and* no context manager: the API's no-op span is then seen by
 * nobody (the handler's context.active() is the root context either way).
 * With a context manager alone, the handler still runs in the span's context,
 * so the job's creation context reaches whatever it propagates. Without an
 * SDK, the span, its context and the histogram's attributes were about 8% of
 * the worker's busy time in a W3 drain of 10,000 no-op jobs (--cpu-prof).
 */
export function telemetryNow(): Telemetry {
  const api = registeredOtel();
  if (api === undefined) return NO_TELEMETRY;
  const { context, ProxyTracerProvider, ROOT_CONTEXT, trace } = api;
  noop ??= {
    tracerProvider: new ProxyTracerProvider().getDelegate(),
    histogram: api.createNoopMeter().createHistogram('skipq.probe').constructor,
    probe: api.createContextKey('skipq telemetry probe'),
  };
  const provider = trace.getTracerProvider();
  const delegate = provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider;
  let spans = delegate !== noop.tracerProvider;
  if (!spans) {
    const probe = ROOT_CONTEXT.setValue(noop.probe, true);
    spans = context.with(probe, () => context.active() === probe);
  }
  const histogram = processDuration();
  return { spans, duration: histogram.constructor === noop.histogram ? undefined : histogram };
}

/** Telemetry off: what the API's no-op objects would have done, without them. */
export const NO_TELEMETRY: Telemetry = Object.freeze({ spans: false, duration: undefined });

/** How an attempt ended, as its span and the duration histogram tell it. */
export type TracedOutcome =
  | { kind: 'complete' }
  | { kind: 'fail'; code: string; message: string }
  | { kind: 'abandoned'; reason: string };

/**
 * Starts the CONSUMER span of one attempt: `process <type>`, parented on the
 * job's creation context (the producer's `send` span, stored with the job) and
 * linked to it. The semantic conventions ask for the link (a process span may
 * stand for many messages); the parent is what makes producer → queue wait →
 * handler one trace in every trace viewer, and is allowed for a span that
 * processes one message, as each of these does. A job without a (valid) trace
 * context gets a root span.
 */
export function startJobTrace(job: ClaimedJob, workerId: string, telemetry: Telemetry): RunTrace | undefined {
  if (!telemetry.spans) return telemetry.duration ? { span: undefined, duration: telemetry.duration, startedAt: performance.now() } : undefined;
  const creation = contextFromTrace(job.traceContext);
  const { SpanKind, trace } = otelApi();
  const creationSpan = creation ? trace.getSpanContext(creation) : undefined;
  const span = tracer().startSpan(
    `process ${job.type}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        ...SYSTEM_ATTRIBUTES,
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': job.queue,
        'messaging.message.id': job.id,
        'messaging.client.id': workerId,
        'skipq.job.type': job.type,
        'skipq.job.attempt': job.attempt,
        'skipq.job.retry_count': job.retryCount,
      },
      ...(creationSpan ? { links: [{ context: creationSpan }] } : {}),
      // Without a creation context, a root span: not a child of whatever the worker's own context holds.
      ...(creation ? {} : { root: true }),
    },
    creation,
  );
  return { span, duration: telemetry.duration, startedAt: performance.now() };
}

/** Runs `fn` (the handler) inside the attempt's span, so spans the handler makes are its children. */
export function inJobTrace<T>(span: NonNullable<RunTrace['span']>, fn: () => T): T {
  const { context, trace } = otelApi();
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** Records what the handler threw on the attempt's span (the status is set when the attempt ends). */
export function recordThrown(run: RunTrace | undefined, thrown: unknown): void {
  if (run?.span?.isRecording()) run.span.recordException(thrown instanceof Error ? thrown : String(thrown));
}

/** Ends the attempt's span (status ERROR and error.type unless it completed) and records `messaging.process.duration`. */
export function endJobTrace(run: RunTrace, job: ClaimedJob, outcome: TracedOutcome): void {
  const seconds = (performance.now() - run.startedAt) / 1000;
  const errorType = outcome.kind === 'fail' ? outcome.code : outcome.kind === 'abandoned' ? outcome.reason : undefined;
  const { span } = run;
  if (span) {
    if (outcome.kind === 'fail') failSpan(span, outcome.message, outcome.code);
    else if (outcome.kind === 'abandoned') failSpan(span, `attempt abandoned: ${outcome.reason}`, outcome.reason);
    span.end();
  }
  run.duration?.record(seconds, {
    ...SYSTEM_ATTRIBUTES,
    'messaging.operation.name': 'process',
    'messaging.destination.name': job.queue,
    'skipq.job.type': job.type,
    ...(errorType === undefined ? {} : { 'error.type': errorType }),
  });
}
