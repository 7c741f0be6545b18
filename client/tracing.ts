import type { Attributes, Context, Histogram, MeterProvider, Span, Tracer } from '@opentelemetry/api';
import { otelApi, registeredOtel } from './otel.js';

/**
 * skipq's OpenTelemetry instrumentation, through `@opentelemetry/api` only: the
 * application registers its own SDK (tracer and meter providers); without one
 * every call below is the API's no-op (no span is recorded, nothing is
 * allocated past a non-recording span object).
 *
 * Conventions (OpenTelemetry messaging semantic conventions): the producer
 * client makes a PRODUCER span per `enqueue` call (`send <type>`) whose
 * context is the job's creation context, stored with the job as a W3C
 * traceparent; the worker makes a CONSUMER span per attempt (`process <type>`),
 * parented on that creation context and also linked to it. The job type stands
 * for `{destination}` in span names because workers take jobs by type; the
 * queue is `messaging.destination.name`.
 */
export const INSTRUMENTATION_NAME = 'skipq';

let cachedTracer: Tracer | undefined;
/** The API's tracer: a proxy that follows whichever provider the app registers, before or after this call. */
export function tracer(): Tracer {
  cachedTracer ??= otelApi().trace.getTracer(INSTRUMENTATION_NAME);
  return cachedTracer;
}

let cachedDuration: { provider: MeterProvider; histogram: Histogram } | undefined;
/**
 * `messaging.process.duration` (seconds), the semantic conventions' histogram
 * of handler runs: one observation per attempt, from payload check to outcome.
 * A no-op until the app registers a MeterProvider. Made again when the global
 * provider changes: the metrics API has no proxy like the tracer's, so an
 * instrument made before the app registered its SDK would stay a no-op.
 */
export function processDuration(): Histogram {
  const provider = otelApi().metrics.getMeterProvider();
  if (cachedDuration?.provider === provider) return cachedDuration.histogram;
  const histogram = provider.getMeter(INSTRUMENTATION_NAME).createHistogram('messaging.process.duration', {
    description: 'Duration of one attempt of a skipq job on a worker: payload check, handler, result check',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300] },
  });
  cachedDuration = { provider, histogram };
  return histogram;
}

/** Attributes every skipq span and measurement carries. */
export const SYSTEM_ATTRIBUTES = Object.freeze({ 'messaging.system': 'skipq' });

/**
 * The W3C trace context of `ctx`'s span as a job stores it: the traceparent,
 * then a space and the tracestate when there is one. Undefined when `ctx` has
 * no valid span context (no SDK, or no active span). Written here rather than
 * through the app's propagator: the column's format is W3C whatever the app
 * propagates over HTTP (B3, Jaeger...), and a bare tracer provider registers
 * no propagator at all.
 */
export function traceContextOf(ctx?: Context): string | undefined {
  const api = ctx === undefined ? registeredOtel() : otelApi();
  if (api === undefined) return undefined;
  const sc = api.trace.getSpanContext(ctx ?? api.context.active());
  if (!sc || !api.isSpanContextValid(sc)) return undefined;
  const parent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const state = sc.traceState?.serialize();
  // 1024 in all (the column's CHECK): a tracestate that would not fit is left out, the trace still continues.
  return state && parent.length + 1 + state.length <= 1024 ? `${parent} ${state}` : parent;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The remote context a stored trace context names, or undefined (none, or not a valid traceparent). */
export function contextFromTrace(text: string | null | undefined): Context | undefined {
  if (!text) return undefined;
  const space = text.indexOf(' ');
  const m = TRACEPARENT.exec(space < 0 ? text : text.slice(0, space));
  if (!m || m[1] === 'ff') return undefined;
  const { createTraceState, isSpanContextValid, ROOT_CONTEXT, trace } = otelApi();
  const sc = {
    traceId: m[2] as string,
    spanId: m[3] as string,
    traceFlags: Number.parseInt(m[4] as string, 16) & 0xff,
    isRemote: true,
    ...(space < 0 ? {} : { traceState: createTraceState(text.slice(space + 1)) }),
  };
  return isSpanContextValid(sc) ? trace.setSpanContext(ROOT_CONTEXT, sc) : undefined;
}

/** Ends a span as failed: the exception (when something was thrown) and status ERROR with `message`. */
export function failSpan(span: Span, message: string, errorType: string, thrown?: unknown): void {
  if (!span.isRecording()) return;
  if (thrown !== undefined) span.recordException(thrown instanceof Error ? thrown : String(thrown));
  span.setAttribute('error.type', errorType);
  span.setStatus({ code: otelApi().SpanStatusCode.ERROR, message: message.slice(0, 1024) });
}

/**
 * Starts the PRODUCER span of one `enqueue` (or one `enqueueMany` call) in the
 * active context. Its context is injected into the jobs it sends. Undefined
 * while nothing is registered with OpenTelemetry (the span would be a no-op).
 */
export function startSendSpan(name: string, attributes: Attributes): { span: Span; traceContext: string | undefined } | undefined {
  const api = registeredOtel();
  if (api === undefined) return undefined;
  const parent = api.context.active();
  const span = tracer().startSpan(name, { kind: api.SpanKind.PRODUCER, attributes: { ...SYSTEM_ATTRIBUTES, 'messaging.operation.type': 'send', 'messaging.operation.name': 'send', ...attributes } }, parent);
  return { span, traceContext: traceContextOf(api.trace.setSpan(parent, span)) };
}

/**
 * Ends a send span when its promise settles, passing the answer or error through.
 */
export function endSendSpan<T>(span: Span | undefined, answer: Promise<T>): Promise<T> {
  if (span === undefined) return answer;
  return answer.then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      failSpan(span, error instanceof Error ? error.message : String(error), error instanceof Error ? error.name : 'Error', error);
      span.end();
      throw error;
    },
  );
}

export type { Span, Context };
