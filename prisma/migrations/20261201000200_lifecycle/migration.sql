-- The lifecycle in one room: one fenced, batched SQL function per move, used
-- by the SQL API, the server and the rescuer alike. The table of moves they
-- follow is shared/lifecycle.ts (statuses each move starts from, the status
-- it ends in, what counts as a harmless repeat); test/lifecycle.test.ts walks
-- every status x move through these functions and through the tRPC API and
-- checks both against that table.
--
-- Every move function:
--   * takes arrays (one element per job) and an optional p_now (NULL: skipq_now()),
--   * guards the move in its WHERE (status, and for the holder's moves worker id
--     and attempt), never read-then-write,
--   * locks rows in one global order (id, byte-wise) so that two statements of
--     one worker naming the same jobs in different orders cannot deadlock,
--   * answers one skipq_move_result per input id that exists: `moved` says
--     whether this call made the move; a row it did not move is read after the
--     move, with a fresh snapshot, so a miss is classified without a second
--     round trip and sees what a concurrent call that beat it committed.

-- ended_by: what ended the job's latest attempt. The holder's own moves write
-- 'complete', 'fail' or 'release'; everyone else's write their own name:
-- 'rescue' (lease ran out), 'cancel', and the unfenced SQL API's
-- 'complete_task' / 'fail_task'. NULL while an attempt runs (claim clears it).
--
-- Why: a holder that repeats a call after a lost reply must get "done" again,
-- and a holder whose attempt somebody else ended must get LEASE_LOST. Status,
-- worker_id and attempt cannot tell those apart: the rescuer and the unfenced
-- SQL functions leave worker_id and attempt as they were, so a rescued job
-- looked like the holder's own retrying fail and a job finished by
-- complete_task like the holder's own completion (both answered 200). Which
-- move ended the attempt can tell them apart, and costs one short text column.
ALTER TABLE "task_queue" ADD COLUMN "ended_by" TEXT;
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_ended_by_check"
  CHECK ("ended_by" IN ('complete', 'fail', 'release', 'rescue', 'cancel', 'complete_task', 'fail_task'));

-- The clock every move reads: the skipq.now setting when set (tests and
-- scripts travel in time: SET skipq.now = '2030-01-01T00:00:00Z'), else the
-- transaction's now(). The server passes its own clock as p_now instead.
CREATE FUNCTION skipq_now() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(nullif(current_setting('skipq.now', true), '')::timestamptz, now())
$$;

-- When an attempt must be over: its claim (started_at) plus timeout_ms; NULL
-- when the job has no timeout. Leases never run past it.
CREATE FUNCTION skipq_deadline(p_started_at timestamptz, p_timeout_ms integer) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT p_started_at + p_timeout_ms * interval '1 millisecond'
$$;

-- The backoff before the next attempt, the one place it is computed (the
-- worker client's backoffDelayMs in shared/registry.ts is the same formula;
-- test/lifecycle.test.ts checks they agree). p_policy is a BackoffPolicy as
-- JSON ({"kind": "fixed" | "linear" | "exponential", "delayMs", "factor",
-- "maxDelayMs", "jitter"}); NULL is the established linear 60 s x (retry_count + 1).
-- Every delay stops at ten years (LIMITS.maxDelayMs); an exponential one is
-- capped before power() could overflow.
CREATE FUNCTION skipq_backoff(p_policy jsonb, p_retry_count integer) RETURNS interval
LANGUAGE sql VOLATILE AS $$
  SELECT interval '1 millisecond' * (
    CASE p.kind
      WHEN 'fixed' THEN p.delay_ms
      WHEN 'linear' THEN least(p.delay_ms * (p_retry_count + 1), p.max_ms)
      ELSE CASE
        WHEN p.delay_ms = 0 THEN 0
        WHEN p_retry_count * ln(p.factor) < ln(p.max_ms / p.delay_ms) THEN least(p.delay_ms * power(p.factor, p_retry_count), p.max_ms)
        ELSE p.max_ms
      END
    END
    * (1 - p.jitter + 2 * p.jitter * random())
  )
  FROM (
    SELECT coalesce(p_policy ->> 'kind', 'linear') AS kind,
           coalesce((p_policy ->> 'delayMs')::float8, 60000) AS delay_ms,
           greatest(coalesce((p_policy ->> 'factor')::float8, 2), 1) AS factor,
           least(coalesce((p_policy ->> 'maxDelayMs')::float8, 315360000000), 315360000000) AS max_ms,
           coalesce((p_policy ->> 'jitter')::float8, 0) AS jitter
  ) AS p
$$;

-- What every move function answers, one row per input id that exists.
-- moved: this call made the move. Otherwise the row as it is now, which the
-- caller classifies (shared/lifecycle.ts judge): a harmless repeat, a lost
-- lease, a cancel, a wrong state.
CREATE TYPE skipq_move_result AS (
  id text,
  moved boolean,
  status text,
  attempt integer,
  worker_id text,
  ended_by text,
  queue text,
  scheduled_for timestamptz,
  retry_count integer,
  lease_expires_at timestamptz
);

-- The current rows of the inputs a move did not move. Called as a statement
-- of its own after the move, so it reads with a fresh snapshot: when a
-- concurrent call of the same holder moved the row first (and this call's
-- UPDATE waited for it, then skipped it), this sees that call's result.
CREATE FUNCTION skipq_unmoved(p_ids text[], p_moved text[])
RETURNS SETOF skipq_move_result
LANGUAGE sql STABLE AS $$
  SELECT t.id, false, t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids)
    AND NOT (t.id = ANY (p_moved))
$$;

-- claim: pending and due -> claimed, under a lease, for one worker. The lease
-- is capped by the job's timeout (started_at is the claim time, and stays so:
-- start no longer resets it, so the timeout counts from the claim as
-- timeout_ms promises). p_now is the server's clock; the established
-- five-argument form below reads skipq_now().
--
-- Why a function: a queue table's statistics are nearly always stale (a burst
-- of 10,000 enqueues lands between two autovacuum analyzes), and with stale
-- stats the planner picks a bitmap scan of the claim index and then sorts every
-- pending row on each claim; measured on this machine that was about 9 ms of an
-- 18 ms claim of 1,000 jobs with 10,000 pending. Turning bitmap scans and sorts
-- off for this function only leaves the ordered walk of task_queue_claim_idx,
-- which reads just the rows it hands out. SKIP LOCKED never waits, so the claim
-- cannot take part in a deadlock.
CREATE FUNCTION skipq_claim(
  p_worker_id text,
  p_task_types text[],
  p_queues text[],
  p_max_tasks integer,
  p_lease_ms integer,
  p_now timestamptz
)
RETURNS SETOF task_queue
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
BEGIN
  RETURN QUERY
  WITH next AS (
    SELECT tq.id
    FROM task_queue AS tq
    WHERE tq.status = 'pending'
      AND tq.scheduled_for <= v_now
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
      started_at = v_now,
      lease_expires_at = v_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
      ended_by = NULL,
      updated_at = v_now
  FROM next
  WHERE t.id = next.id
  RETURNING t.*;
END
$$;

-- The established form, as claim_tasks calls it: the same claim on skipq_now().
CREATE OR REPLACE FUNCTION skipq_claim(
  p_worker_id text,
  p_task_types text[],
  p_queues text[],
  p_max_tasks integer,
  p_lease_ms integer
)
RETURNS SETOF task_queue
LANGUAGE sql VOLATILE AS $$
  SELECT * FROM skipq_claim(p_worker_id, p_task_types, p_queues, p_max_tasks, p_lease_ms, NULL::timestamptz)
$$;

-- start: claimed -> processing, by its holder, when the handler begins. It
-- changes only the status: started_at keeps the claim time the timeout counts from.
--
-- The plan settings of every fenced move, for the reasons measured on
-- skipq_complete (init migration): the ids of the batch drive, each row is
-- found through the primary key, and the plan is always the generic one.
-- The inputs are sorted by id (COLLATE "C", the key's own order) so every
-- multi-row move locks its rows in one global order.
CREATE FUNCTION skipq_start(p_worker_id text, p_ids text[], p_attempts integer[], p_now timestamptz DEFAULT NULL)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_moved text[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET status = 'processing',
        updated_at = v_now
    FROM (
      SELECT u.id, u.attempt
      FROM unnest(p_ids, p_attempts) AS u(id, attempt)
      ORDER BY u.id COLLATE "C"
    ) AS j
    WHERE t.id = j.id
      AND t.attempt = j.attempt
      AND t.worker_id = p_worker_id
      AND t.status = 'claimed'
    RETURNING t.id
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  RETURN QUERY
  SELECT m.id, true, 'processing'::text, NULL::integer, p_worker_id, NULL::text, NULL::text, NULL::timestamptz, NULL::integer, NULL::timestamptz
  FROM unnest(v_moved) AS m(id);
  IF cardinality(v_moved) < cardinality(p_ids) THEN
    RETURN QUERY SELECT * FROM skipq_unmoved(p_ids, v_moved);
  END IF;
END
$$;

-- heartbeat: a held job stays held; its lease is extended, never past its
-- deadline (claim + timeout_ms), and its progress stored. Past the deadline
-- the heartbeat does not move the job: its attempt is over, the rescuer fails
-- it with TIMEOUT once the lease runs out. p_progress entries are JSON text
-- (NULL keeps the stored progress).
CREATE FUNCTION skipq_heartbeat(
  p_worker_id text,
  p_ids text[],
  p_attempts integer[],
  p_progress text[],
  p_lease_ms integer,
  p_now timestamptz DEFAULT NULL
)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_moved text[];
  v_leases timestamptz[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET lease_expires_at = least(v_now + p_lease_ms * interval '1 millisecond', skipq_deadline(t.started_at, t.timeout_ms)),
        progress = coalesce(j.progress::jsonb, t.progress),
        updated_at = v_now
    FROM (
      SELECT u.id, u.attempt, u.progress
      FROM unnest(p_ids, p_attempts, p_progress) AS u(id, attempt, progress)
      ORDER BY u.id COLLATE "C"
    ) AS j
    WHERE t.id = j.id
      AND t.attempt = j.attempt
      AND t.worker_id = p_worker_id
      AND t.status IN ('claimed', 'processing')
      AND coalesce(skipq_deadline(t.started_at, t.timeout_ms) > v_now, true)
    RETURNING t.id, t.lease_expires_at
  )
  SELECT coalesce(array_agg(moved.id), '{}'), array_agg(moved.lease_expires_at) INTO v_moved, v_leases FROM moved;
  RETURN QUERY
  SELECT m.id, true, NULL::text, NULL::integer, p_worker_id, NULL::text, NULL::text, NULL::timestamptz, NULL::integer, m.lease
  FROM unnest(v_moved, v_leases) AS m(id, lease);
  IF cardinality(v_moved) < cardinality(p_ids) THEN
    RETURN QUERY SELECT * FROM skipq_unmoved(p_ids, v_moved);
  END IF;
END
$$;

-- complete: claimed or processing -> completed, with its result (JSON text).
-- Fenced by worker and attempt when p_worker_id is given (the server: ended_by
-- 'complete'); unfenced when it is NULL (complete_task, which completes the
-- job for whoever holds it: ended_by 'complete_task', so that holder's own
-- complete learns its result was not the one stored). A job may complete from
-- claimed: fast handlers never pay a separate start.
--
-- Why the plan settings: with statistics taken before the batch was claimed
-- the planner believes no row is held, scans the table and loops over the
-- batch for each row (measured: 41 ms for 250 completions on a 10,000-row
-- table, against 2 ms through the primary key). With sequential and bitmap
-- scans off, the ids of the batch drive and each row is found through the
-- primary key. The plan is always the generic one: a custom plan (PL/pgSQL's
-- first five calls in each session) knows the batch is 500 ids and, believing
-- the table holds one matching row, walks the whole primary key for each of
-- them instead (129 ms for 500 after an ANALYZE, against 4 ms).
DROP FUNCTION skipq_complete(text, text[], integer[], text[]);
CREATE FUNCTION skipq_complete(
  p_worker_id text,
  p_ids text[],
  p_attempts integer[],
  p_results text[],
  p_now timestamptz DEFAULT NULL
)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_by text := CASE WHEN p_worker_id IS NULL THEN 'complete_task' ELSE 'complete' END;
  v_moved text[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET status = 'completed',
        result = j.result::jsonb,
        completed_at = v_now,
        lease_expires_at = NULL,
        ended_by = v_by,
        updated_at = v_now
    FROM (
      SELECT u.id, u.attempt, u.result
      FROM unnest(p_ids, p_attempts, p_results) AS u(id, attempt, result)
      ORDER BY u.id COLLATE "C"
    ) AS j
    WHERE t.id = j.id
      AND (p_worker_id IS NULL OR (t.worker_id = p_worker_id AND t.attempt = j.attempt))
      AND t.status IN ('claimed', 'processing')
    RETURNING t.id
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  RETURN QUERY
  SELECT m.id, true, 'completed'::text, NULL::integer, p_worker_id, v_by, NULL::text, NULL::timestamptz, NULL::integer, NULL::timestamptz
  FROM unnest(v_moved) AS m(id);
  IF cardinality(v_moved) < cardinality(p_ids) THEN
    RETURN QUERY SELECT * FROM skipq_unmoved(p_ids, v_moved);
  END IF;
END
$$;

-- fail: claimed or processing -> pending after the backoff when retrying and
-- retries are left, else failed. The one place the retry-or-fail rule lives:
-- the server's worker.fail and worker.failMany (fenced by p_worker_id and the
-- attempts, ended_by 'fail'), the SQL fail_task (unfenced, 'fail_task') and
-- the rescuer (fenced by attempt, 'rescue') all come here.
--   p_errors / p_codes: error_message and error_code per job.
--   p_retry: NULL entries mean true (retry while retries are left).
--   p_delay_ms: a delay chosen by the caller; NULL entries use the backoff of
--     the job's type from p_policies ({"<task_type>": BackoffPolicy}), else
--     the established linear 60 s.
-- The backoff is computed from the locked row's own retry_count, so there is
-- no read before the write.
CREATE FUNCTION skipq_fail(
  p_worker_id text,
  p_ids text[],
  p_attempts integer[],
  p_errors text[],
  p_codes text[],
  p_retry boolean[],
  p_delay_ms float8[],
  p_policies jsonb DEFAULT NULL,
  p_now timestamptz DEFAULT NULL,
  p_ended_by text DEFAULT NULL
)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_by text := coalesce(p_ended_by, CASE WHEN p_worker_id IS NULL THEN 'fail_task' ELSE 'fail' END);
  v_moved text[];
BEGIN
  IF v_by NOT IN ('fail', 'fail_task', 'rescue') THEN
    RAISE EXCEPTION 'skipq_fail: p_ended_by must be fail, fail_task or rescue, not %', v_by USING ERRCODE = '22023';
  END IF;
  WITH target AS (
    -- Locks in id order; decides once per job whether it runs again.
    SELECT t.id,
           j.error,
           j.code,
           coalesce(j.retry, true) AND t.retry_count < t.max_retries AS again,
           coalesce(j.delay_ms * interval '1 millisecond', skipq_backoff(p_policies -> t.task_type, t.retry_count)) AS delay
    FROM task_queue AS t
    JOIN unnest(p_ids, p_attempts, p_errors, p_codes, p_retry, p_delay_ms) AS j(id, attempt, error, code, retry, delay_ms)
      ON j.id = t.id
    WHERE t.id = ANY (p_ids)
      AND (p_worker_id IS NULL OR t.worker_id = p_worker_id)
      AND (j.attempt IS NULL OR t.attempt = j.attempt)
      AND t.status IN ('claimed', 'processing')
    ORDER BY t.id
    FOR UPDATE OF t
  ),
  moved AS (
    UPDATE task_queue AS t
    SET status = CASE WHEN x.again THEN 'pending' ELSE 'failed' END,
        retry_count = CASE WHEN x.again THEN t.retry_count + 1 ELSE t.retry_count END,
        scheduled_for = CASE WHEN x.again THEN v_now + x.delay ELSE t.scheduled_for END,
        failed_at = CASE WHEN x.again THEN NULL ELSE v_now END,
        error_message = x.error,
        error_code = x.code,
        lease_expires_at = NULL,
        ended_by = v_by,
        updated_at = v_now
    FROM target AS x
    WHERE t.id = x.id
    RETURNING t.id
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  -- Not the hot path: the answer reads every input's row as it is now.
  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- release: claimed or processing -> pending, due now, by its holder (a worker
-- that stops). The attempt stays counted (it is the fencing token), but no
-- retry is used: the job did not fail.
CREATE FUNCTION skipq_release(p_worker_id text, p_ids text[], p_attempts integer[], p_now timestamptz DEFAULT NULL)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_moved text[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET status = 'pending',
        scheduled_for = v_now,
        lease_expires_at = NULL,
        ended_by = 'release',
        updated_at = v_now
    FROM (
      SELECT u.id, u.attempt
      FROM unnest(p_ids, p_attempts) AS u(id, attempt)
      ORDER BY u.id COLLATE "C"
    ) AS j
    WHERE t.id = j.id
      AND t.attempt = j.attempt
      AND t.worker_id = p_worker_id
      AND t.status IN ('claimed', 'processing')
    RETURNING t.id
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- rescue: held jobs whose lease ran out (the worker died, froze, lost its
-- connection, or ran past the job's timeout) fail through skipq_fail, due at
-- once: the same retry accounting as a failure, retried while retries are
-- left. A lease that ran out at the deadline (leases are capped there) is a
-- TIMEOUT; any other is LEASE_EXPIRED. SKIP LOCKED: a completion holding a
-- row's lock wins, and the rescuer never waits. Answers the jobs it moved.
CREATE FUNCTION skipq_rescue(p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_ids text[];
  v_attempts integer[];
  v_errors text[];
  v_codes text[];
BEGIN
  SELECT array_agg(e.id ORDER BY e.id), array_agg(e.attempt ORDER BY e.id), array_agg(e.error ORDER BY e.id), array_agg(e.code ORDER BY e.id)
  INTO v_ids, v_attempts, v_errors, v_codes
  FROM (
    SELECT t.id,
           t.attempt,
           CASE WHEN t.lease_expires_at >= skipq_deadline(t.started_at, t.timeout_ms) THEN 'TIMEOUT' ELSE 'LEASE_EXPIRED' END AS code,
           CASE WHEN t.lease_expires_at >= skipq_deadline(t.started_at, t.timeout_ms)
             THEN format('timed out: attempt %s ran past its timeout of %s ms (worker %s)', t.attempt, t.timeout_ms, coalesce(t.worker_id, '?'))
             ELSE format('lease expired: worker %s stopped heartbeating during attempt %s', coalesce(t.worker_id, '?'), t.attempt)
           END AS error
    FROM task_queue AS t
    WHERE t.lease_expires_at < v_now
      AND t.status IN ('claimed', 'processing')
    ORDER BY t.lease_expires_at
    LIMIT greatest(p_limit, 0)
    FOR UPDATE SKIP LOCKED
  ) AS e;
  -- With nothing expired the fail still runs (on no rows): every sweep is the
  -- same statements, whatever it finds.
  RETURN QUERY
  SELECT f.*
  FROM skipq_fail(
    NULL,
    coalesce(v_ids, '{}'),
    coalesce(v_attempts, '{}'),
    coalesce(v_errors, '{}'),
    coalesce(v_codes, '{}'),
    NULL,
    array_fill(0::float8, ARRAY[coalesce(cardinality(v_ids), 0)]),
    NULL,
    v_now,
    'rescue'
  ) AS f
  WHERE f.moved;
END
$$;

-- cancel: pending, claimed or processing -> cancelled. A held job keeps its
-- worker_id and attempt, so its holder's next heartbeat or completion learns
-- of the cancel (and its handler's AbortSignal fires).
CREATE FUNCTION skipq_cancel(p_ids text[], p_now timestamptz DEFAULT NULL)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_moved text[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET status = 'cancelled',
        cancel_requested_at = v_now,
        lease_expires_at = NULL,
        ended_by = 'cancel',
        updated_at = v_now
    FROM (SELECT u.id FROM unnest(p_ids) AS u(id) ORDER BY u.id COLLATE "C") AS j
    WHERE t.id = j.id
      AND t.status IN ('pending', 'claimed', 'processing')
    RETURNING t.id
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- retry: failed or cancelled -> pending, due now, with a fresh retry budget.
-- The attempt counter keeps counting, so fences of earlier holders stay
-- stale; ended_by keeps saying how the last attempt ended.
CREATE FUNCTION skipq_retry(p_ids text[], p_now timestamptz DEFAULT NULL)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_moved text[];
BEGIN
  WITH moved AS (
    UPDATE task_queue AS t
    SET status = 'pending',
        scheduled_for = v_now,
        retry_count = 0,
        failed_at = NULL,
        cancel_requested_at = NULL,
        lease_expires_at = NULL,
        updated_at = v_now
    FROM (SELECT u.id FROM unnest(p_ids) AS u(id) ORDER BY u.id COLLATE "C") AS j
    WHERE t.id = j.id
      AND t.status IN ('failed', 'cancelled')
    RETURNING t.id
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- The established SQL API, now through the move functions, same signatures
-- and answers. Both are unfenced: they act for whoever holds the job.

-- complete_task: a held job (claimed or processing) becomes completed.
-- Returns false when the job is not held (unknown, finished or cancelled).
CREATE OR REPLACE FUNCTION complete_task(p_task_id text, p_result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(bool_or(c.moved), false)
  FROM skipq_complete(NULL, ARRAY[p_task_id], NULL, ARRAY[p_result::text]) AS c
$$;

-- fail_task: with retry and retries left, back to pending after the
-- established linear backoff of 60 s x (retry_count + 1); otherwise failed.
-- Returns true when the job will run again. It has no error code (error_code
-- NULL). A NULL p_retry fails for good, as it always did.
CREATE OR REPLACE FUNCTION fail_task(p_task_id text, p_error_message text, p_retry boolean DEFAULT true)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(bool_or(f.moved AND f.status = 'pending'), false)
  FROM skipq_fail(NULL, ARRAY[p_task_id], NULL, ARRAY[p_error_message], NULL, ARRAY[coalesce(p_retry, false)], NULL) AS f
$$;
