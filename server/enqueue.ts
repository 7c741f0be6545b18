import { createBatcher, type EnqueuedJob, type EnqueueInput, type JobRegistry } from '../shared/index.js';
import type { Db } from './db/pool.js';
import { isDatabaseUnavailable, QueueError } from './errors.js';
import { createJobId } from './ids.js';
import { toJsonText } from './json.js';
import type { NotifyHub } from './notify.js';
import { jobFindLiveByKey, jobInsertMany, type InsertJob } from './queries/insert.js';
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
    id: createJobId(),
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

/**
 * Inserts prepared jobs and answers each in order. A job skipped because its
 * uniqueKey is held by a live job gets that job; if the holder finished in
 * between, the job is inserted again (bounded), so every caller gets a live job.
 */
const keyOf = (type: string, uniqueKey: string | null): string => `${type}\u0000${uniqueKey}`;

async function insertJobs(db: Db, jobs: readonly InsertJob[]): Promise<EnqueuedJob[]> {
  const answers = new Map<string, EnqueuedJob>();
  const keyAnswers = new Map<string, EnqueuedJob>();
  let todo = jobs;
  for (let round = 0; todo.length > 0; round++) {
    if (round === 5) throw new Error('uniqueKey contention: the live job kept finishing while enqueueing; try again');
    const inserted = await jobInsertMany(db, todo);
    for (const row of inserted) {
      answers.set(row.id, { id: row.id, type: row.task_type, queue: row.queue, status: row.status, priority: row.priority, scheduledFor: row.scheduled_for, created: true });
    }
    const skipped = todo.filter((j) => !answers.has(j.id));
    if (skipped.length === 0) break;
    const live = await jobFindLiveByKey(db, skipped.map((j) => ({ type: j.type, uniqueKey: j.uniqueKey as string })));
    for (const row of live) {
      keyAnswers.set(keyOf(row.task_type, row.unique_key), {
        id: row.id, type: row.task_type, queue: row.queue, status: row.status, priority: row.priority, scheduledFor: row.scheduled_for, created: false,
      });
    }
    todo = skipped.filter((j) => !keyAnswers.has(keyOf(j.type, j.uniqueKey)));
  }
  return jobs.map((j) => {
    const own = answers.get(j.id);
    if (own) return own;
    const existing = keyAnswers.get(keyOf(j.type, j.uniqueKey)) as EnqueuedJob;
    // Another job of this same call may have taken the key: that one is "created", this one is not.
    return { ...existing, created: false };
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

  // Group commit: single enqueues arriving while a statement is in flight share the next one.
  const group = createBatcher<InsertJob, EnqueuedJob>({
    maxBatch: 1000,
    maxInFlight: options.maxInFlight ?? 4,
    async send(jobs) {
      try {
        return await insertAndWake(jobs);
      } catch (error) {
        if (jobs.length === 1 || isDatabaseUnavailable(error)) throw error;
        // One bad row must not fail its neighbours: retry each alone.
        return Promise.all(jobs.map((j) => insertAndWake([j]).then((r) => r[0] as EnqueuedJob, (e: unknown) => e as Error)));
      }
    },
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
      return insertAndWake(jobs);
    },
    drain: () => group.drain(),
  };
}
