-- Retention and dead letters (issue 10, items 4 and 5).
--
-- Retention: the leader's maintenance deletes finished jobs in small batches
-- (server/retention.ts): completed and cancelled ones after the server's
-- retentionDays (SKIPQ_RETENTION_DAYS, default 7), failed ones after its
-- failedRetentionDays (SKIPQ_FAILED_RETENTION_DAYS, default 30), each
-- overridable per queue here. Dead letters: the failed jobs, found and moved
-- in bulk by one filter (skipq_job_matches) that jobs.list, jobs.retryMany and
-- jobs.cancelMany all read, so what a list shows is what a bulk move takes.

-- Per-queue retention, in days. NULL: the server's default; 0: keep forever
-- (as SKIPQ_RETENTION_DAYS=0 does for the server).
ALTER TABLE "queues" ADD COLUMN "retention_days" INTEGER;
ALTER TABLE "queues" ADD COLUMN "failed_retention_days" INTEGER;
ALTER TABLE "queues" ADD CONSTRAINT "queues_retention_days_check" CHECK ("retention_days" BETWEEN 0 AND 36500);
ALTER TABLE "queues" ADD CONSTRAINT "queues_failed_retention_days_check" CHECK ("failed_retention_days" BETWEEN 0 AND 36500);

-- The retention indexes: the finished jobs of one queue, oldest first, so a
-- batch of one queue is a range walk of its own rows whatever the other
-- queues keep (a queue that keeps 365 days is never read by the sweep of a
-- queue that keeps 1). The init migration's task_queue_finished_idx (finish
-- time alone) is replaced, not kept beside it: the same rows, one index entry
-- per completion as before (every completion is a non-HOT update that adds an
-- entry to each index whose predicate the new row matches). Pending and held
-- rows are in neither index, so enqueue, claim and heartbeat pay nothing.
-- cleanup_old_tasks keeps its statement; without a queue it walks the whole
-- index instead of a range (an occasional manual call).
DROP INDEX "task_queue_finished_idx";
CREATE INDEX "task_queue_finished_idx" ON "task_queue" ("queue", (coalesce("completed_at", "updated_at")))
  WHERE "status" IN ('completed', 'cancelled');
-- Failed jobs (the dead letters): written only when a job fails for good.
-- Also what jobs.list({ status: 'failed' }) reads instead of walking every
-- finished row by id.
CREATE INDEX "task_queue_failed_idx" ON "task_queue" ("queue", (coalesce("failed_at", "updated_at")))
  WHERE "status" = 'failed';

-- One batch of retention for one queue: deletes at most p_limit jobs of the
-- queue finished before p_before (and not before p_from), oldest first, and
-- answers how many went and the finish time of the newest of them.
-- p_failed: failed jobs; else completed and cancelled ones. Two statements
-- rather than one with the status chosen by an argument: each must say its
-- partial index's predicate outright for the planner to use that index.
--
-- p_from is the batch before's `reached`: each batch walks on from where the
-- one before stopped. Without it every batch would start at the oldest entry
-- again and step over the index entries of every row deleted so far (they stay
-- until vacuum): measured over 1,000,000 rows, batches grew from about 25 ms to
-- 130 ms and the pass took 180 s instead of about a minute.
--
-- Only finished jobs are ever touched (the status is in the WHERE of both the
-- pick and the delete), so a live job, or one that a retry moved back to
-- pending meanwhile, stays. SKIP LOCKED: a row a concurrent move holds is left
-- for the next pass, so a batch never waits and cannot take part in a
-- deadlock. Counted held jobs are never finished, so the queues migration's
-- delete trigger never fires here and the counters stay as they are.
--
-- Why a function with the planner's hands tied, as skipq_claim: with stale
-- statistics (a burst of completions since the last ANALYZE) the planner may
-- pick a bitmap scan and sort every due row of the queue for each batch; with
-- bitmap scans and sorts off only the ordered walk of the index is left, which
-- reads just the rows it deletes. The ids go through an array, so the delete
-- finds each row by its primary key and never joins the table with itself by
-- a hash.
CREATE FUNCTION skipq_retention_batch(
  p_queue text,
  p_failed boolean,
  p_before timestamptz,
  p_limit integer,
  p_from timestamptz DEFAULT NULL
)
RETURNS TABLE (deleted integer, reached timestamptz)
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
  v_from timestamptz := coalesce(p_from, '-infinity');
BEGIN
  IF p_failed THEN
    RETURN QUERY
    WITH gone AS (
      DELETE FROM task_queue AS t
      WHERE t.id = ANY (ARRAY(
          SELECT d.id
          FROM task_queue AS d
          WHERE d.queue = p_queue
            AND d.status = 'failed'
            AND coalesce(d.failed_at, d.updated_at) >= v_from
            AND coalesce(d.failed_at, d.updated_at) < p_before
            -- A flow's parent still running may read this child's result (ctx.children()).
            AND (d.parent_id IS NULL OR NOT EXISTS (
              SELECT 1 FROM task_queue AS p
              WHERE p.id = d.parent_id AND p.status IN ('pending', 'claimed', 'processing')))
          ORDER BY coalesce(d.failed_at, d.updated_at)
          LIMIT greatest(p_limit, 0)
          FOR UPDATE SKIP LOCKED
        ))
        AND t.status = 'failed'
      RETURNING coalesce(t.failed_at, t.updated_at) AS finished
    )
    SELECT count(*)::integer, max(gone.finished) FROM gone;
  ELSE
    RETURN QUERY
    WITH gone AS (
      DELETE FROM task_queue AS t
      WHERE t.id = ANY (ARRAY(
          SELECT d.id
          FROM task_queue AS d
          WHERE d.queue = p_queue
            AND d.status IN ('completed', 'cancelled')
            AND coalesce(d.completed_at, d.updated_at) >= v_from
            AND coalesce(d.completed_at, d.updated_at) < p_before
            -- A flow's parent still running may read this child's result (ctx.children()).
            AND (d.parent_id IS NULL OR NOT EXISTS (
              SELECT 1 FROM task_queue AS p
              WHERE p.id = d.parent_id AND p.status IN ('pending', 'claimed', 'processing')))
          ORDER BY coalesce(d.completed_at, d.updated_at)
          LIMIT greatest(p_limit, 0)
          FOR UPDATE SKIP LOCKED
        ))
        AND t.status IN ('completed', 'cancelled')
      RETURNING coalesce(t.completed_at, t.updated_at) AS finished
    )
    SELECT count(*)::integer, max(gone.finished) FROM gone;
  END IF;
END
$$;

-- The queues that have finished jobs, with their retention settings (NULL:
-- the server's default): a loose index scan, one descent of each retention
-- index per queue, never a scan of the finished rows themselves.
CREATE FUNCTION skipq_retention_queues()
RETURNS TABLE (queue text, retention_days integer, failed_retention_days integer)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE done(queue) AS (
    (SELECT t.queue FROM task_queue AS t WHERE t.status IN ('completed', 'cancelled') ORDER BY t.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM task_queue AS t WHERE t.status IN ('completed', 'cancelled') AND t.queue > d.queue ORDER BY t.queue LIMIT 1)
    FROM done AS d
    WHERE d.queue IS NOT NULL
  ),
  dead(queue) AS (
    (SELECT t.queue FROM task_queue AS t WHERE t.status = 'failed' ORDER BY t.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM task_queue AS t WHERE t.status = 'failed' AND t.queue > d.queue ORDER BY t.queue LIMIT 1)
    FROM dead AS d
    WHERE d.queue IS NOT NULL
  ),
  names AS (
    SELECT done.queue FROM done WHERE done.queue IS NOT NULL
    UNION
    SELECT dead.queue FROM dead WHERE dead.queue IS NOT NULL
  )
  SELECT n.queue, q.retention_days, q.failed_retention_days
  FROM names AS n
  LEFT JOIN queues AS q ON q.name = n.queue
  ORDER BY n.queue
$$;

-- Whether a job matches a filter of jobs.list / jobs.retryMany /
-- jobs.cancelMany (shared/api.ts jobFilterSchema); a NULL argument does not
-- filter. Also for psql:
--   SELECT id, error_message FROM task_queue AS t
--   WHERE skipq_job_matches(t, p_statuses => '{failed}', p_error_contains => 'timeout');
--
-- p_error_contains is a plain substring, case-insensitive: % and _ in it are
-- matched as themselves (escaped for ILIKE here, in one place). ILIKE rather
-- than position(): a pg_trgm index on error_message, if one is ever added,
-- serves it. "Finished" is when the job reached its end status (completed_at,
-- failed_at, or the cancel's updated_at, as retention reads them); a live job
-- has no finish time and matches no finished range. Ranges are [after, before).
--
-- A SQL function of one expression, STABLE: the planner inlines it into the
-- calling statement, so status and queue reach the indexes as if written out.
CREATE FUNCTION skipq_job_matches(
  t task_queue,
  p_statuses text[] DEFAULT NULL,
  p_queues text[] DEFAULT NULL,
  p_type text DEFAULT NULL,
  p_error_contains text DEFAULT NULL,
  p_created_after timestamptz DEFAULT NULL,
  p_created_before timestamptz DEFAULT NULL,
  p_finished_after timestamptz DEFAULT NULL,
  p_finished_before timestamptz DEFAULT NULL
)
RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT (p_statuses IS NULL OR t.status = ANY (p_statuses))
     AND (p_queues IS NULL OR t.queue = ANY (p_queues))
     AND (p_type IS NULL OR t.task_type = p_type)
     AND (p_error_contains IS NULL
          OR t.error_message ILIKE '%' || replace(replace(replace(p_error_contains, '\', '\\'), '%', '\%'), '_', '\_') || '%')
     AND (p_created_after IS NULL OR t.created_at >= p_created_after)
     AND (p_created_before IS NULL OR t.created_at < p_created_before)
     AND (p_finished_after IS NULL
          OR (t.status IN ('completed', 'failed', 'cancelled') AND coalesce(t.completed_at, t.failed_at, t.updated_at) >= p_finished_after))
     AND (p_finished_before IS NULL
          OR (t.status IN ('completed', 'failed', 'cancelled') AND coalesce(t.completed_at, t.failed_at, t.updated_at) < p_finished_before))
$$;
