import type { Db } from '../db/pool.js';

/** A job a worker says it holds: id and the attempt it got at claim. */
export interface HeldRef {
  id: string;
  attempt: number;
}

// Every statement here is fenced the same way: the row must still be held
// (claimed or processing) by this worker under this attempt. A row that does
// not match is simply not returned; the caller classifies it. The extra
// "t.id = ANY (ids)" gives the planner the primary key as a way in even when
// its statistics say nothing is held (see skipq_complete for the figures).

/** jobStartMany: claimed -> processing for the handlers that began. Returns the ids that moved. */
export async function jobStartMany(db: Db, workerId: string, jobs: readonly HeldRef[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'jobStartMany',
    text: `
UPDATE task_queue AS t
SET status = 'processing',
    started_at = now(),
    updated_at = now()
FROM unnest($2::text[], $3::int[]) AS j(id, attempt)
WHERE t.id = ANY ($2::text[])
  AND t.id = j.id
  AND t.attempt = j.attempt
  AND t.worker_id = $1::text
  AND t.status = 'claimed'
RETURNING t.id`,
    values: [workerId, jobs.map((j) => j.id), jobs.map((j) => j.attempt)],
  });
  return rows.map((r) => r.id);
}

/** A heartbeat item: a held job and, optionally, its progress as JSON text. */
export interface HeartbeatRef extends HeldRef {
  progressJson: string | null;
}

/** jobHeartbeat: extends the leases still held and stores progress. Returns the ids extended with their new expiry. */
export async function jobHeartbeat(
  db: Db,
  workerId: string,
  leaseMs: number,
  jobs: readonly HeartbeatRef[],
): Promise<Array<{ id: string; lease_expires_at: Date }>> {
  const { rows } = await db.query<{ id: string; lease_expires_at: Date }>({
    name: 'jobHeartbeat',
    text: `
UPDATE task_queue AS t
SET lease_expires_at = now() + $2::int * interval '1 millisecond',
    progress = coalesce(j.progress::jsonb, t.progress),
    updated_at = now()
FROM unnest($3::text[], $4::int[], $5::text[]) AS j(id, attempt, progress)
WHERE t.id = ANY ($3::text[])
  AND t.id = j.id
  AND t.attempt = j.attempt
  AND t.worker_id = $1::text
  AND t.status IN ('claimed', 'processing')
RETURNING t.id, t.lease_expires_at`,
    values: [workerId, leaseMs, jobs.map((j) => j.id), jobs.map((j) => j.attempt), jobs.map((j) => j.progressJson)],
  });
  return rows;
}

/**
 * jobReleaseMany: a worker that stops hands jobs it has not finished back to
 * pending at once. The attempt stays counted (it is the fencing token), but no
 * retry is used up: the job did not fail.
 */
export async function jobReleaseMany(db: Db, workerId: string, jobs: readonly HeldRef[]): Promise<Array<{ id: string; queue: string }>> {
  const { rows } = await db.query<{ id: string; queue: string }>({
    name: 'jobReleaseMany',
    text: `
UPDATE task_queue AS t
SET status = 'pending',
    scheduled_for = now(),
    lease_expires_at = NULL,
    updated_at = now()
FROM unnest($2::text[], $3::int[]) AS j(id, attempt)
WHERE t.id = ANY ($2::text[])
  AND t.id = j.id
  AND t.attempt = j.attempt
  AND t.worker_id = $1::text
  AND t.status IN ('claimed', 'processing')
RETURNING t.id, t.queue`,
    values: [workerId, jobs.map((j) => j.id), jobs.map((j) => j.attempt)],
  });
  return rows;
}

/** Where a job stands, for classifying a fenced write that matched nothing. */
export interface HolderRow {
  id: string;
  status: string;
  attempt: number;
  worker_id: string | null;
}

/** jobHolders: status, attempt and holder of each id (missing ids are absent). */
export async function jobHolders(db: Db, ids: readonly string[]): Promise<HolderRow[]> {
  const { rows } = await db.query<HolderRow>({
    name: 'jobHolders',
    text: `
SELECT id, status, attempt, worker_id
FROM task_queue
WHERE id = ANY ($1::text[])`,
    values: [ids],
  });
  return rows;
}
