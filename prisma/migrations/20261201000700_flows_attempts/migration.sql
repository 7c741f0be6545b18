-- Two things that happen around a job: every attempt is kept (job_attempts),
-- and a job can wait for others (flows: a parent and its children, created
-- together by jobs.enqueueFlow). Both are written by the move functions
-- themselves, in the statement that makes the move: the finishing moves of the
-- lifecycle migration (complete, fail, release, cancel; the rescue and the SQL
-- API's complete_task / fail_task go through them) are replaced here with the
-- same signatures, the same answers and the same lock order (every batch in
-- id order, test/deadlock.test.ts), plus the attempt row and the flow's
-- bookkeeping. skipq_claim is not touched.

-- ---------------------------------------------------------------------------
-- Attempt history
-- ---------------------------------------------------------------------------

-- One row per ended attempt: the move that ended it wrote it, in the same
-- statement. An attempt that is still running has no row (the job's own
-- started_at / worker_id / attempt describe it).
--   outcome: what became of the job (shared/lifecycle.ts ATTEMPT_OUTCOMES):
--     completed, retry_scheduled (failed, runs again), failed (for good),
--     released (handed back unfinished, no retry used), cancelled (while held).
--   ended_by: who ended it (shared/lifecycle.ts ENDINGS), as task_queue.ended_by.
--   error_message: the first 2,000 characters (LIMITS.attemptErrorChars); the
--     job's own error_message keeps the latest error whole (16,384).
-- Keyed (job_id, attempt): attempt goes up at every claim, and only a held
-- job's attempt can end, once, so the key is unique by construction.
--
-- No foreign key to task_queue, on purpose. A FK's check on insert is a
-- per-row trigger running a query, on the completion path (measured below);
-- and TRUNCATE task_queue, which tests and scripts use, would be refused.
-- Instead attempts go with their job through a statement trigger on
-- task_queue (below): one DELETE of attempts per DELETE statement on jobs, and
-- TRUNCATE empties both.
CREATE TABLE "job_attempts" (
  "job_id" TEXT COLLATE "C" NOT NULL,
  "attempt" INTEGER NOT NULL,
  "worker_id" TEXT,
  "started_at" TIMESTAMPTZ(6),
  "finished_at" TIMESTAMPTZ(6) NOT NULL,
  "outcome" TEXT NOT NULL,
  "ended_by" TEXT NOT NULL,
  "error_code" TEXT,
  "error_message" TEXT,
  CONSTRAINT "job_attempts_pkey" PRIMARY KEY ("job_id", "attempt")
);
ALTER TABLE "job_attempts" ADD CONSTRAINT "job_attempts_outcome_check"
  CHECK ("outcome" IN ('completed', 'retry_scheduled', 'failed', 'released', 'cancelled'));
ALTER TABLE "job_attempts" ADD CONSTRAINT "job_attempts_ended_by_check"
  CHECK ("ended_by" IN ('complete', 'fail', 'release', 'rescue', 'cancel', 'complete_task', 'fail_task'));
ALTER TABLE "job_attempts" ADD CONSTRAINT "job_attempts_error_length"
  CHECK (length("error_message") <= 2000);

-- Attempts are deleted with their job (retention, cleanup_old_tasks, any DELETE).
CREATE FUNCTION skipq_attempts_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    -- Already empty when the same statement truncated it too (TRUNCATE task_queue, job_attempts;
    -- or CASCADE), and truncating it again in its own statement is refused.
    IF EXISTS (SELECT 1 FROM job_attempts) THEN
      TRUNCATE job_attempts;
    END IF;
  ELSE
    DELETE FROM job_attempts AS a USING gone AS g WHERE a.job_id = g.id;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "task_queue_attempts_gone"
AFTER DELETE ON "task_queue"
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT
EXECUTE FUNCTION skipq_attempts_gone();

CREATE TRIGGER "task_queue_attempts_truncated"
AFTER TRUNCATE ON "task_queue"
FOR EACH STATEMENT
EXECUTE FUNCTION skipq_attempts_gone();

-- ---------------------------------------------------------------------------
-- Flows
-- ---------------------------------------------------------------------------

-- parent_id: the job this one is a child of (NULL outside a flow and for a
-- flow's root). A parent's children are found through task_queue_parent_idx.
-- There is no foreign key for the same reasons as above; a child whose parent
-- was deleted (retention) simply has nobody left to tell.
-- children_left: a parent's children whose first finish is not counted yet
-- (NULL for a job without children).
-- on_child_failure: a parent's rule when a child ends failed or cancelled:
-- 'fail' (the parent fails at once, no retry) or 'continue' (it still runs
-- once every child is finished).
-- awaited: a child whose parent still waits for its first finish. Cleared by
-- the move that finishes it, so each child counts once: a child retried after
-- it finished does not make its parent wait again.
ALTER TABLE "task_queue" ADD COLUMN "parent_id" TEXT COLLATE "C";
ALTER TABLE "task_queue" ADD COLUMN "children_left" INTEGER;
ALTER TABLE "task_queue" ADD COLUMN "on_child_failure" TEXT;
ALTER TABLE "task_queue" ADD COLUMN "awaited" BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_on_child_failure_check"
  CHECK (("children_left" IS NULL) = ("on_child_failure" IS NULL) AND ("on_child_failure" IS NULL OR "on_child_failure" IN ('fail', 'continue')));
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_awaited_check"
  CHECK (NOT "awaited" OR "parent_id" IS NOT NULL);

CREATE INDEX "task_queue_parent_idx" ON "task_queue" ("parent_id", "id")
  WHERE "parent_id" IS NOT NULL;

-- When a parent that waits for its children is due: never, by data. The claim
-- (unchanged) takes only pending jobs whose scheduled_for has come; a waiting
-- parent is pending with this scheduled_for, so no claim can take it, and the
-- finishing move of its last child sets it due at once.
--
-- Why a far date and not 'infinity': node-postgres reads 'infinity' back as
-- the number Infinity, not a Date, and Prisma cannot read it at all, so every
-- job view (jobs.get, jobs.list, the dashboard) would break on waiting
-- parents. No job can be scheduled this late otherwise (LIMITS.maxDelayMs is
-- ten years). Cost: a waiting parent sits in task_queue_claim_idx like a
-- delayed job does, one index entry a claim may step over.
CREATE FUNCTION skipq_flow_hold() RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT timestamptz '9999-12-31 00:00:00+00'
$$;

-- Ids a skipq_done NOTIFY carries at once (a payload must stay under 8000 bytes).
CREATE FUNCTION skipq_notify_done(p_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  FOR i IN 0 .. ceil(coalesce(cardinality(p_ids), 0) / 200.0)::integer - 1 LOOP
    PERFORM pg_notify('skipq_done', array_to_string(p_ids[i * 200 + 1 : i * 200 + 200], ','));
  END LOOP;
END
$$;

-- settle: the parents of jobs that just finished (completed, failed for good,
-- cancelled), called by the finishing moves in their own transaction with the
-- ids they finished that have a parent. Each child counts once (awaited).
-- For each parent still waiting (pending at skipq_flow_hold()):
--   * a child that did not complete, under on_child_failure 'fail': the parent
--     is failed at once (error_code CHILD_FAILED, the message names the
--     child), no retry; its own parent is settled in turn (next level);
--   * otherwise children_left goes down, and at 0 the parent is due now and
--     its queue is NOTIFYed, so a waiting claim takes it.
-- A parent that is no longer waiting (failed by an earlier child, cancelled,
-- retried) is neither locked nor changed.
--
-- Locks: the children are the caller's own rows (already locked); the parents
-- are locked after them, in id order, one level at a time upwards. Every
-- finishing move takes its batch first and parents after, and a waiting
-- parent is never part of a batch (it is not held), so two moves cannot wait
-- for each other's parents in a circle; skipq_cancel takes a flow's held and
-- pending jobs before its waiting parents for the same reason.
CREATE FUNCTION skipq_flow_settle(p_ids text[], p_now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_ids text[] := p_ids;
  v_failed text[];
  v_queues text[];
BEGIN
  -- A flow has at most 5 levels (LIMITS.flowDepth): a parent failed at one
  -- level settles the next, so this loops at most that often.
  FOR v_level IN 1 .. 8 LOOP
    EXIT WHEN v_ids IS NULL OR cardinality(v_ids) = 0;
    WITH counted AS (
      UPDATE task_queue AS c
      SET awaited = false
      FROM (SELECT u.id FROM unnest(v_ids) AS u(id) ORDER BY u.id COLLATE "C") AS j
      WHERE c.id = j.id
        AND c.awaited
      RETURNING c.id, c.parent_id, c.task_type, c.status, c.error_message
    ),
    per_parent AS (
      SELECT k.parent_id,
             count(*)::integer AS n,
             min(k.id) FILTER (WHERE k.status <> 'completed') AS bad_id
      FROM counted AS k
      GROUP BY k.parent_id
    ),
    news AS (
      SELECT pp.parent_id,
             pp.n,
             pp.bad_id,
             format('child %s (%s) %s', b.id, b.task_type,
                    CASE WHEN b.status = 'cancelled' THEN 'was cancelled'
                         ELSE 'failed: ' || coalesce(left(b.error_message, 1000), 'no error message') END) AS why
      FROM per_parent AS pp
      LEFT JOIN counted AS b ON b.id = pp.bad_id
      ORDER BY pp.parent_id COLLATE "C"
    ),
    settled AS (
      UPDATE task_queue AS p
      SET children_left = p.children_left - x.n,
          status = CASE WHEN x.bad_id IS NOT NULL AND p.on_child_failure = 'fail' THEN 'failed' ELSE 'pending' END,
          scheduled_for = CASE
            WHEN x.bad_id IS NOT NULL AND p.on_child_failure = 'fail' THEN p.scheduled_for
            WHEN p.children_left - x.n <= 0 THEN p_now
            ELSE p.scheduled_for
          END,
          failed_at = CASE WHEN x.bad_id IS NOT NULL AND p.on_child_failure = 'fail' THEN p_now ELSE p.failed_at END,
          error_message = CASE WHEN x.bad_id IS NOT NULL AND p.on_child_failure = 'fail' THEN x.why ELSE p.error_message END,
          error_code = CASE WHEN x.bad_id IS NOT NULL AND p.on_child_failure = 'fail' THEN 'CHILD_FAILED' ELSE p.error_code END,
          updated_at = p_now
      FROM news AS x
      WHERE p.id = x.parent_id
        AND p.status = 'pending'
        AND p.scheduled_for = skipq_flow_hold()
      RETURNING p.id, p.status, p.queue, p.children_left
    )
    SELECT array_agg(s.id ORDER BY s.id) FILTER (WHERE s.status = 'failed'),
           array_agg(DISTINCT s.queue) FILTER (WHERE s.status = 'pending' AND s.children_left <= 0)
    INTO v_failed, v_queues
    FROM settled AS s;
    -- Released parents wake the claims of their queue, on every server (sent at commit).
    PERFORM pg_notify('skipq_jobs', q.queue) FROM unnest(v_queues) AS q(queue);
    -- Waiters (jobs.waitFor) of a parent failed here learn at once, wherever they wait.
    IF v_failed IS NOT NULL THEN
      PERFORM skipq_notify_done(v_failed);
    END IF;
    v_ids := v_failed;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- The finishing moves, from 20261201000200_lifecycle, with the attempt row and
-- the flow's settle added. Everything else is as it was.
-- ---------------------------------------------------------------------------

-- complete: claimed or processing -> completed (see the lifecycle migration for
-- the fence and the plan settings). Adds: the attempt's row ('completed'), and
-- for children, their parents' settle (a non-flow batch pays one FILTER).
--
-- What the attempt row costs on the hot path, measured on this machine in one
-- sitting (bench/attemptCost.ts: PostgreSQL 15, private databases, 20,000 jobs
-- claimed and completed 50 at a time through skipq_claim + skipq_complete on
-- one connection, 11 rounds alternating before / after / after + FK, medians):
--   synchronous_commit off: backend CPU 50.5 -> 54.5 ms per 1,000 jobs (+8%,
--     about 4 us a job); one skipq_complete of 50: 1.27 -> 1.45 ms;
--   synchronous_commit on:  backend CPU 58.5 -> 64.0 ms per 1,000 jobs (+9%);
--     one skipq_complete of 50: 1.64 -> 2.03 ms; loop 13,500 -> 11,900 jobs/s;
--   213 bytes of job_attempts (heap and key) per attempt;
--   the same with a foreign key to task_queue: +19-23% CPU, 1.75 / 2.28 ms.
-- Wall times swung 2-4x on this 2-core machine while other work ran (the
-- CPU time of the backend is the steadier figure). Not free, not large: the
-- database's share of an HTTP completion is a fraction of its cost. If it
-- ever matters, the cheap cut is to write no row for a first attempt that
-- completes (the job row itself holds that attempt's worker and times) and
-- let jobs.attempts add it from the job; rows for retries, failures, rescues
-- and cancels, the ones people read, would stay.
CREATE OR REPLACE FUNCTION skipq_complete(
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
  v_children text[];
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
    RETURNING t.id, t.attempt, t.worker_id, t.started_at, t.parent_id
  ),
  recorded AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, ended_by)
    SELECT m.id, m.attempt, m.worker_id, m.started_at, v_now, 'completed', v_by
    FROM moved AS m
  )
  SELECT coalesce(array_agg(moved.id), '{}'), array_agg(moved.id) FILTER (WHERE moved.parent_id IS NOT NULL)
  INTO v_moved, v_children
  FROM moved;
  IF v_children IS NOT NULL THEN
    PERFORM skipq_flow_settle(v_children, v_now);
  END IF;
  RETURN QUERY
  SELECT m.id, true, 'completed'::text, NULL::integer, p_worker_id, v_by, NULL::text, NULL::timestamptz, NULL::integer, NULL::timestamptz
  FROM unnest(v_moved) AS m(id);
  IF cardinality(v_moved) < cardinality(p_ids) THEN
    RETURN QUERY SELECT * FROM skipq_unmoved(p_ids, v_moved);
  END IF;
END
$$;

-- fail: claimed or processing -> pending after the backoff, or failed (see the
-- lifecycle migration; the rescue and fail_task come here too). Adds: the
-- attempt's row ('retry_scheduled' or 'failed', with the error code and the
-- first 2,000 characters of the error), and for children failed for good,
-- their parents' settle.
CREATE OR REPLACE FUNCTION skipq_fail(
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
  v_children text[];
BEGIN
  IF v_by NOT IN ('fail', 'fail_task', 'rescue') THEN
    RAISE EXCEPTION 'skipq_fail: p_ended_by must be fail, fail_task or rescue, not %', v_by USING ERRCODE = '22023';
  END IF;
  WITH target AS (
    -- Locks in id order; decides once per job whether it runs again.
    SELECT t.id,
           t.attempt,
           t.worker_id,
           t.started_at,
           t.parent_id,
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
    RETURNING t.id, t.status, t.parent_id
  ),
  recorded AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, ended_by, error_code, error_message)
    SELECT x.id, x.attempt, x.worker_id, x.started_at, v_now,
           CASE WHEN x.again THEN 'retry_scheduled' ELSE 'failed' END,
           v_by, x.code, left(x.error, 2000)
    FROM target AS x
    JOIN moved AS m ON m.id = x.id
  )
  SELECT coalesce(array_agg(moved.id), '{}'), array_agg(moved.id) FILTER (WHERE moved.status = 'failed' AND moved.parent_id IS NOT NULL)
  INTO v_moved, v_children
  FROM moved;
  IF v_children IS NOT NULL THEN
    PERFORM skipq_flow_settle(v_children, v_now);
  END IF;
  -- Not the hot path: the answer reads every input's row as it is now.
  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- release: claimed or processing -> pending, due now, by its holder (see the
-- lifecycle migration). Adds: the attempt's row ('released'). A released job
-- is not finished, so no parent hears of it.
CREATE OR REPLACE FUNCTION skipq_release(p_worker_id text, p_ids text[], p_attempts integer[], p_now timestamptz DEFAULT NULL)
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
    RETURNING t.id, t.attempt, t.worker_id, t.started_at
  ),
  recorded AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, ended_by)
    SELECT m.id, m.attempt, m.worker_id, m.started_at, v_now, 'released', 'release'
    FROM moved AS m
  )
  SELECT coalesce(array_agg(moved.id), '{}') INTO v_moved FROM moved;
  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- cancel: pending, claimed or processing -> cancelled (see the lifecycle
-- migration). Adds:
--   * a cancelled parent takes its live descendants with it (children,
--     grandchildren...), found through task_queue_parent_idx (a plain job costs
--     one probe of that index);
--   * a cancelled held job's attempt row ('cancelled');
--   * the settle of the parents outside the cancelled tree (a cancelled child
--     of a waiting parent counts as finished; under on_child_failure 'fail'
--     it fails the parent);
--   * a skipq_done NOTIFY for the descendants, whose waiters the server that
--     made the call does not know of.
-- Lock order: first every job of the tree that is not a waiting parent (held
-- and pending jobs), in id order, as every batch of a worker is locked; then
-- the waiting parents, deepest first; then the parents above the tree
-- (settle). A worker finishing a child locks the child, then its parent: the
-- cancel waits for that child before it holds any waiting parent, so the two
-- never wait for each other in a circle.
-- The answer is one row per input id, as before; the descendants are not in it.
CREATE OR REPLACE FUNCTION skipq_cancel(p_ids text[], p_now timestamptz DEFAULT NULL)
RETURNS SETOF skipq_move_result
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_plain text[];
  v_waiting text[];
  v_pass text[];
  v_step text[];
  v_moved text[] := '{}';
  v_children text[] := '{}';
  v_kids text[];
BEGIN
  -- The tree, read without locks: the inputs, and the live descendants of the
  -- live parents among them. Bounded: a flow has at most 1,000 jobs, 5 levels.
  WITH RECURSIVE tree AS (
    SELECT t.id,
           t.children_left IS NOT NULL AND t.status IN ('pending', 'claimed', 'processing') AS descend,
           t.status = 'pending' AND t.scheduled_for = skipq_flow_hold() AS waiting,
           0 AS depth
    FROM task_queue AS t
    WHERE t.id = ANY (p_ids)
    UNION ALL
    SELECT c.id,
           c.children_left IS NOT NULL,
           c.status = 'pending' AND c.scheduled_for = skipq_flow_hold(),
           tree.depth + 1
    FROM tree
    JOIN task_queue AS c ON c.parent_id = tree.id
    WHERE tree.descend
      AND tree.depth < 8
      AND c.status IN ('pending', 'claimed', 'processing')
  )
  -- An id named twice (twice in the input, or as an input and a descendant) is one job.
  SELECT array_agg(d.id ORDER BY d.id COLLATE "C") FILTER (WHERE NOT d.waiting),
         array_agg(d.id ORDER BY d.depth DESC, d.id COLLATE "C") FILTER (WHERE d.waiting)
  INTO v_plain, v_waiting
  FROM (SELECT DISTINCT ON (tree.id) tree.id, tree.waiting, tree.depth FROM tree ORDER BY tree.id, tree.depth DESC) AS d;

  -- Two passes of the same move: the plain jobs in id order, then the waiting
  -- parents deepest first (one a cancel found waiting may have been released
  -- since, even claimed: it is cancelled all the same).
  FOR v_round IN 1 .. 2 LOOP
    v_pass := CASE WHEN v_round = 1 THEN v_plain ELSE v_waiting END;
    CONTINUE WHEN v_pass IS NULL;
    WITH target AS (
      SELECT t.id, t.status AS was, t.attempt, t.worker_id, t.started_at, t.parent_id
      FROM task_queue AS t
      JOIN unnest(v_pass) WITH ORDINALITY AS o(id, n) ON o.id = t.id
      WHERE t.status IN ('pending', 'claimed', 'processing')
      ORDER BY o.n
      FOR UPDATE OF t
    ),
    moved AS (
      UPDATE task_queue AS t
      SET status = 'cancelled',
          cancel_requested_at = v_now,
          lease_expires_at = NULL,
          ended_by = 'cancel',
          updated_at = v_now
      FROM target AS x
      WHERE t.id = x.id
      RETURNING t.id, t.parent_id
    ),
    recorded AS (
      INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, ended_by)
      SELECT x.id, x.attempt, x.worker_id, x.started_at, v_now, 'cancelled', 'cancel'
      FROM target AS x
      JOIN moved AS m ON m.id = x.id
      WHERE x.was IN ('claimed', 'processing')
    )
    SELECT coalesce(array_agg(moved.id), '{}'), coalesce(array_agg(moved.id) FILTER (WHERE moved.parent_id IS NOT NULL), '{}')
    INTO v_step, v_kids
    FROM moved;
    v_moved := v_moved || v_step;
    v_children := v_children || v_kids;
  END LOOP;

  IF cardinality(v_children) > 0 THEN
    -- The tree's own parents are cancelled by now, so only the parents above it are settled.
    PERFORM skipq_flow_settle(v_children, v_now);
    PERFORM skipq_notify_done(ARRAY(SELECT m.id FROM unnest(v_moved) AS m(id) WHERE NOT (m.id = ANY (p_ids))));
  END IF;

  RETURN QUERY
  SELECT t.id, t.id = ANY (v_moved), t.status, t.attempt, t.worker_id, t.ended_by, t.queue, t.scheduled_for, t.retry_count, t.lease_expires_at
  FROM task_queue AS t
  WHERE t.id = ANY (p_ids);
END
$$;

-- skipq_rescue, complete_task and fail_task call skipq_fail and skipq_complete
-- and need no change: they write attempts and settle parents through them.
