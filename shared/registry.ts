import { z } from 'zod';
import { LIMITS } from './limits.js';
import { NAME_PATTERN } from './names.js';

/**
 * How long a failed job waits before its next attempt. `retryCount` is how many
 * retries already happened (0 before the first retry).
 * - `fixed`: always `delayMs`.
 * - `linear`: `delayMs * (retryCount + 1)`; the established task_queue rule is linear 60 s.
 * - `exponential`: `delayMs * factor^retryCount` (factor 2 by default).
 * Both growing kinds stop at `maxDelayMs`; `jitter` (0..1) spreads each delay by up to that fraction.
 */
export type BackoffPolicy =
  | { kind: 'fixed'; delayMs: number; jitter?: number }
  | { kind: 'linear'; delayMs: number; maxDelayMs?: number; jitter?: number }
  | { kind: 'exponential'; delayMs: number; factor?: number; maxDelayMs?: number; jitter?: number };

/** The backoff the SQL `fail_task` uses: linear, 60 s x (retry_count + 1). */
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ kind: 'linear', delayMs: 60_000 });

/**
 * The delay before the next attempt under `policy`, in milliseconds.
 * @example backoffDelayMs({ kind: 'exponential', delayMs: 1000 }, 3) // 8000
 */
export function backoffDelayMs(policy: BackoffPolicy, retryCount: number, random: () => number = Math.random): number {
  let delay: number;
  if (policy.kind === 'fixed') delay = policy.delayMs;
  else if (policy.kind === 'linear') delay = policy.delayMs * (retryCount + 1);
  else delay = policy.delayMs * Math.pow(policy.factor ?? 2, retryCount);
  if (policy.kind !== 'fixed' && policy.maxDelayMs !== undefined) delay = Math.min(delay, policy.maxDelayMs);
  const jitter = policy.jitter ?? 0;
  if (jitter > 0) delay = delay * (1 - jitter + 2 * jitter * random());
  return Math.max(0, Math.round(delay));
}

/** One job type: its payload schema and the defaults its jobs get. */
export interface JobDefinition<Payload extends z.ZodType = z.ZodType, Result extends z.ZodType = z.ZodType> {
  /** Validates the payload at enqueue (client and server) and again before the handler runs. Keep it JSON-shaped: payloads are stored as JSON. */
  payload: Payload;
  /** Validates what the handler returns before it is stored. */
  result?: Result;
  /** Queue for jobs of this type unless the call names one. Default `default`. */
  queue?: string;
  /** Priority 0..10, higher first. Default 0. */
  priority?: number;
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** Delay between attempts. Default {@link DEFAULT_BACKOFF}. */
  backoff?: BackoffPolicy;
  /**
   * How long one attempt may run, in ms, counted from its claim. Past it the
   * handler's signal aborts, the attempt fails with code `TIMEOUT` (retried per
   * policy) and the worker's slot is freed even if the handler ignores the
   * signal; heartbeats never extend the lease beyond it. Default: no limit.
   */
  timeoutMs?: number;
  /**
   * Cron schedules of this type, upserted by every server at start (by name;
   * the registry's version wins over one changed at run time). Each tick of a
   * schedule enqueues one job with `payload` and these options.
   */
  schedules?: readonly ScheduleDefinition<z.input<Payload>>[];
  /**
   * The job's concurrency key (its lane within its queue: a tenant, a store),
   * from its validated payload, unless the enqueue call passes one. With the
   * queue's `keyConcurrency` (`queues.configure`), at most that many jobs of
   * one key are held at once, and keys take turns. A string of 1..255
   * characters.
   * @example concurrencyKey: (p: { chainId: string }) => p.chainId
   */
  // `never`: any one-payload function fits here; defineJobs checks it against the type's own payload.
  concurrencyKey?: (payload: never) => string;
  /**
   * At most this many held jobs (claimed or processing) per concurrency key
   * for jobs of this type, 1..10,000. It makes the type's `queue` a keyed
   * queue, and holds in every keyed queue; with the queue's own
   * `keyConcurrency` (`queues.configure`) the stricter of the two holds. A
   * key's count is every held job of that key in that queue, whatever its
   * type. Written to job_types at server start, so claim_tasks honours it too.
   * @example keyConcurrency: 1 // one job per chain at a time
   */
  keyConcurrency?: number;
}

/** What a schedule does with ticks that were due while no server ran (see README "Cron"). */
export type CatchUp = 'skip' | 'latest' | 'all';

/** One cron schedule of a job type, as declared in the registry. */
export interface ScheduleDefinition<Payload = unknown> {
  /** Unique among all schedules; names the schedule in `schedules.*` calls. */
  name: string;
  /** A 5-field (minute precision) or 6-field (seconds first) cron expression. */
  cron: string;
  /** IANA time zone the expression is read in (DST handled by the parser). Default UTC. */
  timezone?: string;
  /** The payload of every tick's job; validated against the type's schema. */
  payload: Payload;
  queue?: string;
  priority?: number;
  maxRetries?: number;
  timeoutMs?: number;
  /** Ticks missed over 10 s ago (downtime): `skip` drops them, `latest` runs the newest, `all` runs each (at most 100). Default `latest`. */
  catchUp?: CatchUp;
  /** false: a tick is skipped while the previous run of this schedule is pending or running. Default true. */
  allowOverlap?: boolean;
}

/** A map of job type name to definition. */
export type JobDefinitions = Record<string, JobDefinition>;

/** A frozen registry of job types, shared by server, producer and worker. */
export type JobRegistry<Defs extends JobDefinitions = JobDefinitions> = Readonly<Defs>;

/** Job type names of a registry. */
export type JobType<R extends JobDefinitions> = Extract<keyof R, string>;

/** What a producer passes as the payload of type `K`. */
export type PayloadInput<R extends JobDefinitions, K extends keyof R> = z.input<R[K]['payload']>;

/** What a handler of type `K` receives, after validation. */
export type PayloadOf<R extends JobDefinitions, K extends keyof R> = z.output<R[K]['payload']>;

/** What a handler of type `K` returns: the result schema's input, or any JSON value without one. */
export type ResultOf<R extends JobDefinitions, K extends keyof R> = R[K]['result'] extends z.ZodType
  ? z.input<R[K]['result']>
  : unknown;

/** What a producer gets back for a finished job of type `K`: the result schema's output, or any JSON value without one. */
export type ResultValue<R extends JobDefinitions, K extends keyof R> = R[K]['result'] extends z.ZodType
  ? z.output<R[K]['result']>
  : unknown;

declare const jobTypeTag: unique symbol;

/**
 * A job id that remembers its job type at compile time (nothing changes at
 * run time: it is the id string). The clients answer enqueues with it, so
 * `result(id)` knows which result schema applies; a plain string is accepted
 * too, typed as any type of the registry.
 */
export type JobId<K extends string = string> = string & { readonly [jobTypeTag]?: K };

const backoffSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('fixed'), delayMs: z.number().int().min(0), jitter: z.number().min(0).max(1).optional() }),
  z.object({
    kind: z.literal('linear'),
    delayMs: z.number().int().min(0),
    maxDelayMs: z.number().int().min(0).optional(),
    jitter: z.number().min(0).max(1).optional(),
  }),
  z.object({
    kind: z.literal('exponential'),
    delayMs: z.number().int().min(0),
    factor: z.number().min(1).optional(),
    maxDelayMs: z.number().int().min(0).optional(),
    jitter: z.number().min(0).max(1).optional(),
  }),
]);

/**
 * Declares the job types. The same object is handed to the server, the producer
 * client and the worker, so a wrong payload is a compile error at every end.
 * @example
 * const jobs = defineJobs({
 *   ingestion: { payload: z.object({ chainId: z.string(), targetDate: z.iso.date() }), maxRetries: 5 },
 * });
 */
export function defineJobs<const Defs extends JobDefinitions>(
  // The mapped half checks each concurrencyKey against its own type's payload (annotate its parameter:
  // an object literal holding a function is not used to infer Defs, so the parameter gets no contextual type).
  definitions: Defs & { [K in keyof Defs]: { concurrencyKey?: (payload: z.output<Defs[K]['payload']>) => string } },
): JobRegistry<Defs> {
  const scheduleNames = new Set<string>();
  for (const [name, def] of Object.entries(definitions)) {
    if (!NAME_PATTERN.test(name)) throw new TypeError(`job type "${name}" is not a valid name (${NAME_PATTERN})`);
    if (!(def.payload instanceof z.ZodType)) throw new TypeError(`job type "${name}" needs a zod payload schema`);
    if (def.queue !== undefined && !NAME_PATTERN.test(def.queue)) throw new TypeError(`job type "${name}": queue "${def.queue}" is not a valid name`);
    if (def.priority !== undefined && !(Number.isInteger(def.priority) && def.priority >= 0 && def.priority <= 10)) {
      throw new TypeError(`job type "${name}": priority must be an integer 0..10`);
    }
    if (def.maxRetries !== undefined && !(Number.isInteger(def.maxRetries) && def.maxRetries >= 0 && def.maxRetries <= 1000)) {
      throw new TypeError(`job type "${name}": maxRetries must be an integer 0..1000`);
    }
    if (def.timeoutMs !== undefined && !(Number.isInteger(def.timeoutMs) && def.timeoutMs >= 1 && def.timeoutMs <= LIMITS.maxTimeoutMs)) {
      throw new TypeError(`job type "${name}": timeoutMs must be an integer 1..${LIMITS.maxTimeoutMs}`);
    }
    if (def.concurrencyKey !== undefined && typeof def.concurrencyKey !== 'function') {
      throw new TypeError(`job type "${name}": concurrencyKey must be a function of the payload`);
    }
    if (def.keyConcurrency !== undefined && !(Number.isInteger(def.keyConcurrency) && def.keyConcurrency >= 1 && def.keyConcurrency <= LIMITS.keyConcurrency)) {
      throw new TypeError(`job type "${name}": keyConcurrency must be an integer 1..${LIMITS.keyConcurrency}`);
    }
    if (def.backoff !== undefined) {
      const parsed = backoffSchema.safeParse(def.backoff);
      if (!parsed.success) throw new TypeError(`job type "${name}": invalid backoff: ${parsed.error.message}`);
    }
    for (const schedule of def.schedules ?? []) {
      if (!NAME_PATTERN.test(schedule.name)) throw new TypeError(`job type "${name}": schedule name "${schedule.name}" is not a valid name`);
      if (scheduleNames.has(schedule.name)) throw new TypeError(`schedule "${schedule.name}" is declared twice`);
      scheduleNames.add(schedule.name);
      const payload = def.payload.safeParse(schedule.payload);
      if (!payload.success) throw new TypeError(`schedule "${schedule.name}": payload does not match job type "${name}": ${payload.error.message}`);
      if (schedule.catchUp !== undefined && !['skip', 'latest', 'all'].includes(schedule.catchUp)) {
        throw new TypeError(`schedule "${schedule.name}": catchUp must be skip, latest or all`);
      }
    }
  }
  return Object.freeze({ ...definitions });
}

/** True when `value` looks like a registry made by {@link defineJobs}. */
export function isJobRegistry(value: unknown): value is JobRegistry {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.values(value).every((d) => typeof d === 'object' && d !== null && (d as JobDefinition).payload instanceof z.ZodType)
  );
}
