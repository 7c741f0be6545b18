-- The rescuer's index, keyed on "has a lease" instead of on the status.
--
-- Why: a partial index WHERE status IN ('claimed', 'processing') also matches
-- the fence of every worker statement (complete, fail, start, heartbeat,
-- release: "AND status IN ('claimed', 'processing')"). With statistics taken
-- while nothing was held it looks like one row, so the planner walked it and
-- compared every held job with every id of the batch instead of looking the
-- ids up in the primary key. Measured on this machine with 1,000,000 finished
-- rows and 500 jobs held: a completion of 250 took 26.6 ms, and W3 fell to
-- 13,200 jobs/s from 23,300 on an empty table. Only held jobs have a lease
-- (every move out of claimed/processing clears it; a CHECK requires it while
-- held), so this index holds the same rows, and only the rescuer's
-- "lease_expires_at < now()" can use it.
DROP INDEX "task_queue_lease_idx";
CREATE INDEX "task_queue_lease_idx" ON "task_queue" ("lease_expires_at")
  WHERE "lease_expires_at" IS NOT NULL;

-- The fenced completion of a batch, in the database for the same reason as
-- skipq_claim: with statistics taken before the batch was claimed the planner
-- believes no row is held, scans the table and loops over the batch for each
-- row (measured: 41 ms for 250 completions on a 10,000-row table, against 2 ms
-- through the primary key). With sequential and bitmap scans off, the ids of
-- the batch drive and each row is found through the primary key. The plan is
-- always the generic one: a custom plan (PL/pgSQL's first five calls in each
-- session) knows the batch is 500 ids and, believing the table holds one
-- matching row, walks the whole primary key for each of them instead (129 ms
-- for 500 after an ANALYZE, against 4 ms).
CREATE FUNCTION skipq_complete(p_worker_id text, p_ids text[], p_attempts integer[], p_results text[])
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  RETURN QUERY
  UPDATE task_queue AS t
  SET status = 'completed',
      result = j.result::jsonb,
      completed_at = now(),
      lease_expires_at = NULL,
      updated_at = now()
  FROM unnest(p_ids, p_attempts, p_results) AS j(id, attempt, result)
  WHERE t.id = j.id
    AND t.attempt = j.attempt
    AND t.worker_id = p_worker_id
    AND t.status IN ('claimed', 'processing')
  RETURNING t.id;
END
$$;
