import type pg from 'pg';
import type { JobRegistry } from '../shared/index.js';
import type { PrismaClient } from './db/prisma.js';
import type { Enqueuer } from './enqueue.js';
import type { LeaseDeps } from './leases.js';
import type { NotifyHub } from './notify.js';

/** Roles an API key can have. `admin` may do everything. */
export type Role = 'producer' | 'worker' | 'admin';

/** Who is calling: a role, optionally limited to some queues (null: all). */
export interface Principal {
  role: Role;
  queues: readonly string[] | null;
  keyId: string | null;
}

/** The caller when the server runs without API keys (loopback only). */
export const OPEN_PRINCIPAL: Principal = Object.freeze({ role: 'admin', queues: null, keyId: null });

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
}

/** The tRPC context: who is calling, or why they could not be identified. */
export interface QueueContext {
  deps: ServerDeps;
  principal: Principal | null;
  authError: string | null;
  /** Leave payloads and results out of job views (a browser, with the dashboard's `showPayloads: false`). */
  hidePayloads?: boolean;
}

/** Builds a context without HTTP; tests and `createCaller` use it directly. */
export function createContextInner(deps: ServerDeps, principal: Principal | null = OPEN_PRINCIPAL, authError: string | null = null): QueueContext {
  return { deps, principal, authError };
}

/**
 * The worker id as stored: with API keys, prefixed by the key's id, so a key
 * can only ever act on jobs claimed with that same key.
 */
export function storedWorkerId(principal: Principal, workerId: string): string {
  return principal.keyId ? `${principal.keyId}/${workerId}` : workerId;
}
