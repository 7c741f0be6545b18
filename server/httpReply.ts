import type { IncomingMessage, ServerResponse } from 'node:http';
import { getTRPCErrorShape, transformTRPCResponse } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { QueueContext } from './context.js';
import { toTRPCError, type QueueError } from './errors.js';
import { stringifyAnswer } from './json.js';
import { appRouter } from './routers/_app.js';

/** Writes a JSON answer with its length (RawJson values spliced in as they are). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, end = true): void {
  // Encoded once: byteLength and then end(text) walked a claim's 2 MB answer twice (byteLength was 9% of the server's busy time in a 4 KiB-payload drain).
  const bytes = Buffer.from(stringifyAnswer(body));
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(bytes.length) });
  if (end) res.end(bytes);
  else res.write(bytes);
}

/**
 * Answers a request that tRPC never saw (refused before its body was read) with
 * a domain error in tRPC's own wire format: one error per call of a batch, so
 * every tRPC client reads it like any other error. With `end` false the whole
 * answer is written but the response is left open, for the caller to end.
 */
/** The request id the server gave this response (its `x-request-id` header). */
export function requestIdOf(res: ServerResponse): string | undefined {
  const id = res.getHeader('x-request-id');
  return typeof id === 'string' ? id : undefined;
}

/** What a REST call's error answers: tRPC's code, skipq's, and the formatter's message, issues and request id (server/rest.ts). */
export interface RestErrorBody {
  code: string;
  skipqCode?: string;
  message: string;
  issues?: ReadonlyArray<{ path: PropertyKey[]; message: string }>;
  requestId?: string;
}

/** The REST form of a tRPC error shape (as the router's error formatter made it): plain JSON, no envelope. */
export function restErrorBody(shape: { message: string; data: { code: string; skipqCode?: string; issues?: RestErrorBody['issues']; requestId?: string } }): RestErrorBody {
  const { code, skipqCode, issues, requestId } = shape.data;
  return { code, ...(skipqCode ? { skipqCode } : {}), message: shape.message, ...(issues ? { issues } : {}), ...(requestId ? { requestId } : {}) };
}

export function sendRefusal(req: IncomingMessage, res: ServerResponse, refusal: QueueError, headers: Record<string, string> = {}, end = true): void {
  const config = appRouter._def._config;
  const url = new URL(req.url ?? '/', 'http://localhost');
  // The REST surface and its document answer errors as plain JSON.
  if (url.pathname.startsWith('/api/') || url.pathname === '/openapi.json') {
    const requestId = requestIdOf(res);
    const error = toTRPCError(refusal);
    const shape = getTRPCErrorShape({ config, error, type: 'unknown', path: undefined, input: undefined, ctx: (requestId ? { requestId } : undefined) as QueueContext | undefined });
    return sendJson(res, getHTTPStatusCodeFromError(error), restErrorBody(shape), headers, end);
  }
  const batch = url.searchParams.get('batch') === '1';
  const joined = decodeURIComponent(url.pathname.replace(/^\/trpc\/?/, ''));
  const paths = batch ? joined.split(',') : [joined];
  const error = toTRPCError(refusal);
  const type = req.method === 'GET' ? 'query' : 'mutation';
  // The formatter reads only `requestId` (and `deps`, absent here) from the context.
  const requestId = requestIdOf(res);
  const ctxWithId = (requestId ? { requestId } : undefined) as QueueContext | undefined;
  const shapes = paths.map((path) => ({ error: getTRPCErrorShape({ config, error, type, path, input: undefined, ctx: ctxWithId }) }));
  sendJson(res, getHTTPStatusCodeFromError(error), transformTRPCResponse(config, batch ? shapes : (shapes[0] as (typeof shapes)[number])), headers, end);
}
