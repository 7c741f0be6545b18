import { initTRPC, type TRPCError } from '@trpc/server';
import superjson from 'superjson';
import { ERROR_CODES, LIMITS, type ErrorCode } from '../shared/index.js';
import type { Principal, QueueContext, Role } from './context.js';
import { readSsePingMs } from './env.js';
import { QueueError, toQueueError, toTRPCError } from './errors.js';
import { inProcedureSpan } from './tracing.js';

/**
 * superjson, except that input it cannot read is refused with a message that
 * says why: superjson walks the input recursively, so a hostile body nested
 * 100,000 levels deep overflows the stack ("Maximum call stack size exceeded").
 */
const transformer = {
  input: {
    serialize: (value: unknown) => superjson.serialize(value),
    deserialize: (value: unknown): unknown => {
      try {
        // In place: the input was just parsed from the request, so superjson's
        // default deep copy of it only made garbage.
        return superjson.deserialize(value as Parameters<typeof superjson.deserialize>[0], { inPlace: true });
      } catch (error) {
        if (error instanceof RangeError && /call stack/i.test(error.message)) {
          throw new QueueError(ERROR_CODES.INVALID_INPUT, `input is nested too deeply to read; a payload, result or progress value may nest at most ${LIMITS.jsonDepth} levels`);
        }
        throw new QueueError(ERROR_CODES.INVALID_INPUT, `input is not superjson ({"json": <input>, "meta"?: ...}): ${(error as Error).message}`);
      }
    },
  },
  output: superjson,
};

/** skipq's code for an error tRPC raised itself (bad input, its own body limit, a bug); tRPC-only codes (404 path, 405, 415) have none. */
const SKIPQ_CODE_OF_TRPC: Partial<Record<TRPCError['code'], ErrorCode>> = {
  BAD_REQUEST: ERROR_CODES.INVALID_INPUT,
  PARSE_ERROR: ERROR_CODES.INVALID_INPUT,
  PAYLOAD_TOO_LARGE: ERROR_CODES.PAYLOAD_TOO_LARGE,
  INTERNAL_SERVER_ERROR: ERROR_CODES.INTERNAL,
};

/**
 * What a procedure may declare besides its schemas: `openapi` puts it on the
 * plain-JSON REST surface (server/rest.ts) and in `/openapi.json`
 * (server/openapi.ts). The shape trpc-to-openapi reads, declared here so the
 * clients' declarations need none of its types.
 */
export type ProcedureMeta = {
  openapi?: {
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    /** Under `/api`; `{name}` segments are input fields. */
    path: `/api/${string}`;
    summary?: string;
    description?: string;
    /** False for a call that needs no key. Default true. */
    protect?: boolean;
  };
};

/**
 * How often an idle events.jobs stream carries an SSE `ping`, in ms. Proxies
 * cut a response that sends nothing for a while (nginx's proxy_read_timeout
 * and AWS ALB's idle timeout default to 60 s, Cloudflare's to 100 s): 10 s
 * stays well inside all of them at a few bytes a ping. tRPC reads its `sse`
 * options from the one initTRPC, so this is per process, not per server:
 * SKIPQ_SSE_PING_MS (read once, when this module loads, by env.ts's
 * readSsePingMs) sets it, tests included.
 */
export const SSE_PING_MS = readSsePingMs();

/**
 * A client that hears nothing (not even a ping) for this long takes the
 * server for dead and reconnects with its last event id: three pings missed.
 * The server sends it to the client (tRPC's `connected` event); the client
 * has nothing to set. Without pings (0), never: an idle stream is silent.
 */
export const SSE_RECONNECT_AFTER_INACTIVITY_MS = 3 * SSE_PING_MS;

const t = initTRPC.context<QueueContext>().meta<ProcedureMeta>().create({
  transformer,
  // tRPC's ping wraps each stream in a race of its next event with a timer,
  // per event. Measured (W3-SUB10, one round each, one sitting, this 2-core
  // machine ~100% busy with other sessions): pings on 503 jobs/s and 922 ms of
  // server CPU per 1,000 jobs, off 810 jobs/s and 623 ms. Kept on by default
  // (proxies, dead servers); SKIPQ_SSE_PING_MS=0 turns it off where neither matters.
  // events.jobs from httpSubscriptionLink is written by server/sseCall.ts,
  // which reads these options and pings with one timer per stream instead.
  sse:
    SSE_PING_MS > 0
      ? { ping: { enabled: true, intervalMs: SSE_PING_MS }, client: { reconnectAfterInactivityMs: SSE_RECONNECT_AFTER_INACTIVITY_MS } }
      : { ping: { enabled: false } },
  // Never send stack traces to clients.
  isDev: false,
  errorFormatter({ shape, error, ctx }) {
    const domain = error.cause instanceof QueueError ? error.cause : undefined;
    // tRPC's own body limit (a body sent without Content-Length) says only "PAYLOAD_TOO_LARGE".
    const tooLarge = error.code === 'PAYLOAD_TOO_LARGE' && !domain ? `request body is over the limit of ${ctx?.deps?.maxBodyBytes ?? '?'} bytes` : undefined;
    // `data.code` stays tRPC's own code (every tRPC client reads it); skipq's reason goes beside it.
    const skipqCode = domain?.code ?? SKIPQ_CODE_OF_TRPC[error.code];
    const { stack: _stack, ...data } = shape.data as typeof shape.data & { stack?: string };
    const requestId = (ctx as Partial<QueueContext> | undefined)?.requestId;
    return {
      ...shape,
      message: error.code === 'INTERNAL_SERVER_ERROR' && !domain ? 'internal server error (logged on the server)' : (tooLarge ?? shape.message),
      data: {
        ...data,
        ...(skipqCode ? { skipqCode } : {}),
        ...(domain?.issues ? { issues: domain.issues } : {}),
        ...(requestId ? { requestId } : {}),
      },
    };
  },
});

/**
 * The one place errors are mapped: a domain error, a validation error or a
 * database fault thrown anywhere below becomes its tRPC code here.
 */
const mapErrors = t.middleware(({ next, path, ctx, getRawInput }) =>
  // Each call in a span of its own (server/tracing.ts; a no-op without an OpenTelemetry SDK).
  inProcedureSpan(path, getRawInput, async (answered, reader) => {
    const result = await next({ getRawInput: reader });
    if (!result.ok) {
      const domain = toQueueError(result.error.cause);
      const error = domain ? toTRPCError(domain) : result.error;
      ctx.deps.metrics?.request(path, error.code);
      answered(error.code);
      if (domain) throw error;
      return result;
    }
    ctx.deps.metrics?.request(path, 'OK');
    answered('OK', result.data);
    return result;
  }),
);

const ROLE_ALLOWS: Record<Role, ReadonlySet<Role>> = {
  producer: new Set(['producer', 'admin']),
  worker: new Set(['worker', 'admin']),
  admin: new Set(['admin']),
};

/** A procedure callable by keys of role `role` (and by admins). */
function procedureFor(role: Role) {
  return t.procedure.use(mapErrors).use(({ ctx, next }) => {
    const principal = ctx.principal;
    if (!principal) throw new QueueError(ERROR_CODES.UNAUTHORIZED, ctx.authError ?? 'this call needs an API key');
    if (!ROLE_ALLOWS[role].has(principal.role)) {
      throw new QueueError(ERROR_CODES.FORBIDDEN, `this call needs a key with role ${role === 'admin' ? '"admin"' : `"${role}" or "admin"`}; this key has role "${principal.role}"`);
    }
    return next({ ctx: { principal } });
  });
}

/** Builds routers. */
export const router = t.router;
/** Anyone, even without a key (health). */
export const publicProcedure = t.procedure.use(mapErrors);
/** Enqueue, get, list, cancel. */
export const producerProcedure = procedureFor('producer');
/** Claim, start, heartbeat, complete, fail, release. */
export const workerProcedure = procedureFor('worker');
/** Retry and stats. */
export const adminProcedure = procedureFor('admin');
/** Makes a server-side caller (tests, scripts). */
export const createCallerFactory = t.createCallerFactory;

/** Throws FORBIDDEN when the caller's key is limited to other queues. */
export function assertQueueAllowed(ctx: { principal: Principal }, queue: string): void {
  const allowed = ctx.principal.queues;
  if (allowed && !allowed.includes(queue)) {
    throw new QueueError(ERROR_CODES.FORBIDDEN, `this key may not use queue "${queue}"; it is limited to: ${allowed.join(', ')}`);
  }
}
