import { createBatcher, createJobId, ERROR_CODES, type EnqueuedJob, type EnqueueInput, type JobRegistry } from '../shared/index.js';
import type { Db } from './db/pool.js';
import { isDatabaseUnavailable, QueueError } from './errors.js';
import { toJsonText } from './json.js';
import type { NotifyHub } from './notify.js';
import { JobIdTakenError, jobFindExisting, jobInsertMany, type ExistingRow, type InsertedRow, type InsertJob } from './queries/insert.js';
import { checkPayload } from './registryCheck.js';

/** Validates and inserts jobs. */
export interface Enqueuer {
  /** One job; concurrent calls share a statement and a commit (group commit). */
  enqueue(input: EnqueueInput): Promise<EnqueuedJob>;
  /** Many jobs: all validated first, then one statement, so either all are stored or none. */
  enqueueMany(inputs: readonly EnqueueInput[]): Promise<EnqueuedJob[]>;
  /** Waits for group commits in flight. */
  drain(): Promise<void>;
}

/** Options of {@link createEnqueuer}. */
export interface EnqueuerOptions {
  db: Db;
  registry: JobRegistry | null;
  hub: NotifyHub;
  maxPayloadBytes: number;
  /** Statements in flight at once for group commit. */
  maxInFlight?: number;
}

/** Turns a validated input into a row to insert; throws a QueueError for a bad payload. */
function prepare(registry: JobRegistry | null, input: EnqueueInput, maxPayloadBytes: number): InsertJob {
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
  };
}

/** The refusal of a reused id: names the caller's id and nothing about the job that has it. */
function idConflict(jobId: string, where = ''): QueueError {
  return new QueueError(
    ERROR_CODES.JOB_ID_CONFLICT,
    `${where}job id ${jobId} is already used by another job; an id may be sent again only to repeat the same enqueue (same type and queue)`,
  );
}

const keyOf = (queue: string, type: string, uniqueKey: string | null): string => `${queue}\u0000${type}\u0000${uniqueKey}`;

const answerOf = (row: InsertedRow | ExistingRow, created: boolean): EnqueuedJob => ({
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
 * id used by any other job throws {@link JobIdTakenError} and stores nothing.
 * Only a job with a new id falls through to its uniqueKey: held by a live job
 * of its queue and type, it gets that job; if the holder finished in between,
 * the job is inserted again (bounded), so every caller gets a job.
 */
async function insertJobs(db: Db, jobs: readonly InsertJob[]): Promise<EnqueuedJob[]> {
  // An id twice in one batch (a retry racing its original into one group
  // commit, or a repeat inside one enqueueMany) is one job, answered once as created.
  const firstOf = new Map<string, InsertJob>();
  for (const job of jobs) {
    const first = firstOf.get(job.id);
    if (!first) firstOf.set(job.id, job);
    else if (first.type !== job.type || first.queue !== job.queue) throw new JobIdTakenError(job.id);
  }
  const byId = new Map<string, EnqueuedJob>();
  const byKey = new Map<string, EnqueuedJob>();
  let todo = [...firstOf.values()];
  for (let round = 0; todo.length > 0; round++) {
    if (round === 5) throw new Error('uniqueKey contention: the live job kept finishing while enqueueing; try again');
    for (const row of await jobInsertMany(db, todo)) byId.set(row.id, answerOf(row, true));
    const skipped = todo.filter((j) => !byId.has(j.id));
    // The common case ends here: one statement, nothing skipped.
    if (skipped.length === 0) break;
    for (const row of await jobFindExisting(db, skipped)) {
      if (row.by_id) byId.set(row.id, answerOf(row, false));
      else byKey.set(keyOf(row.queue, row.task_type, row.unique_key), answerOf(row, false));
    }
    todo = skipped.filter((j) => !byId.has(j.id) && !byKey.has(keyOf(j.queue, j.type, j.uniqueKey)));
  }
  const answered = new Set<string>();
  return jobs.map((j) => {
    const own = byId.get(j.id);
    if (own) {
      const first = !answered.has(j.id);
      answered.add(j.id);
      return first ? own : { ...own, created: false };
    }
    // Another job of this same call may have taken the key: that one is "created", this one is not.
    return { ...(byKey.get(keyOf(j.queue, j.type, j.uniqueKey)) as EnqueuedJob), created: false };
  });
}

/** Creates the enqueuer. */
export function createEnqueuer(options: EnqueuerOptions): Enqueuer {
  const { db, registry, hub, maxPayloadBytes } = options;

  const insertAndWake = async (jobs: readonly InsertJob[]): Promise<EnqueuedJob[]> => {
    const result = await insertJobs(db, jobs);
    // This server's own waiting claims need no NOTIFY round trip.
    hub.wake(new Set(result.filter((r) => r.created).map((r) => r.queue)));
    return result;
  };

  // The jobs of a group commit come from unrelated callers: each gets its own answer or error.
  const insertGroup = async (jobs: readonly InsertJob[]): Promise<Array<EnqueuedJob | Error>> => {
    try {
      return await insertAndWake(jobs);
    } catch (error) {
      if (error instanceof JobIdTakenError) {
        if (jobs.length === 1) return [idConflict(error.jobId)];
        // Only jobs with that id can be refused for it: they go alone (the first
        // to commit wins, as if they had come in apart), the rest together again.
        const same = jobs.filter((j) => j.id === error.jobId);
        const rest = jobs.filter((j) => j.id !== error.jobId);
        const [restAnswers, ...sameAnswers] = await Promise.all([
          rest.length > 0 ? insertGroup(rest) : Promise.resolve([]),
          ...same.map((j) => insertGroup([j])),
        ]);
        const answers = new Map<InsertJob, EnqueuedJob | Error>();
        rest.forEach((j, i) => answers.set(j, restAnswers?.[i] as EnqueuedJob | Error));
        same.forEach((j, i) => answers.set(j, sameAnswers[i]?.[0] as EnqueuedJob | Error));
        return jobs.map((j) => answers.get(j) as EnqueuedJob | Error);
      }
      if (jobs.length === 1 || isDatabaseUnavailable(error)) throw error;
      // One bad row must not fail its neighbours: retry each alone.
      return Promise.all(jobs.map((j) => insertGroup([j]).then((r) => r[0] as EnqueuedJob | Error, (e: unknown) => e as Error)));
    }
  };

  // Group commit: single enqueues arriving while a statement is in flight share the next one.
  const group = createBatcher<InsertJob, EnqueuedJob>({
    maxBatch: 1000,
    maxInFlight: options.maxInFlight ?? 4,
    send: insertGroup,
  });

  return {
    enqueue(input) {
      return group.add(prepare(registry, input, maxPayloadBytes));
    },
    async enqueueMany(inputs) {
      const jobs = inputs.map((input, index) => {
        try {
          return prepare(registry, input, maxPayloadBytes);
        } catch (error) {
          if (!(error instanceof QueueError)) throw error;
          const issues = error.issues?.map((i) => ({ path: ['jobs', index, 'payload', ...i.path], message: i.message }));
          throw new QueueError(error.code, `jobs[${index}]: ${error.message}`, issues);
        }
      });
      try {
        return await insertAndWake(jobs);
      } catch (error) {
        if (!(error instanceof JobIdTakenError)) throw error;
        // The job named is the first with that id, or a later repeat of it that differs in type or queue.
        const first = jobs.find((j) => j.id === error.jobId) as InsertJob;
        const repeat = jobs.findIndex((j) => j.id === error.jobId && (j.type !== first.type || j.queue !== first.queue));
        throw idConflict(error.jobId, `jobs[${repeat >= 0 ? repeat : jobs.indexOf(first)}]: `);
      }
    },
    drain: () => group.drain(),
  };
}
