-- The one claim, in the database: the TypeScript service (worker.claim) and the
-- SQL API (claim_tasks) both call skipq_claim, so they cannot drift apart.
--
-- Why a function: a queue table's statistics are nearly always stale (a burst
-- of 10,000 enqueues lands between two autovacuum analyzes), and with stale
-- stats the planner picks a bitmap scan of the claim index and then sorts every
-- pending row on each claim; measured on this machine that was about 9 ms of an
-- 18 ms claim of 1,000 jobs with 10,000 pending. Turning bitmap scans and sorts
-- off for this function only leaves the ordered walk of task_queue_claim_idx,
-- which reads just the rows it hands out.
CREATE FUNCTION skipq_claim(
  p_worker_id text,
  p_task_types text[],
  p_queues text[],
  p_max_tasks integer,
  p_lease_ms integer
)
RETURNS SETOF task_queue
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
  RETURN QUERY
  WITH next AS (
    SELECT tq.id
    FROM task_queue AS tq
    WHERE tq.status = 'pending'
      AND tq.scheduled_for <= now()
      AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
      AND (p_queues IS NULL OR tq.queue = ANY (p_queues))
    ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
    LIMIT greatest(p_max_tasks, 0)
    FOR UPDATE SKIP LOCKED
  )
  UPDATE task_queue AS t
  SET status = 'claimed',
      worker_id = p_worker_id,
      attempt = t.attempt + 1,
      started_at = now(),
      lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
      updated_at = now()
  FROM next
  WHERE t.id = next.id
  RETURNING t.*;
END
$$;

-- claim_tasks keeps its established signature and result; SQL callers have no
-- heartbeat, so their lease is 15 minutes (the contract's orphan window).
CREATE OR REPLACE FUNCTION claim_tasks(p_worker_id text, p_task_types text[], p_max_tasks integer)
RETURNS TABLE (id text, task_type text, payload jsonb)
LANGUAGE sql VOLATILE AS $$
  SELECT c.id, c.task_type, c.payload
  FROM skipq_claim(p_worker_id, p_task_types, NULL, p_max_tasks, 900000) AS c
$$;
