import type { Db } from '../db/pool.js';
import type { MoveRow } from './row.js';
import { numberArrayLiteral, textArrayLiteral } from '../pgArray.js';

/** A job a worker says it holds: id and the attempt it got at claim. */
export interface HeldRef {
  id: string;
  attempt: number;
}

/** Parameters of the holder's moves: who holds, which jobs, and the clock (null: the database's). */
export interface HolderMove<Ref extends HeldRef = HeldRef> {
  workerId: string;
  jobs: readonly Ref[];
  now: Date | null;
}

// Every statement here calls one fenced move function of the lifecycle
// migration: the row must still be held by this worker under this attempt.
// Each answers a row per input id that exists, `moved` or as it is now, so a
// miss is judged without a second query (shared/lifecycle.ts judge). The
// functions lock rows in id order: two of one worker's statements naming the
// same jobs in different orders cannot deadlock.

/** jobStartMany: claimed -> processing for the handlers that began (skipq_start). */
export async function jobStartMany(db: Db, params: HolderMove): Promise<MoveRow[]> {
  const { rows } = await db.query<MoveRow>({
    name: 'jobStartMany',
    text: `
SELECT s.id, s.moved, s.status, s.attempt, s.worker_id, s.ended_by
FROM skipq_start($1::text, $2::text[], $3::int[], $4::timestamptz) AS s`,
    values: [params.workerId, textArrayLiteral(params.jobs.map((j) => j.id)), numberArrayLiteral(params.jobs.map((j) => j.attempt)), params.now],
  });
  return rows;
}

/** A heartbeat item: a held job and, optionally, its progress as JSON text. */
export interface HeartbeatRef extends HeldRef {
  progressJson: string | null;
}

/**
 * jobHeartbeatMany: extends the leases still held, never past an attempt's
 * timeout, and stores progress (skipq_heartbeat). A job past its timeout is
 * not moved: its attempt is over.
 */
export async function jobHeartbeatMany(db: Db, params: HolderMove<HeartbeatRef> & { leaseMs: number }): Promise<MoveRow[]> {
  const { rows } = await db.query<MoveRow>({
    name: 'jobHeartbeatMany',
    text: `
SELECT h.id, h.moved, h.status, h.attempt, h.worker_id, h.ended_by, h.lease_expires_at
FROM skipq_heartbeat($1::text, $2::text[], $3::int[], $4::text[], $5::int, $6::timestamptz) AS h`,
    values: [
      params.workerId,
      textArrayLiteral(params.jobs.map((j) => j.id)),
      numberArrayLiteral(params.jobs.map((j) => j.attempt)),
      textArrayLiteral(params.jobs.map((j) => j.progressJson)),
      params.leaseMs,
      params.now,
    ],
  });
  return rows;
}

/**
 * jobReleaseMany: a worker that stops hands jobs it has not finished back to
 * pending at once (skipq_release). The attempt stays counted (it is the
 * fencing token), but no retry is used up: the job did not fail.
 */
export async function jobReleaseMany(db: Db, params: HolderMove): Promise<MoveRow[]> {
  const { rows } = await db.query<MoveRow>({
    name: 'jobReleaseMany',
    text: `
SELECT r.id, r.moved, r.status, r.attempt, r.worker_id, r.ended_by, r.queue
FROM skipq_release($1::text, $2::text[], $3::int[], $4::timestamptz) AS r`,
    values: [params.workerId, textArrayLiteral(params.jobs.map((j) => j.id)), numberArrayLiteral(params.jobs.map((j) => j.attempt)), params.now],
  });
  return rows;
}
