import type { ClaimedJob } from '../../shared/index.js';
import { context, contextFromTrace, failSpan, processDuration, SpanKind, SYSTEM_ATTRIBUTES, trace, tracer } from '../tracing.js';
import type { RunTrace } from './run.js';

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
export function startJobTrace(job: ClaimedJob, workerId: string): RunTrace {
  const creation = contextFromTrace(job.traceContext);
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
  return { span, startedAt: performance.now() };
}

/** Runs `fn` (the handler) inside the attempt's span, so spans the handler makes are its children. */
export function inJobTrace<T>(run: RunTrace, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), run.span), fn);
}

/** Records what the handler threw on the attempt's span (the status is set when the attempt ends). */
export function recordThrown(run: RunTrace, thrown: unknown): void {
  if (run.span.isRecording()) run.span.recordException(thrown instanceof Error ? thrown : String(thrown));
}

/** Ends the attempt's span (status ERROR and error.type unless it completed) and records `messaging.process.duration`. */
export function endJobTrace(run: RunTrace, job: ClaimedJob, outcome: TracedOutcome): void {
  const seconds = (performance.now() - run.startedAt) / 1000;
  const errorType = outcome.kind === 'fail' ? outcome.code : outcome.kind === 'abandoned' ? outcome.reason : undefined;
  if (outcome.kind === 'fail') failSpan(run.span, outcome.message, outcome.code);
  else if (outcome.kind === 'abandoned') failSpan(run.span, `attempt abandoned: ${outcome.reason}`, outcome.reason);
  run.span.end();
  processDuration().record(seconds, {
    ...SYSTEM_ATTRIBUTES,
    'messaging.operation.name': 'process',
    'messaging.destination.name': job.queue,
    'skipq.job.type': job.type,
    ...(errorType === undefined ? {} : { 'error.type': errorType }),
  });
}
