import type { IncomingMessage, ServerResponse } from 'node:http';
import { callTRPCProcedure, getTRPCErrorShape, TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { z } from 'zod';
import { ERROR_CODES } from '../shared/index.js';
import type { QueueContext } from './context.js';
import { QueueError, trpcErrorOf } from './errors.js';
import { restErrorBody, sendJson } from './httpReply.js';
import { appRouter } from './routers/_app.js';
import type { ProcedureMeta } from './trpc.js';

/**
 * The plain-JSON REST surface: every procedure with `meta.openapi` (see
 * server/openapi.ts for the document), served at its `/api/...` path through
 * the same procedure, middleware (keys, roles, error mapping), input and
 * output schemas as over tRPC, behind the same gate (httpGate.ts: the key is
 * checked and the body budgeted before the body is read). Bodies and answers
 * are plain JSON, dates ISO 8601 strings; an error is
 * `{ code, skipqCode, message, issues?, requestId }` with its HTTP status.
 *
 * Why not trpc-to-openapi's own HTTP handler: it coerces query strings by
 * setting `coerce` on the router's zod schemas in place, on every call, POST
 * bodies included; after one REST call tRPC itself would accept
 * `{"retry": "false"}` as `retry: true` and `null` as the number 0. Here the
 * strings of a query are converted per field, and the schemas are left alone.
 */

/** The REST prefix. */
export const REST_PREFIX = '/api/';

/** One REST route: a method and a path pattern for one procedure. */
interface Route {
  method: string;
  pattern: RegExp;
  procedure: string;
  type: 'query' | 'mutation';
  input: z.ZodType | undefined;
}

interface ProcedureDef {
  type: 'query' | 'mutation' | 'subscription';
  meta?: ProcedureMeta;
  inputs: z.ZodType[];
}

/** The routes, from the procedures' meta: `{name}` in a path is an input field. */
function routesOf(): Route[] {
  const routes: Route[] = [];
  // Flat at run time ("jobs.enqueue"), whatever its type says.
  const procedures = appRouter._def.procedures as unknown as Record<string, { _def: ProcedureDef }>;
  for (const [procedure, { _def: def }] of Object.entries(procedures)) {
    const openapi = def.meta?.openapi;
    if (!openapi || def.type === 'subscription') continue;
    const source = openapi.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{(\w+)\\?\}/g, '(?<$1>[^/]+)');
    routes.push({ method: openapi.method, pattern: new RegExp(`^${source}/?$`), procedure, type: def.type, input: def.inputs[0] });
  }
  return routes;
}

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType; options?: z.ZodType[] };
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The schema under optional, nullable, default, prefault and readonly wrappers. */
function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if (def.innerType && ['optional', 'nullable', 'default', 'prefault', 'readonly', 'nonoptional', 'catch'].includes(def.type)) current = def.innerType;
    else return current;
  }
}

/** The array schema a field takes a list through: the field itself, or an option of its union (`status`: one or many). */
function listOf(field: z.ZodType): { array: z.ZodType; only: boolean } | undefined {
  const def = defOf(unwrap(field));
  if (def.type === 'array') return { array: unwrap(field), only: true };
  const option = def.type === 'union' ? def.options?.find((o) => defOf(unwrap(o)).type === 'array') : undefined;
  return option ? { array: unwrap(option), only: false } : undefined;
}

/** A query string's text as the field's type wants it; text that does not convert is left for the schema to refuse. */
function fromQueryText(schema: z.ZodType, text: string): unknown {
  const kind = defOf(unwrap(schema)).type;
  if (kind === 'number' && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (kind === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

/**
 * A GET's query as the input object, by the input schema's fields:
 * `?limit=10` is the number 10, `?status=failed&status=pending` (or
 * `status[]=...`) a list. Unknown names are passed on for the schema to refuse.
 */
function queryInput(schema: z.ZodType | undefined, params: URLSearchParams): Record<string, unknown> {
  const shape = schema ? defOf(unwrap(schema)).shape : undefined;
  const input: Record<string, unknown> = {};
  for (const name of new Set(params.keys())) {
    const key = name.endsWith('[]') ? name.slice(0, -2) : name;
    const values = params.getAll(name);
    const field = shape?.[key];
    const list = field ? listOf(field) : undefined;
    if (!field) input[key] = values.length === 1 ? values[0] : values;
    // A repeated scalar stays a list, for the schema to refuse.
    else if (!list) input[key] = values.length === 1 ? fromQueryText(field, values[0] as string) : values;
    else {
      const items = values.map((v) => fromQueryText(defOf(list.array).element as z.ZodType, v));
      input[key] = list.only || items.length > 1 || name.endsWith('[]') ? items : items[0];
    }
  }
  return input;
}

// Dates travel as ISO 8601 text; the schemas (shared with tRPC, where superjson carries Dates) want Dates.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Turns ISO strings into Dates where the schema has a date field (runAt), walking objects and arrays. */
function reviveDates(schema: z.ZodType | undefined, value: unknown): unknown {
  if (!schema) return value;
  const inner = unwrap(schema);
  const def = defOf(inner);
  if (def.type === 'date') return typeof value === 'string' && ISO_DATE.test(value) ? new Date(value) : value;
  if (def.type === 'pipe' && def.in) return reviveDates(def.in, value);
  if (def.type === 'array' && def.element && Array.isArray(value)) return value.map((v) => reviveDates(def.element, v));
  if (def.type === 'object' && def.shape && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    for (const [key, field] of Object.entries(def.shape)) if (key in record) record[key] = reviveDates(field, record[key]);
  }
  return value;
}

/** Options of {@link createRest}. */
export interface RestOptions {
  /** Told of every failed call (the server logs its 5xx). */
  onError(error: TRPCError, path: string, ctx: QueueContext): void;
}

/**
 * Answers a request under `/api/` and returns true, or returns false for any
 * other path. The caller was identified and the body read by the gate.
 */
export function createRest(options: RestOptions): (req: IncomingMessage, res: ServerResponse, ctx: QueueContext, text: string | undefined) => boolean {
  const routes = routesOf();
  const config = appRouter._def._config;

  const fail = (res: ServerResponse, ctx: QueueContext, cause: unknown, procedure: string, type: 'query' | 'mutation'): void => {
    const error = trpcErrorOf(cause);
    options.onError(error, procedure, ctx);
    const shape = getTRPCErrorShape({ config, error, type, path: procedure, input: undefined, ctx });
    sendJson(res, getHTTPStatusCodeFromError(error), restErrorBody(shape));
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, ctx: QueueContext, route: Route, params: Record<string, string>, url: URL, body: string | undefined): Promise<void> => {
    let text = body;
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const data: unknown = await callTRPCProcedure({
        router: appRouter,
        path: route.procedure,
        type: route.type,
        ctx,
        signal: abort.signal,
        batchIndex: 0,
        // Runs inside the procedure, so a bad body is refused like any other bad input.
        getRawInput: async () => {
          const raw = text ?? '';
          text = undefined;
          let input: unknown;
          if (route.method === 'GET' || route.method === 'DELETE') {
            input = queryInput(route.input, url.searchParams);
          } else if (raw.trim().length > 0) {
            if (!req.headers['content-type']?.startsWith('application/json')) {
              throw new TRPCError({ code: 'UNSUPPORTED_MEDIA_TYPE', message: `a request body must be JSON (Content-Type: application/json), not ${JSON.stringify(req.headers['content-type'] ?? '')}` });
            }
            try {
              input = JSON.parse(raw);
            } catch (error) {
              throw new QueueError(ERROR_CODES.INVALID_INPUT, `request body is not JSON: ${(error as Error).message}`);
            }
          }
          const fromPath = Object.entries(params);
          if (fromPath.length > 0) {
            if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
              throw new QueueError(ERROR_CODES.INVALID_INPUT, 'request body must be a JSON object');
            }
            input = { ...(input as object | undefined), ...Object.fromEntries(fromPath) };
          }
          // No body, no query, no path: no input (a procedure whose input is all optional takes that).
          if (fromPath.length === 0 && raw.length === 0 && url.search.length <= 1) return undefined;
          return reviveDates(route.input, input);
        },
      });
      sendJson(res, 200, data === undefined ? null : data);
    } catch (cause) {
      fail(res, ctx, cause, route.procedure, route.type);
    }
  };

  return (req, res, ctx, text) => {
    if (!req.url?.startsWith(REST_PREFIX)) return false;
    const url = new URL(req.url, 'http://localhost');
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      pathname = url.pathname;
    }
    const matching = routes.map((route) => ({ route, match: route.pattern.exec(pathname) })).filter((m) => m.match !== null);
    const found = matching.find((m) => m.route.method === req.method);
    if (!found) {
      const error = matching.length > 0
        ? new TRPCError({ code: 'METHOD_NOT_SUPPORTED', message: `${req.method} is not supported on ${url.pathname}; use ${matching.map((m) => m.route.method).join(' or ')}` })
        : new TRPCError({ code: 'NOT_FOUND', message: `no REST route ${req.method} ${url.pathname}; the routes are listed in /openapi.json` });
      const shape = getTRPCErrorShape({ config, error, type: 'unknown', path: undefined, input: undefined, ctx });
      sendJson(res, getHTTPStatusCodeFromError(error), restErrorBody(shape), matching.length > 0 ? { allow: matching.map((m) => m.route.method).join(', ') } : {});
      return true;
    }
    void serve(req, res, ctx, found.route, { ...found.match?.groups }, url, text);
    return true;
  };
}
