import { initTRPC } from '@trpc/server';
import superjson from 'superjson';
import { ERROR_CODES } from '../shared/index.js';
import type { Principal, QueueContext, Role } from './context.js';
import { QueueError, toQueueError, toTRPCError } from './errors.js';

const t = initTRPC.context<QueueContext>().create({
  transformer: superjson,
  // Never send stack traces to clients.
  isDev: false,
  errorFormatter({ shape, error }) {
    const domain = error.cause instanceof QueueError ? error.cause : undefined;
    const code = domain?.code ?? (error.code === 'INTERNAL_SERVER_ERROR' ? ERROR_CODES.INTERNAL : error.code === 'BAD_REQUEST' ? ERROR_CODES.INVALID_INPUT : error.code);
    const { stack: _stack, ...data } = shape.data as typeof shape.data & { stack?: string };
    return {
      ...shape,
      message: error.code === 'INTERNAL_SERVER_ERROR' && !domain ? 'internal server error (logged on the server)' : shape.message,
      data: { ...data, code, ...(domain?.issues ? { issues: domain.issues } : {}) },
    };
  },
});

/**
 * The one place errors are mapped: a domain error, a validation error or a
 * database fault thrown anywhere below becomes its tRPC code here.
 */
const mapErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok) {
    const domain = toQueueError(result.error.cause);
    if (domain) throw toTRPCError(domain);
  }
  return result;
});

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
      throw new QueueError(ERROR_CODES.FORBIDDEN, `this call needs a key with role "${role}" or "admin"; this key has role "${principal.role}"`);
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
