import type { Db } from '../db/pool.js';

// skipq keeps no registry of workers: a worker is known by the worker id its
// claims write into the jobs it takes. This reads workers back from those
// rows: the jobs held now (claim, start and every heartbeat set updated_at on
// them) and the jobs completed lately (completed_at is the completing
// worker's own act; a cancel or a retry is an operator's, and a job keeps its
// last holder's id after either, so neither counts as the worker being seen).
// An admin page's call, not a hot path: each half walks an index (the lease
// index, the retention index) and stops at a bound. Measured with 1,000,000
// completed rows and 500 held: 17 ms with 2,000 completed rows read, 140 ms
// with 10,000.

/** Parameters of {@link workerList}. */
export interface WorkerListParams {
  /** Completed jobs older than this many ms are not read (held jobs always are). */
  windowMs: number;
  /** The queues the caller may see; null: every queue. */
  queues: readonly string[] | null;
  /** At most this many held jobs are read. */
  heldLimit: number;
  /** At most this many completed jobs are read, the newest first. */
  completedLimit: number;
  /** At most this many workers are answered (the most recently active first). */
  workerLimit: number;
  /** The clock (null: the database's, skipq_now()). */
  now: Date | null;
}

/** One worker of {@link workerList}; `held_scanned` and `completed_scanned` repeat on every row. */
export interface WorkerListRow {
  worker_id: string;
  held: number;
  completed: number;
  queues: string[];
  /** The newest of its held jobs' last claim, start or heartbeat and its completed jobs' completion. */
  last_seen_at: Date;
  /** The latest claim among the jobs read (started_at is set at claim). */
  last_claim_at: Date | null;
  /** The latest lease among its held jobs. */
  lease_expires_at: Date | null;
  /** Up to 5 of the jobs it holds, newest claim first; null when it holds none. */
  held_job_ids: string[] | null;
  held_scanned: number;
  completed_scanned: number;
}

/**
 * workerList: workers that hold jobs now or completed one in the last
 * `windowMs`, most recently seen first. Failed jobs are not read (no index
 * covers them), and a worker that claimed nothing leaves no row to find.
 */
export async function workerList(db: Db, params: WorkerListParams): Promise<WorkerListRow[]> {
  const { rows } = await db.query<WorkerListRow>({
    name: 'workerList',
    text: `
WITH bounds AS (
  SELECT coalesce($1::timestamptz, skipq_now()) - $2::int * interval '1 millisecond' AS since
),
held AS (
  SELECT t.id, t.worker_id, t.queue, t.updated_at AS seen_at, t.started_at, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.lease_expires_at IS NOT NULL
    AND t.status IN ('claimed', 'processing')
    AND ($3::text[] IS NULL OR t.queue = ANY($3::text[]))
  LIMIT $4::int
),
completed AS (
  SELECT t.worker_id, t.queue, t.completed_at AS seen_at, t.started_at
  FROM task_queue AS t, bounds AS b
  WHERE t.status IN ('completed', 'cancelled')
    AND coalesce(t.completed_at, t.updated_at) > b.since
    AND t.status = 'completed'
    AND t.worker_id IS NOT NULL
    AND ($3::text[] IS NULL OR t.queue = ANY($3::text[]))
  ORDER BY coalesce(t.completed_at, t.updated_at) DESC
  LIMIT $5::int
),
seen AS (
  SELECT h.worker_id, h.queue, h.seen_at, h.started_at, h.lease_expires_at, h.id AS held_id
  FROM held AS h
  UNION ALL
  SELECT c.worker_id, c.queue, c.seen_at, c.started_at, NULL::timestamptz, NULL::text
  FROM completed AS c
)
SELECT s.worker_id,
       count(s.held_id)::int AS held,
       (count(*) - count(s.held_id))::int AS completed,
       array_agg(DISTINCT s.queue ORDER BY s.queue) AS queues,
       max(s.seen_at) AS last_seen_at,
       max(s.started_at) AS last_claim_at,
       max(s.lease_expires_at) AS lease_expires_at,
       (array_agg(s.held_id ORDER BY s.started_at DESC, s.held_id) FILTER (WHERE s.held_id IS NOT NULL))[1:5] AS held_job_ids,
       (SELECT count(*) FROM held)::int AS held_scanned,
       (SELECT count(*) FROM completed)::int AS completed_scanned
FROM seen AS s
GROUP BY s.worker_id
ORDER BY max(s.seen_at) DESC, s.worker_id
LIMIT $6::int`,
    values: [params.now, params.windowMs, params.queues, params.heldLimit, params.completedLimit, params.workerLimit],
  });
  return rows;
}
