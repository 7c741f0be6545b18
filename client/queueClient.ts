import { TRPCClientError } from '@trpc/client';
import {
  createBatcher,
  createJobId,
  LIMITS,
  type EnqueuedRef,
  type EnqueueInput,
  type JobDefinitions,
  type JobRegistry,
  type JobStatus,
  type JobType,
  type JobView,
  type PayloadInput,
} from '../shared/index.js';
import { InvalidPayloadError, isTransient, serverCodeOf } from './errors.js';
import { createTrpc, type ConnectionOptions } from './trpc.js';

/** Per-call options of `enqueue`; each overrides the job type's default. */
export interface EnqueueOptions {
  queue?: string;
  /** 0..10, higher first. */
  priority?: number;
  /** Run at this time (not before). */
  runAt?: Date;
  /** Run after this many milliseconds. */
  delayMs?: number;
  maxRetries?: number;
  /** While a job with this key (and type) is pending or running in the same queue, enqueueing again returns that job. */
  uniqueKey?: string;
  /** Per-attempt time limit in ms; overrides the type's `timeoutMs`. */
  timeoutMs?: number;
  /**
   * The job's id (a UUID). Default: a new UUIDv7. Enqueueing again with the same
   * id, type and queue returns that job with `created: false`, whatever its
   * status: give one you stored to make a retry across restarts of your own
   * process idempotent.
   */
  id?: string;
}

/** One job for `enqueueMany`. */
export type EnqueueItem<R extends JobDefinitions> = {
  [K in JobType<R>]: { type: K; payload: PayloadInput<R, K> } & EnqueueOptions;
}[JobType<R>];

/** Options of {@link createQueueClient}. */
export interface QueueClientOptions<R extends JobDefinitions> extends ConnectionOptions {
  /** The registry shared with the server and the workers. */
  jobs: JobRegistry<R>;
  /**
   * Coalesce concurrent `enqueue` calls into one `jobs.enqueueMany` request
   * (each caller still gets its own id or error). Default true.
   */
  coalesce?: boolean;
  /**
   * Times an enqueue is sent again when no answer came back (connection refused
   * or dropped, server killed), after 100 ms, then 400 ms, ... Safe because it
   * carries the same job ids: a job the lost attempt made is returned, not made
   * twice. Answers from the server, errors included, are never resent. Default 2.
   */
  retries?: number;
}

/** The typed producer client. */
export interface QueueClient<R extends JobDefinitions> {
  /**
   * Enqueues one job; a payload that does not match the type is a compile error.
   * Answers its id, and `created: false` when an existing job was returned instead: the live job
   * holding its uniqueKey, or the job a previous attempt with the same id made.
   * @example const job = await queue.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' });
   */
  enqueue<K extends JobType<R>>(type: K, payload: PayloadInput<R, K>, options?: EnqueueOptions): Promise<EnqueuedRef>;
  /** Enqueues many jobs atomically (all validated first); answers in input order. Splits inputs over the server's batch limit. */
  enqueueMany(items: ReadonlyArray<EnqueueItem<R>>): Promise<EnqueuedRef[]>;
  /** One job with its status, result and error. */
  get(id: string): Promise<JobView>;
  /** Jobs, newest first. */
  list(filter?: { queue?: string; type?: JobType<R>; status?: JobStatus | JobStatus[]; limit?: number; cursor?: string }): Promise<{ jobs: JobView[]; nextCursor: string | null }>;
  /** Cancels a pending or running job. */
  cancel(id: string): Promise<JobView>;
  /** Re-queues a failed or cancelled job (admin key). */
  retry(id: string): Promise<JobView>;
  /** Counts per queue, type and status (admin key). */
  stats(): Promise<{ counts: Array<{ queue: string; type: string; status: string; count: number; oldestScheduledFor: Date | null }> }>;
  /** Closes the connections. */
  close(): Promise<void>;
}

function toInput(registry: JobRegistry, type: string, payload: unknown, options: EnqueueOptions = {}): EnqueueInput {
  const def = registry[type];
  if (!def) throw new InvalidPayloadError(type, [{ path: [], message: `unknown job type "${type}"` }]);
  const parsed = def.payload.safeParse(payload);
  if (!parsed.success) throw new InvalidPayloadError(type, parsed.error.issues.map((i) => ({ path: i.path, message: i.message })));
  // The input goes to the server as given; the server parses it with the same schema. The id
  // is chosen here, once, so every resend of this job (retries, the coalescer's fallback) carries it.
  return { type, payload, ...options, id: options.id ?? createJobId() };
}

/**
 * True when the call is safe and worth sending again: no skipq server answered
 * (it may or may not have taken effect; the job's id makes a resend harmless),
 * or the server refused it as busy before reading it.
 */
function noAnswer(error: unknown): boolean {
  if (!(error instanceof TRPCClientError)) return false;
  const sent = serverCodeOf(error);
  return sent === 'SERVER_BUSY' || (sent === undefined && isTransient(error));
}

/** Runs `call`, and again up to `retries` times while no answer comes back. */
async function withRetries<T>(retries: number, call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= retries || !noAnswer(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 4 ** attempt, 5000)));
    }
  }
}

/**
 * Creates the typed producer client.
 * @example
 * const queue = createQueueClient({ url: 'http://127.0.0.1:3000/trpc', jobs });
 * await queue.enqueue('ingestion', { chainId: 'konzum', targetDate: '2026-01-23' }, { priority: 5 });
 */
export function createQueueClient<R extends JobDefinitions>(options: QueueClientOptions<R>): QueueClient<R> {
  const { trpc, transport } = createTrpc(options, false);
  const registry = options.jobs;
  const retries = options.retries ?? 2;
  const sendOne = (input: EnqueueInput): Promise<EnqueuedRef> =>
    withRetries(retries, () => trpc.jobs.enqueue.mutate(input)).then(({ id, created }) => ({ id, created }));
  const sendMany = async (inputs: EnqueueInput[]): Promise<EnqueuedRef[]> =>
    (await withRetries(retries, () => trpc.jobs.enqueueMany.mutate({ jobs: inputs }))).jobs;

  // Measured on this machine: one tRPC call costs about 0.3 ms of client CPU and
  // 0.25 ms of server CPU, so one call per job caps near 3,000 jobs/s. Calls made
  // while a request is in flight leave together as one enqueueMany.
  const coalescer = createBatcher<EnqueueInput, EnqueuedRef>({
    maxBatch: LIMITS.enqueueBatch,
    maxInFlight: 4,
    async send(inputs) {
      if (inputs.length === 1) return [await sendOne(inputs[0] as EnqueueInput)];
      try {
        return await sendMany(inputs);
      } catch (error) {
        // enqueueMany is all-or-nothing; when the server refuses one job, send
        // each alone so every caller gets its own answer.
        const code = serverCodeOf(error);
        if (code === undefined || code === 'DATABASE_UNAVAILABLE' || code === 'SHUTTING_DOWN' || code === 'INTERNAL') throw error;
        return Promise.all(inputs.map((input) => sendOne(input).catch((e: unknown) => e as Error)));
      }
    },
  });

  return {
    enqueue(type, payload, opts) {
      const input = toInput(registry, type, payload, opts);
      if (options.coalesce !== false) return coalescer.add(input);
      return sendOne(input);
    },
    async enqueueMany(items) {
      const inputs = items.map(({ type, payload, ...opts }) => toInput(registry, type, payload, opts));
      const out: EnqueuedRef[] = [];
      for (let i = 0; i < inputs.length; i += LIMITS.enqueueBatch) {
        out.push(...(await sendMany(inputs.slice(i, i + LIMITS.enqueueBatch))));
      }
      return out;
    },
    get: (id) => trpc.jobs.get.query({ id }),
    list: (filter = {}) => trpc.jobs.list.query(filter),
    cancel: (id) => trpc.jobs.cancel.mutate({ id }),
    retry: (id) => trpc.jobs.retry.mutate({ id }),
    stats: () => trpc.queues.stats.query({}),
    async close() {
      await coalescer.drain();
      await transport.close();
    },
  };
}
