-- Finishing moves made through the SQL API wake the claims waiting for the
-- room they free. A claim that finds a limited queue full (concurrency or
-- keyConcurrency, of the queue or of a job type in it) long-polls; the
-- servers wake their own waiting claims and NOTIFY the others after the
-- moves they make (server/leases.ts wakeFreed), but a job finished by
-- complete_task / fail_task / complete_job / fail_job from Go or psql woke
-- nobody: the claims waited for their poll (SKIPQ_POLL_INTERVAL_MS, 1 s).
-- Now these functions send one NOTIFY skipq_jobs for the job's queue, in the
-- caller's transaction (delivered at its commit), when the job moved and its
-- queue is limited. Unlimited queues send nothing: a finished job frees no
-- room there, and a NOTIFY in every commit serialises commits (DESIGN.md).
-- The server's own moves call skipq_complete / skipq_fail directly and are
-- unchanged.

-- skipq_notify_freed: NOTIFY skipq_jobs with the queue's name when a finished
-- held job of it can unblock a waiting claim (the same test as the server's
-- queueLimitedNames). The callers read the queue from the job's row: a move's
-- answer carries it only where the server's statements need it.
CREATE FUNCTION skipq_notify_freed(p_queue text)
RETURNS void
LANGUAGE sql VOLATILE AS $$
  SELECT pg_notify('skipq_jobs', p_queue)
  WHERE EXISTS (
          SELECT 1
          FROM queues AS q
          WHERE q.name = p_queue
            AND (q.concurrency IS NOT NULL OR q.key_concurrency IS NOT NULL)
        )
     OR EXISTS (
          SELECT 1
          FROM job_types AS jt
          WHERE jt.queue = p_queue
            AND jt.key_concurrency IS NOT NULL
            AND jt.removed_at IS NULL
        )
$$;

-- complete_task: as in 20261201000200_lifecycle (same signature and answer),
-- plus the wake-up.
CREATE OR REPLACE FUNCTION complete_task(p_task_id text, p_result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_row skipq_move_result;
BEGIN
  SELECT * INTO v_row FROM skipq_complete(NULL, ARRAY[p_task_id], NULL, ARRAY[p_result::text]);
  IF v_row.moved THEN
    PERFORM skipq_notify_freed(t.queue) FROM task_queue AS t WHERE t.id = p_task_id;
  END IF;
  RETURN coalesce(v_row.moved, false);
END
$$;

-- fail_task: as in 20261201000200_lifecycle (same signature and answer),
-- plus the wake-up.
CREATE OR REPLACE FUNCTION fail_task(p_task_id text, p_error_message text, p_retry boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_row skipq_move_result;
BEGIN
  SELECT * INTO v_row FROM skipq_fail(NULL, ARRAY[p_task_id], NULL, ARRAY[p_error_message], NULL, ARRAY[coalesce(p_retry, false)], NULL);
  IF v_row.moved THEN
    PERFORM skipq_notify_freed(t.queue) FROM task_queue AS t WHERE t.id = p_task_id;
  END IF;
  RETURN coalesce(v_row.moved AND v_row.status = 'pending', false);
END
$$;

-- complete_job and fail_job: as in 20261201000500_registry_sql, plus the wake-up.
CREATE OR REPLACE FUNCTION complete_job(p_id text, p_attempt integer, p_worker_id text, p_result jsonb DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_row skipq_move_result;
BEGIN
  PERFORM skipq_check_holder('complete_job', p_id, p_attempt, p_worker_id);
  IF p_result IS NOT NULL THEN
    PERFORM skipq_check_json('complete_job', 'result', p_result);
  END IF;
  SELECT * INTO v_row FROM skipq_complete(p_worker_id, ARRAY[p_id], ARRAY[p_attempt], ARRAY[p_result::text]);
  IF v_row.moved THEN
    PERFORM skipq_notify_freed(t.queue) FROM task_queue AS t WHERE t.id = p_id;
  END IF;
  RETURN CASE skipq_holder_verdict('complete', v_row, p_worker_id, p_attempt)
    WHEN 'move' THEN 'completed'
    WHEN 'repeat' THEN 'already_completed'
    WHEN 'cancelled' THEN 'cancelled'
    WHEN 'not_found' THEN 'not_found'
    ELSE 'lease_lost'
  END;
END
$$;

CREATE OR REPLACE FUNCTION fail_job(p_id text, p_attempt integer, p_worker_id text, p_error text, p_retry boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_row skipq_move_result;
  v_policies jsonb;
BEGIN
  PERFORM skipq_check_holder('fail_job', p_id, p_attempt, p_worker_id);
  IF p_error IS NULL THEN
    RAISE EXCEPTION 'fail_job: error is required (why the attempt failed)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The type's backoff in the form skipq_fail reads ({"<type>": policy}); the type never changes.
  SELECT jsonb_build_object(jt.name, jt.backoff) INTO v_policies
  FROM task_queue AS t
  JOIN job_types AS jt ON jt.name = t.task_type
  WHERE t.id = p_id
    AND jt.backoff IS NOT NULL;
  SELECT * INTO v_row
  FROM skipq_fail(p_worker_id, ARRAY[p_id], ARRAY[p_attempt], ARRAY[left(p_error, 16384)], ARRAY['HANDLER_ERROR'],
                  ARRAY[coalesce(p_retry, true)], ARRAY[NULL::float8], v_policies);
  IF v_row.moved THEN
    PERFORM skipq_notify_freed(t.queue) FROM task_queue AS t WHERE t.id = p_id;
  END IF;
  RETURN CASE skipq_holder_verdict('fail', v_row, p_worker_id, p_attempt)
    WHEN 'move' THEN CASE v_row.status WHEN 'pending' THEN 'retry_scheduled' ELSE 'failed' END
    WHEN 'repeat' THEN 'already_failed'
    WHEN 'cancelled' THEN 'cancelled'
    WHEN 'not_found' THEN 'not_found'
    ELSE 'lease_lost'
  END;
END
$$;
