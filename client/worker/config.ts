import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LIMITS } from '../../shared/limits.js';
import type { JobDefinitions, JobRegistry } from '../../shared/index.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from '../transport.js';
import type { JobContext, WorkerOptions } from './types.js';

/** A handler as the worker calls it: payload and result are checked around it. */
export type AnyHandler = (payload: unknown, ctx: JobContext) => unknown;

/** The worker's settings with every default applied; frozen. */
export interface WorkerConfig {
  readonly workerId: string;
  readonly registry: JobRegistry;
  readonly handlers: Readonly<Record<string, AnyHandler | undefined>>;
  /** Job types this worker has handlers for: the only ones it claims. */
  readonly types: readonly string[];
  readonly queues: readonly string[] | undefined;
  readonly concurrency: number;
  readonly prefetch: number;
  readonly leaseMs: number;
  readonly waitMs: number;
  readonly graceMs: number;
  readonly startReportDelayMs: number;
  readonly maxResultBytes: number;
  readonly requestTimeoutMs: number;
}

/**
 * The default prefetch is concurrency, up to this: enough to hide a claim's
 * round trip at any rate measured here, few enough that one worker does not
 * sit on a backlog another could take.
 */
const DEFAULT_PREFETCH_MAX = 100;

function positiveInt(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) throw new TypeError(`createWorker: ${name} must be an integer >= ${min}, got ${value}`);
  return value;
}

/** Applies the defaults of {@link WorkerOptions} and refuses what cannot work. */
export function workerConfigOf<R extends JobDefinitions>(options: WorkerOptions<R>): WorkerConfig {
  const registry = options.jobs as JobRegistry;
  const handlers = options.handlers as Record<string, AnyHandler | undefined>;
  const types = Object.keys(handlers).filter((t) => handlers[t]);
  for (const t of types) if (!registry[t]) throw new TypeError(`handler for "${t}", which is not in the registry`);
  if (types.length === 0) throw new TypeError('createWorker needs at least one handler');
  const concurrency = positiveInt('concurrency', options.concurrency ?? 10);
  const prefetch = positiveInt('prefetch', options.prefetch ?? Math.min(concurrency, DEFAULT_PREFETCH_MAX), 0);
  if (prefetch > LIMITS.claimLimit) throw new TypeError(`createWorker: prefetch must be at most ${LIMITS.claimLimit} (LIMITS.claimLimit), got ${prefetch}`);
  return Object.freeze({
    workerId: options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    registry,
    handlers: Object.freeze({ ...handlers }),
    types: Object.freeze(types),
    queues: options.queues ? Object.freeze([...options.queues]) : undefined,
    concurrency,
    prefetch,
    leaseMs: positiveInt('leaseMs', options.leaseMs ?? LIMITS.defaultLeaseMs, LIMITS.minLeaseMs),
    waitMs: positiveInt('waitMs', options.waitMs ?? 20_000, 0),
    graceMs: positiveInt('graceMs', options.graceMs ?? 30_000, 0),
    startReportDelayMs: positiveInt('startReportDelayMs', options.startReportDelayMs ?? 20, 0),
    maxResultBytes: positiveInt('maxResultBytes', options.maxResultBytes ?? LIMITS.defaultPayloadBytes),
    requestTimeoutMs: positiveInt('requestTimeoutMs', options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS),
  });
}
