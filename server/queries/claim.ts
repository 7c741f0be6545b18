import type { Db } from '../db/pool.js';
import { completeCall, completionArrays, type CompletionRef } from './finish.js';
import { CLAIM_COLUMNS, type TaskRow } from './row.js';

/** Parameters of {@link jobClaim}. `null` types or queues mean any. */
export interface ClaimParams {
  workerId: string;
  types: readonly string[] | null;
  queues: readonly string[] | null;
  limit: number;
  leaseMs: number;
}

/**
 * jobClaim: takes up to `limit` due pending jobs in priority order (higher
 * first, then earliest scheduled, then oldest id) and hands them to one worker
 * under a lease. SKIP LOCKED means concurrent claims never wait for each other
 * and never get the same row; `attempt` goes up by one and is the fencing token
 * every later call of this holder must present. The scan walks the partial
 * index task_queue_claim_idx in order, so finished rows cost nothing however
 * many the table keeps.
 */
export async function jobClaim(db: Db, params: ClaimParams): Promise<TaskRow[]> {
  const { rows } = await db.query<TaskRow>({
    name: 'jobClaim',
    text: `
WITH ${CLAIM_CTES}
SELECT * FROM claimed`,
    values: claimValues(params),
  });
  return rows;
}

/**
 * jobCompleteAndClaim: a worker's finished jobs and its next claim in one
 * statement, one round trip and one commit. The claim cannot pick the rows
 * being completed (they are not pending). Answers the claimed rows and the ids
 * that completed now.
 */
export async function jobCompleteAndClaim(
  db: Db,
  params: ClaimParams,
  completions: readonly CompletionRef[],
): Promise<{ claimed: TaskRow[]; completed: string[] }> {
  const { rows } = await db.query<TaskRow & { completed_id: string | null }>({
    name: 'jobCompleteAndClaim',
    text: `
WITH done AS (
  SELECT id FROM ${completeCall('$1', '$6', '$7', '$8')} AS id
),
${CLAIM_CTES}
SELECT claimed.*, NULL::text AS completed_id FROM claimed
UNION ALL
SELECT ${CLAIM_COLUMNS.split(', ').map(() => 'NULL').join(', ')}, done.id FROM done`,
    values: [...claimValues(params), ...completionArrays(completions)],
  });
  const claimed: TaskRow[] = [];
  const completed: string[] = [];
  for (const row of rows) {
    if (row.completed_id === null) claimed.push(row);
    else completed.push(row.completed_id);
  }
  return { claimed, completed };
}

function claimValues(p: ClaimParams): unknown[] {
  return [p.workerId, p.types, p.queues, p.limit, p.leaseMs];
}

// The one claim lives in the database (skipq_claim in the init
// migration), shared with the SQL API's claim_tasks.
// $1 worker id, $2 types (null: any), $3 queues (null: any), $4 limit, $5 lease in ms.
const CLAIM_CTES = `claimed AS (
  SELECT ${CLAIM_COLUMNS}
  FROM skipq_claim($1::text, $2::text[], $3::text[], $4::int, $5::int)
)`;
