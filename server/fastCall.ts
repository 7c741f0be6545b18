import type { IncomingMessage, ServerResponse } from 'node:http';
import { callTRPCProcedure, getTRPCErrorShape, transformTRPCResponse, TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { ERROR_CODES, type ClaimAnswer } from '../shared/index.js';
import type { QueueContext } from './context.js';
import { QueueError, trpcErrorOf } from './errors.js';
import { sendJson } from './httpReply.js';
import { appRouter } from './routers/_app.js';

/**
 * The mutations every producer and worker call on the hot path. A single
 * (unbatched) POST to one of these is served here, through the same router,
 * middleware, validation and error formatter, and answered in tRPC's own wire
 * format; batched calls and everything else go through tRPC's HTTP adapter.
 *
 * Why: measured on this machine, the adapter's conversion of each request to a
 * Web Request and back costs about 0.5 ms per call (a bare tRPC health call
 * 0.6-0.7 ms against 0.12 ms for plain node:http), which is most of what a
 * batched claim or enqueue spends outside PostgreSQL.
 */
const FAST_PATHS: ReadonlySet<string> = new Set([
  'jobs.enqueue',
  'jobs.enqueueMany',
  'worker.claim',
  'worker.start',
  'worker.heartbeat',
  'worker.complete',
  'worker.completeMany',
  'worker.fail',
  'worker.failMany',
  'worker.release',
]);

/**
 * superjson's wire form of a claim answer, made without superjson's walk: the
 * only value in it JSON cannot carry is the lease's Date, at the top
 * (ClaimedJob holds strings, numbers, null and RawJson payloads; outcomes are
 * strings). The walk visited every field of every job: 30 ms of the server's
 * 251 ms busy in a W3 drain of 10,000 jobs (`--cpu-prof` on a loaded machine,
 * cold code); warm, an answer of 550 jobs took 0.72 ms with the walk and
 * 0.39 ms without (stringify included). test/payloadText.test.ts checks it
 * against superjson.serialize.
 */
export function claimAnswerWire(answer: ClaimAnswer): { json: unknown; meta?: { values: Record<string, string[]>; v: number } } {
  const lease = answer.leaseExpiresAt;
  if (lease === null) return { json: answer };
  return { json: { ...answer, leaseExpiresAt: lease.toISOString() }, meta: { values: { leaseExpiresAt: ['Date'] }, v: 1 } };
}

/**
 * An answer in superjson's wire form. The claim's is built without the walk
 * (above); so is enqueueMany's, plain JSON by its output schema ({ jobs: [{
 * id, created }] }), which superjson writes as { json } alone: its walk and
 * stringify were 14-18% of the server's CPU in W2 warm, about 25% cold
 * (--cpu-prof, enqueueMany calls of 500). Undefined: the answer goes through
 * the transformer like any other.
 */
function wireOf(path: string, data: unknown): unknown {
  if (path === 'worker.claim') return claimAnswerWire(data as ClaimAnswer);
  if (path === 'jobs.enqueueMany') return { json: data };
  return undefined;
}

/** Options of {@link createFastCall}. */
export interface FastCallOptions {
  onError(error: TRPCError, path: string, ctx: QueueContext): void;
}

/**
 * Answers a hot-path call and returns true, or returns false to leave the
 * request to tRPC's adapter. The caller is identified and the body read
 * before this (httpGate.ts), so both paths share one key check and one budget.
 */
export function createFastCall(options: FastCallOptions): (req: IncomingMessage, res: ServerResponse, ctx: QueueContext, text: string | undefined) => boolean {
  const config = appRouter._def._config;

  const serve = async (res: ServerResponse, path: string, ctx: QueueContext, body: string): Promise<void> => {
    // Let go of the text once parsed: a large body should not be held twice while the call runs.
    let text: string | undefined = body;
    // The claim's long-poll ends, and jobs it took are handed back, when the caller goes away.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const data: unknown = await callTRPCProcedure({
        router: appRouter,
        path,
        type: 'mutation',
        ctx,
        signal: abort.signal,
        batchIndex: 0,
        // Runs inside the procedure, so a bad body is mapped like any other input error.
        getRawInput: async () => {
          const raw = text ?? '';
          text = undefined;
          if (raw.length === 0) return undefined;
          let parsed: unknown;
          try {
            parsed = JSON.parse(raw);
          } catch (error) {
            throw new QueueError(ERROR_CODES.INVALID_INPUT, `request body is not JSON: ${(error as Error).message}`);
          }
          return config.transformer.input.deserialize(parsed);
        },
      });
      const wire = wireOf(path, data);
      sendJson(res, 200, wire !== undefined ? { result: { data: wire } } : transformTRPCResponse(config, { result: { data } }));
    } catch (cause) {
      const error = trpcErrorOf(cause);
      options.onError(error, path, ctx);
      const shape = getTRPCErrorShape({ config, error, type: 'mutation', path, input: undefined, ctx });
      sendJson(res, getHTTPStatusCodeFromError(error), transformTRPCResponse(config, { error: shape }));
    }
  };

  return (req, res, ctx, text) => {
    if (text === undefined || req.method !== 'POST' || !req.url?.startsWith('/trpc/')) return false;
    // Anything but a JSON body gets the adapter's own answer (415).
    if (!req.headers['content-type']?.startsWith('application/json')) return false;
    const path = req.url.slice('/trpc/'.length);
    // A query string (?batch=1) or any other path is the adapter's.
    if (!FAST_PATHS.has(path)) return false;
    void serve(res, path, ctx, text);
    return true;
  };
}
