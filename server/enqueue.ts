import {
  concurrencyKeySchema,
  createBatcher,
  createJobId,
  ERROR_CODES,
  LIMITS,
  type EnqueuedJob,
  type EnqueueInput,
  type JobRegistry,
} from '../shared/index.js';
import type { ServerMetrics } from './metrics.js';
import type { Db } from './db/pool.js';
import { isDatabaseUnavailable, QueueError } from './errors.js';
import { toJsonText } from './json.js';
import type { LimitedQueues } from './limitedQueues.js';
import type { HandoverClaim, NotifyHub, Reservation } from './notify.js';
import { releaseAndWake } from './leases.js';
import {
  JobIdInUseError,
  jobEnqueueDebounced,
  jobEnqueueThrottled,
  jobFindExisting,
  jobInsertMany,
  jobInsertManyAndClaim,
  jobInsertManyIds,
  type ExistingRow,
  type InsertedRow,
  type InsertJob,
  type KeyedRow,
} from './queries/insert.js';
import { checkPayload } from './registryCheck.js';
import type { ClaimParams } from './queries/claim.js';
import type { ClaimedRow } from './queries/row.js';

/** Validates and inserts jobs. */
export interface Enqueuer {
  /** One job; concurrent calls share a statement and a commit (group commit). */
  enqueue(input: EnqueueInput): Promise<EnqueuedJob>;
  /** Many jobs: all validated first, then one statement, so either all are stored or none. Answers each job's id, type, queue and whether it was made. */
  enqueueMany(inputs: readonly EnqueueInput[]): Promise<EnqueuedJobRef[]>;
  /** Waits for group commits in flight. */
  drain(): Promise<void>;
}

/** What enqueueMany answers per job: no status, priority or due time (jobs.enqueueMany answers `{ id, created }`). */
export type EnqueuedJobRef = Pick<EnqueuedJob, 'id' | 'type' | 'queue' | 'created'>;

/**
 * A waiting long-poll the insert claims for in its own statement
 * (jobInsertManyAndClaim): `onClaimed` gets the jobs claimed for it as soon as
 * that statement committed, before any later round.
 */
export interface Handover {
  claim: ClaimParams;
  onClaimed(rows: ClaimedRow[]): void;
}

/** Options of {@link createEnqueuer}. */
export interface EnqueuerOptions {
  db: Db;
  registry: JobRegistry | null;
  hub: NotifyHub;
  maxPayloadBytes: number;
  /** Statements in flight at once for group commit. */
  maxInFlight?: number;
  /** The server's clock (its `now` option), for debounce and throttle; absent: the database's. */
  now?: () => Date;
  metrics?: ServerMetrics;
  /** Queues with limits: a long-poll that may claim from one is never claimed for by an enqueue (its claim may wait for the queue's row lock). */
  limited?: LimitedQueues;
}

/**
 * The job's concurrency key: the call's, else its type's `concurrencyKey(payload)`
 * (given the validated payload), else none. A key the type's function makes is
 * checked like one the caller sends.
 */
function concurrencyKeyOf(registry: JobRegistry | null, input: EnqueueInput, payload: unknown): string | null {
  if (input.concurrencyKey !== undefined) return input.concurrencyKey;
  return typeConcurrencyKey(registry, input.type, payload);
}

/**
 * The key a job type's `concurrencyKey(payload)` gives a validated payload;
 * null when the type has none. Throws a QueueError when the function throws or
 * returns anything but a string of 1..255 characters without NUL.
 */
export function typeConcurrencyKey(registry: JobRegistry | null, type: string, payload: unknown): string | null {
  const keyOfPayload = registry?.[type]?.concurrencyKey as ((payload: unknown) => unknown) | undefined;
  if (!keyOfPayload) return null;
  let key: unknown;
  try {
    key = keyOfPayload(payload);
  } catch (error) {
    throw new QueueError(ERROR_CODES.INVALID_INPUT, `concurrencyKey of "${type}" threw: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = concurrencyKeySchema.safeParse(key);
  if (!parsed.success) {
    throw new QueueError(
      ERROR_CODES.INVALID_INPUT,
      `concurrencyKey of "${type}" must return a string of 1..${LIMITS.concurrencyKey} characters without NUL; it returned ${typeof key === 'string' ? `a string of ${key.length}` : typeof key}`,
    );
  }
  return parsed.data;
}

/** Turns a validated input into a row to insert; throws a QueueError for a bad payload. */
export function prepare(registry: JobRegistry | null, input: EnqueueInput, maxPayloadBytes: number): InsertJob {
  const { payload, defaults } = checkPayload(registry, input.type, input.payload);
  return {
    // Ids are compared byte for byte (COLLATE "C") and the schema takes either case of hex digits.
    id: input.id?.toLowerCase() ?? createJobId(),
    queue: input.queue ?? defaults.queue,
    type: input.type,
    payloadJson: toJsonText(payload, maxPayloadBytes, `payload of "${input.type}"`),
    priority: input.priority ?? defaults.priority,
    runAt: input.runAt ?? null,
    delayMs: input.delayMs ?? null,
    maxRetries: input.maxRetries ?? defaults.maxRetries,
    uniqueKey: input.uniqueKey ?? null,
    timeoutMs: input.timeoutMs ?? defaults.timeoutMs,
    debounceMs: input.debounceMs ?? null,
    throttleMs: input.throttleMs ?? null,
    concurrencyKey: concurrencyKeyOf(registry, input, payload),
    traceContext: input.traceContext ?? null,
  };
}

/** The refusal of a reused id: names the caller's id and nothing about the job that has it. */
function idConflict(jobId: string, where = ''): QueueError {
  return new QueueError(
    ERROR_CODES.JOB_ID_CONFLICT,
    `${where}job id ${jobId} is already used by another job; an id may be sent again only to repeat the same enqueue (same type and queue)`,
  );
}

/** The uniqueKey slot a job competes for; null for a job without a key (which no holder can answer). */
const keyOf = (queue: string, type: string, uniqueKey: string | null): string | null =>
  uniqueKey === null ? null : `${queue}\u0000${type}\u0000${uniqueKey}`;

const answerOf = (row: InsertedRow | ExistingRow | KeyedRow, created: boolean): EnqueuedJob => ({
  id: row.id,
  type: row.task_type,
  queue: row.queue,
  status: row.status,
  priority: row.priority,
  scheduledFor: row.scheduled_for,
  created,
});

/**
 * Inserts prepared jobs and answers each in order. The id decides first: a job
 * whose id is already used by a job of the same type and queue is a repeat of
 * that enqueue (its reply was lost) and gets that job, whatever its status; an
 * id used by any other job is refused with JOB_ID_CONFLICT. Only a job with a
 * new id falls through to its uniqueKey: held by a live job of its queue and
 * type, it gets that job; if the holder finished in between, the job is
 * inserted again (bounded), so every caller gets a job.
 *
 * `atomic` (enqueueMany): the first refusal is thrown and nothing is stored,
 * since the database refuses a batch with an id in use as a whole. Otherwise
 * (group commit, whose jobs come from unrelated callers) a refused job gets its
 * error and the others are inserted.
 */
export async function insertJobs(db: Db, jobs: readonly InsertJob[], atomic: boolean, answer?: 'summary', handover?: Handover): Promise<Array<EnqueuedJob | QueueError>>;
/**
 * The same, answering only what jobs.enqueueMany needs of a job it inserted
 * (its id, type, queue): the statement returns the ids alone (jobInsertManyIds).
 */
export async function insertJobs(db: Db, jobs: readonly InsertJob[], atomic: boolean, answer: 'ref', handover?: Handover): Promise<Array<EnqueuedJobRef | QueueError>>;
export async function insertJobs(
  db: Db,
  jobs: readonly InsertJob[],
  atomic: boolean,
  answer: 'summary' | 'ref' = 'summary',
  handover?: Handover,
): Promise<Array<EnqueuedJobRef | QueueError>> {
  const refused = new Set<InsertJob>();
  const refusal = (job: InsertJob): QueueError => idConflict(job.id, atomic ? `jobs[${jobs.indexOf(job)}]: ` : '');
  const stopIfAtomic = (): void => {
    const first = jobs.find((j) => refused.has(j));
    if (atomic && first) throw refusal(first);
  };
  // An id twice in one batch (a retry racing its original into one group
  // commit, or a repeat inside one enqueueMany) is one job, answered once as created.
  const firstOf = new Map<string, InsertJob>();
  for (const job of jobs) {
    const first = firstOf.get(job.id);
    if (!first) firstOf.set(job.id, job);
    else if (first.type !== job.type || first.queue !== job.queue) refused.add(job);
  }
  stopIfAtomic();
  const byId = new Map<string, EnqueuedJobRef>();
  const byKey = new Map<string, EnqueuedJobRef>();
  const refusedIds = new Set<string>();
  const holderOf = (j: InsertJob): EnqueuedJobRef | undefined => {
    const key = keyOf(j.queue, j.type, j.uniqueKey);
    return key === null ? undefined : byKey.get(key);
  };
  // Rows go in sorted by (queue, type, uniqueKey): concurrent batches sharing keys then take the
  // unique index's locks in one order and cannot deadlock (ten enqueueMany calls with the same
  // keys in rotated orders did, now and then). The sort is stable, so the first job of a key in
  // the call is still the one stored; answers are matched by id, not by position.
  // Without a key there is no lock order to keep, and no sort (a comparator call per pair).
  let todo = [...firstOf.values()];
  if (todo.some((j) => j.uniqueKey !== null)) todo.sort(byUniqueKey);
  for (let round = 0; todo.length > 0; round++) {
    if (round === 5) throw new Error('uniqueKey contention: the live job kept finishing while enqueueing; try again');
    try {
      // The first statement may claim for a waiting long-poll too; a later round (uniqueKey holders) never does.
      const handing = round === 0 ? handover : undefined;
      if (handing) {
        const { inserted, claimed } = await jobInsertManyAndClaim(db, todo, handing.claim);
        handing.onClaimed(claimed);
        for (const row of inserted) byId.set(row.id, answer === 'summary' ? answerOf(row, true) : { id: row.id, type: row.task_type, queue: row.queue, created: true });
      } else if (answer === 'summary') {
        for (const row of await jobInsertMany(db, todo)) byId.set(row.id, answerOf(row, true));
      } else {
        const rows = await jobInsertManyIds(db, todo);
        // The common case: every job new, each id once in the call. The rows are some of todo's
        // distinct ids, so as many rows as jobs means every job was inserted: answered in order
        // from the jobs themselves, with no lookup by id.
        if (rows.length === jobs.length && firstOf.size === jobs.length) return jobs.map((j) => ({ id: j.id, type: j.type, queue: j.queue, created: true }));
        for (const { id } of rows) {
          const job = firstOf.get(id) as InsertJob;
          byId.set(id, { id, type: job.type, queue: job.queue, created: true });
        }
      }
    } catch (error) {
      // Nothing was stored: every job of the round is looked up below.
      if (!(error instanceof JobIdInUseError)) throw error;
    }
    const skipped = todo.filter((j) => !byId.has(j.id));
    // The common case ends here: one statement, nothing skipped.
    if (skipped.length === 0) break;
    for (const row of await jobFindExisting(db, skipped)) {
      if (!row.by_id) byKey.set(keyOf(row.queue, row.task_type, row.unique_key) as string, answerOf(row, false));
      else if (row.same) byId.set(row.id, answerOf(row, false));
      else refusedIds.add(row.id);
    }
    for (const job of jobs) if (refusedIds.has(job.id)) refused.add(job);
    stopIfAtomic();
    todo = skipped.filter((j) => !byId.has(j.id) && !refusedIds.has(j.id) && !holderOf(j));
  }
  const answered = new Set<string>();
  return jobs.map((j) => {
    if (refused.has(j)) return refusal(j);
    const own = byId.get(j.id);
    if (own) {
      const first = !answered.has(j.id);
      answered.add(j.id);
      return first ? own : { ...own, created: false };
    }
    // Another job of this same call may have taken the key: that one is "created", this one is not.
    return { ...(holderOf(j) as EnqueuedJobRef), created: false };
  });
}

/** Orders jobs by (queue, type, uniqueKey), keyless ones first; a byte-wise order, the same in every process. */
function byUniqueKey(a: InsertJob, b: InsertJob): number {
  const ka = a.uniqueKey === null ? '' : `${a.queue}\u0000${a.type}\u0000${a.uniqueKey}`;
  const kb = b.uniqueKey === null ? '' : `${b.queue}\u0000${b.type}\u0000${b.uniqueKey}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Creates the enqueuer. */
export function createEnqueuer(options: EnqueuerOptions): Enqueuer {
  const { db, registry, hub, maxPayloadBytes } = options;

  /** Counts and wakes for what was made: once per queue and type, not per job. */
  const countAndWake = (jobs: readonly InsertJob[], result: ReadonlyArray<EnqueuedJobRef | QueueError>): void => {
    const made = new Map<string, { queue: string; type: string; n: number }>();
    // A batch is mostly one queue and type: the previous job's entry is tried before a key is built.
    let last: { queue: string; type: string; n: number } | undefined;
    result.forEach((r, i) => {
      if (r instanceof QueueError || !r.created) return;
      const job = jobs[i] as InsertJob;
      if (last?.queue === job.queue && last.type === job.type) {
        last.n++;
        return;
      }
      const key = `${job.queue}\u0000${job.type}`;
      last = made.get(key);
      if (last) last.n++;
      else made.set(key, (last = { queue: job.queue, type: job.type, n: 1 }));
    });
    const metrics = options.metrics;
    if (metrics) for (const { queue, type, n } of made.values()) metrics.enqueued(queue, type, n);
    // This server's own waiting claims need no NOTIFY round trip.
    if (made.size > 0) hub.wake(new Set([...made.values()].map((m) => m.queue)));
  };

  // A claim claimed for by an enqueue may not touch a limited queue: its
  // skipq_claim would take the queue's row lock inside the insert's statement.
  const limited = options.limited;
  const allowed = (claim: HandoverClaim): boolean =>
    limited === undefined || limited.empty || (claim.queues !== null && limited.among(claim.queues).length === 0);

  /**
   * Runs an insert that claims, in its own statement, for a long-poll waiting
   * on this server for one of the jobs (jobInsertManyAndClaim), when one waits;
   * else the plain insert. Jobs claimed for a long-poll that stopped waiting
   * meanwhile are released at once, as a claim whose caller went away.
   */
  const withHandover = async <T>(jobs: readonly InsertJob[], insert: (handover?: Handover) => Promise<T>): Promise<T> => {
    let reservation: Reservation | null = null;
    // One look per run of jobs of the same queue and type (a batch is mostly one), not per job.
    let looked: InsertJob | undefined;
    for (const job of jobs) {
      if (job.runAt !== null || job.delayMs) continue;
      if (looked?.queue === job.queue && looked.type === job.type) continue;
      looked = job;
      reservation = hub.reserve(job.queue, job.type, allowed);
      if (reservation) break;
    }
    if (!reservation) return insert();
    const taker = reservation;
    const now = options.now?.() ?? null;
    let delivered = false;
    const onClaimed = (rows: ClaimedRow[]): void => {
      delivered = true;
      if (taker.deliver(rows) || rows.length === 0) return;
      // Not released: their lease runs out and the rescuer takes them back.
      releaseAndWake({ db, hub }, { workerId: taker.claim.workerId, jobs: rows, now }).catch(() => {});
    };
    try {
      return await insert({ claim: { ...taker.claim, now }, onClaimed });
    } finally {
      if (!delivered) taker.deliver([]);
    }
  };

  const insertAndWake = async (jobs: readonly InsertJob[], atomic: boolean): Promise<Array<EnqueuedJob | QueueError>> => {
    const result = await withHandover(jobs, (handover) => insertJobs(db, jobs, atomic, 'summary', handover));
    countAndWake(jobs, result);
    return result;
  };

  // Group commit: single enqueues arriving while a statement is in flight share the next one.
  const group = createBatcher<InsertJob, EnqueuedJob>({
    maxBatch: 1000,
    maxInFlight: options.maxInFlight ?? 4,
    async send(jobs) {
      try {
        return await insertAndWake(jobs, false);
      } catch (error) {
        if (jobs.length === 1 || isDatabaseUnavailable(error)) throw error;
        // One bad row must not fail its neighbours: retry each alone.
        return Promise.all(jobs.map((j) => insertAndWake([j], false).then((r) => r[0] as EnqueuedJob | QueueError, (e: unknown) => e as Error)));
      }
    },
  });

  // Debounce and throttle: one statement per call, outside the group commit,
  // so the plain path keeps its one multi-row statement and nothing more.
  const enqueueKeyed = async (job: InsertJob): Promise<EnqueuedJob> => {
    let row: KeyedRow;
    try {
      const now = options.now?.() ?? null;
      row = job.debounceMs !== null ? await jobEnqueueDebounced(db, job, now) : await jobEnqueueThrottled(db, job, now);
    } catch (error) {
      if (error instanceof JobIdInUseError) throw idConflict(job.id);
      throw error;
    }
    if (row.created) hub.wake([row.queue]);
    return answerOf(row, row.created);
  };

  return {
    enqueue(input) {
      const job = prepare(registry, input, maxPayloadBytes);
      if (job.debounceMs !== null || job.throttleMs !== null) return enqueueKeyed(job);
      return group.add(job);
    },
    async enqueueMany(inputs) {
      const keyedAt = inputs.findIndex((i) => i.debounceMs !== undefined || i.throttleMs !== undefined);
      if (keyedAt >= 0) {
        throw new QueueError(ERROR_CODES.INVALID_INPUT, `jobs[${keyedAt}]: debounceMs and throttleMs are taken by jobs.enqueue only, one job a call`);
      }
      const jobs = inputs.map((input, index) => {
        try {
          return prepare(registry, input, maxPayloadBytes);
        } catch (error) {
          if (!(error instanceof QueueError)) throw error;
          const issues = error.issues?.map((i) => ({ path: ['jobs', index, 'payload', ...i.path], message: i.message }));
          throw new QueueError(error.code, `jobs[${index}]: ${error.message}`, issues);
        }
      });
      // Atomic: a refusal is thrown, so every answer is a job.
      const result = (await withHandover(jobs, (handover) => insertJobs(db, jobs, true, 'ref', handover))) as EnqueuedJobRef[];
      countAndWake(jobs, result);
      return result;
    },
    drain: () => group.drain(),
  };
}
