import { SpanKind, SpanStatusCode, trace, type Link } from '@opentelemetry/api';
import { contextFromTrace, SYSTEM_ATTRIBUTES, tracer } from '../client/tracing.js';

/** Links one span keeps at most (a claim hands out up to LIMITS.claimLimit jobs, an enqueueMany up to 500). */
const MAX_LINKS = 128;

/** The trace contexts of the jobs a call carries: in its input (enqueues) or its answer (claims). */
function carried(path: string, input: unknown, output: unknown): unknown[] {
  if (path === 'jobs.enqueue') return [(input as { traceContext?: unknown } | undefined)?.traceContext];
  if (path === 'jobs.enqueueMany') return ((input as { jobs?: unknown[] } | undefined)?.jobs ?? []).map((j) => (j as { traceContext?: unknown } | null)?.traceContext);
  if (path === 'worker.claim') return ((output as { jobs?: unknown[] } | undefined)?.jobs ?? []).map((j) => (j as { traceContext?: unknown } | null)?.traceContext);
  return [];
}

function linksOf(texts: unknown[]): Link[] {
  const links: Link[] = [];
  for (const text of texts) {
    if (links.length >= MAX_LINKS) break;
    const ctx = typeof text === 'string' ? contextFromTrace(text) : undefined;
    const sc = ctx ? trace.getSpanContext(ctx) : undefined;
    if (sc) links.push({ context: sc });
  }
  return links;
}

/** What a procedure tells its span when it is answered: tRPC's code ('OK' on success) and its output. */
export type ProcedureOutcome = (code: string, output?: unknown) => void;

/**
 * Runs one tRPC procedure in a SERVER span `skipq <path>`, a child of the
 * active context (the HTTP server span when the app instruments node:http).
 * Enqueues and claims link to the creation context of every job they carry
 * (at most 128), so a job's trace leads to the calls that stored it and handed
 * it out. `call` gets the getRawInput to pass on to `next()`: for an enqueue
 * in a recording span it keeps the input it read, for the links (the fast
 * path's reader hands the body out once); otherwise it is the caller's own.
 * A no-op without an SDK: nothing is kept or read for links then.
 */
export function inProcedureSpan<T>(
  path: string,
  getRawInput: () => Promise<unknown>,
  call: (outcome: ProcedureOutcome, getRawInput: () => Promise<unknown>) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(`skipq ${path}`, { kind: SpanKind.SERVER, attributes: { ...SYSTEM_ATTRIBUTES, 'rpc.system': 'trpc', 'rpc.method': path } }, async (span) => {
    const enqueue = path === 'jobs.enqueue' || path === 'jobs.enqueueMany';
    let kept: Promise<unknown> | undefined;
    const reader = enqueue && span.isRecording() ? () => (kept ??= getRawInput()) : getRawInput;
    let answered: { code: string; output?: unknown } | undefined;
    try {
      return await call((code, output) => {
        answered = { code, output };
      }, reader);
    } finally {
      if (span.isRecording() && answered) {
        span.setAttribute('skipq.trpc.code', answered.code);
        if (answered.code !== 'OK') span.setStatus({ code: SpanStatusCode.ERROR, message: answered.code });
        if (enqueue || path === 'worker.claim') {
          const input = kept ? await kept.catch(() => undefined) : undefined;
          span.addLinks(linksOf(carried(path, input, answered.output)));
        }
      }
      span.end();
    }
  });
}
