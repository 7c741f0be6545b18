import {
  enqueueInputSchema,
  ERROR_CODES,
  LIMITS,
  type EnqueuedJob,
  type EnqueueInput,
  type JobDefinitions,
  type JobId,
  type JobRegistry,
  type JobType,
  type PayloadInput,
} from '../shared/index.js';
import type { Db } from './db/pool.js';
import { insertJobs, prepare } from './enqueue.js';
import { QueueError } from './errors.js';
import type { InsertJob } from './queries/insert.js';
import { traceContextOf } from '../client/tracing.js';

/** A `pg` client (a `pg.Client`, or a `pg.PoolClient` you sent `BEGIN` on) inside your transaction. */
export interface PgTransaction {
  query(config: { name?: string; text: string; values?: unknown[] }): Promise<{ rows: unknown[] }>;
}

/** Prisma's interactive transaction client: the `tx` of `prisma.$transaction(async (tx) => ...)`. */
export interface PrismaTransaction {
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
}

/** Either kind of transaction handle. */
export type Transaction = PgTransaction | PrismaTransaction;

/** Per-job options, as `jobs.enqueue` takes them (each overrides the type's default). */
export type TxEnqueueOptions = Omit<EnqueueInput, 'type' | 'payload'>;

/** One job of `enqueueMany`. */
export type TxEnqueueItem<R extends JobDefinitions> = {
  [K in JobType<R>]: { type: K; payload: PayloadInput<R, K> } & TxEnqueueOptions;
}[JobType<R>];

/** What an enqueue inside a transaction answers: the job summary, its id typed with its job type. */
export type TxEnqueued<K extends string = string> = EnqueuedJob & { id: JobId<K> };

/** Enqueues inside the application's own transaction. */
export interface TxEnqueuer<R extends JobDefinitions> {
  /**
   * Enqueues one job in `tx`: it exists if and only if `tx` commits, and
   * waiting workers wake at the commit.
   * @example await prisma.$transaction(async (tx) => { const order = await tx.order.create(...); await skipq.enqueue(tx, 'send-receipt', { orderId: order.id }); });
   */
  enqueue<K extends JobType<R>>(tx: Transaction, type: K, payload: PayloadInput<R, K>, options?: TxEnqueueOptions): Promise<TxEnqueued<K>>;
  /** Enqueues many jobs in `tx` in one statement, all validated first; answers in input order. */
  enqueueMany(tx: Transaction, items: ReadonlyArray<TxEnqueueItem<R>>): Promise<TxEnqueued[]>;
}

/** Options of {@link createTxEnqueuer}. */
export interface TxEnqueuerOptions<R extends JobDefinitions> {
  /** The registry the server and the workers use. */
  jobs: JobRegistry<R>;
  /** Largest payload in bytes of JSON; keep it equal to the server's. Default LIMITS.defaultPayloadBytes. */
  maxPayloadBytes?: number;
}

const isPrisma = (tx: Transaction): tx is PrismaTransaction => typeof (tx as PrismaTransaction).$queryRawUnsafe === 'function';

/** The error a Prisma raw query raises, reduced to what the queries read from a pg error (SQLSTATE and constraint). */
function pgShapeOf(error: unknown): unknown {
  const e = error as { meta?: { code?: unknown; message?: unknown; driverAdapterError?: { cause?: { originalCode?: unknown; originalMessage?: unknown; constraint?: unknown } } } };
  const cause = e.meta?.driverAdapterError?.cause;
  const code = cause?.originalCode ?? e.meta?.code;
  if (typeof code !== 'string') return error;
  const message = String(cause?.originalMessage ?? e.meta?.message ?? (error as Error).message);
  // skipq_enqueue names the constraint in its message when an id is taken ("job id ... is already used").
  const constraint = code === '23505' && /already used|task_queue_pkey/.test(message) ? 'task_queue_pkey' : undefined;
  return Object.assign(new Error(message), { code, constraint, cause: error });
}

/**
 * The transaction as the query functions' `Db`: the same statement text and
 * parameters on either client. A statement that failed aborted the
 * transaction, so the enqueue's own follow-up lookups (of ids in use) cannot
 * run: what failed is answered instead.
 */
function asDb(tx: Transaction): Db {
  let failed: unknown;
  const query = async (config: { name?: string; text: string; values?: unknown[] }): Promise<{ rows: unknown[] }> => {
    if (failed !== undefined) {
      throw new QueueError(
        ERROR_CODES.JOB_ID_CONFLICT,
        'a job id given to the enqueue is already used; the failed insert aborted the transaction (inside a transaction, give new ids or none)',
      );
    }
    try {
      if (isPrisma(tx)) return { rows: (await tx.$queryRawUnsafe(config.text, ...(config.values ?? []))) as unknown[] };
      return await tx.query(config);
    } catch (error) {
      failed = error;
      throw isPrisma(tx) ? pgShapeOf(error) : error;
    }
  };
  return { query } as unknown as Db;
}

/** Checks one input like `jobs.enqueue` does (zod schema, then the registry) and turns it into a row. */
function prepareInput(registry: JobRegistry, input: EnqueueInput, maxPayloadBytes: number, where = ''): InsertJob {
  const parsed = enqueueInputSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path, message: i.message }));
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `${where}${issues.map((i) => `${i.path.map(String).join('.') || '(input)'}: ${i.message}`).join('; ')}`, issues);
  }
  try {
    // In the app's process: the job continues the active span's trace unless the input names its own.
    return prepare(registry, { ...parsed.data, traceContext: parsed.data.traceContext ?? traceContextOf() }, maxPayloadBytes);
  } catch (error) {
    if (!(error instanceof QueueError) || where === '') throw error;
    throw new QueueError(error.code, `${where}${error.message}`, error.issues);
  }
}

/**
 * Creates an enqueuer for the application's own transactions, with a
 * **Prisma interactive transaction client** or a **`pg` client** inside
 * `BEGIN`. Validated by the same registry, with the same defaults and
 * uniqueKey rule as `jobs.enqueue`, through the same statement
 * (skipq_enqueue): its NOTIFY is part of the transaction, so PostgreSQL
 * delivers it, and workers on every server wake, at the commit; a rollback
 * leaves no job and wakes nobody.
 *
 * Unlike `jobs.enqueue`, an id that is already in use cannot be answered
 * with its job: the failed insert aborts the transaction (JOB_ID_CONFLICT).
 * @example
 * const skipq = createTxEnqueuer({ jobs });
 * await client.query('BEGIN');
 * await client.query('INSERT INTO orders ...');
 * await skipq.enqueue(client, 'send-receipt', { orderId });
 * await client.query('COMMIT');
 */
export function createTxEnqueuer<R extends JobDefinitions>(options: TxEnqueuerOptions<R>): TxEnqueuer<R> {
  const registry = options.jobs as JobRegistry;
  const maxPayloadBytes = options.maxPayloadBytes ?? LIMITS.defaultPayloadBytes;
  const insert = async (tx: Transaction, jobs: InsertJob[]): Promise<TxEnqueued[]> =>
    // Atomic: any refusal is thrown, so every answer is a job.
    (await insertJobs(asDb(tx), jobs, true)) as TxEnqueued[];
  return Object.freeze({
    async enqueue(tx, type, payload, opts = {}) {
      const [job] = await insert(tx, [prepareInput(registry, { ...opts, type, payload }, maxPayloadBytes)]);
      return job as TxEnqueued<typeof type>;
    },
    async enqueueMany(tx, items) {
      if (items.length === 0) return [];
      return insert(tx, items.map((item, index) => prepareInput(registry, item, maxPayloadBytes, `jobs[${index}]: `)));
    },
  } satisfies TxEnqueuer<R>);
}
