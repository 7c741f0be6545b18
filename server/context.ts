import type pg from 'pg';
import type { JobRegistry } from '../shared/index.js';
import type { PrismaClient } from './db/prisma.js';
import type { Enqueuer } from './enqueue.js';
import type { EventsRoom } from './events.js';
import type { LeaseDeps } from './leases.js';
import type { ServerMetrics } from './metrics.js';
import type { NotifyHub } from './notify.js';
import { OPEN_PRINCIPAL, type Principal } from './principal.js';

// Kept importable from here: routers and tests have always found them in the context file.
export { OPEN_PRINCIPAL, storedWorkerId, type Principal, type Role } from './principal.js';

/** Everything a procedure may use, built once per server. */
export interface ServerDeps extends LeaseDeps {
  pool: pg.Pool;
  hub: NotifyHub;
  registry: JobRegistry | null;
  enqueuer: Enqueuer;
  prisma: PrismaClient;
  version: string;
  /** The request body limit, for error messages. */
  maxBodyBytes?: number;
  metrics?: ServerMetrics;
  /** Live events (events.jobs). */
  events?: EventsRoom;
}

/** The tRPC context: who is calling, or why they could not be identified. */
export interface QueueContext {
  deps: ServerDeps;
  principal: Principal | null;
  authError: string | null;
  /** Leave payloads and results out of job views (a browser, with the dashboard's `showPayloads: false`). */
  hidePayloads?: boolean;
  /** The request's id (`x-request-id`, given or generated): in the response header, error data and log lines. */
  requestId?: string;
}

/** Builds a context without HTTP; tests and `createCaller` use it directly. */
export function createContextInner(deps: ServerDeps, principal: Principal | null = OPEN_PRINCIPAL, authError: string | null = null): QueueContext {
  return { deps, principal, authError };
}
