-- Enqueue integrity: uniqueKey scoped by queue, job ids chosen by the caller
-- (idempotent enqueue), and the SQL API checking its arguments with the same
-- limits as the HTTP API.

-- uniqueKey: one live job per (queue, task_type, unique_key). Scoped by queue
-- because API keys are: with (task_type, unique_key) alone, a key limited to
-- queue `a` that sent a key already held in queue `b` got that job back (id,
-- queue, status), and could squat keys so that enqueues into `b` were answered
-- with its own job and never created. The new key is wider, so every row valid
-- under the old index is valid under this one; both changes are in this
-- migration's one transaction.
CREATE UNIQUE INDEX "task_queue_queue_unique_key_idx" ON "task_queue" ("queue", "task_type", "unique_key")
  WHERE "unique_key" IS NOT NULL AND "status" IN ('pending', 'claimed', 'processing');
DROP INDEX "task_queue_unique_key_idx";

-- skipq_enqueue: the service's insert of a batch (the group commit of
-- jobs.enqueue, and jobs.enqueueMany), one statement and one commit, NOTIFY
-- once per distinct queue. Scheduling uses the database clock, so app servers
-- with skewed clocks agree.
--
-- Job ids are chosen by clients (so that a retried enqueue returns the job it
-- already made), which makes them input. A batch in which an id is already in
-- use fails as a whole with unique_violation on task_queue_pkey: nothing of it
-- is stored (enqueueMany is all or nothing) and no NOTIFY goes out. The server
-- then looks the ids up (server/enqueue.ts): a job of the same type and queue
-- is a repeat of the same enqueue and answers it; any other is JOB_ID_CONFLICT,
-- which says nothing about that job.
--  * A new row whose id exists: the primary key raises it, as for any INSERT.
--  * A row skipped because its uniqueKey is held by a live job of its queue and
--    type (ON CONFLICT DO NOTHING on that index) never reaches the primary key.
--    So that the id still decides first, a statement that starts after the
--    insert (and so also sees a row another transaction committed while the
--    insert waited for it) raises the same error when the id belongs to a job
--    of another type or queue. An id of a job of the same type and queue is
--    let through: the server answers it as a repeat. This runs only when
--    something was skipped; the common case is one round trip and no extra read.
-- Why the uniqueKey index is the only arbiter: with the primary key arbitrating
-- too (ON CONFLICT DO NOTHING without a target, which would skip taken ids
-- instead of raising) every row pays a speculative insertion on the primary
-- key. Measured on this machine inside one transaction (no commits), 500 jobs
-- a statement: 7.69 ms with both arbiters against 6.82 ms with this one (6.43 ms
-- for the previous plain INSERT, without the function); that statement is most
-- of what an enqueueMany of 500 costs the server.
--
-- The ids of one call are distinct: the server folds repeats before calling.
CREATE FUNCTION skipq_enqueue(
  p_ids text[],
  p_queues text[],
  p_task_types text[],
  p_payloads text[],
  p_priorities integer[],
  p_run_at timestamptz[],
  p_delay_ms bigint[],
  p_max_retries integer[],
  p_unique_keys text[],
  p_timeout_ms integer[]
)
RETURNS TABLE (id text, task_type text, queue text, status text, priority integer, scheduled_for timestamptz)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
  v_inserted integer;
  v_taken text;
BEGIN
  RETURN QUERY
  WITH inserted AS (
    INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms)
    SELECT i.id, i.queue, i.task_type, i.payload::jsonb, i.priority,
           coalesce(i.run_at, now() + coalesce(i.delay_ms, 0) * interval '1 millisecond'),
           i.max_retries, i.unique_key, i.timeout_ms
    FROM unnest(p_ids, p_queues, p_task_types, p_payloads, p_priorities, p_run_at, p_delay_ms, p_max_retries, p_unique_keys, p_timeout_ms)
      AS i(id, queue, task_type, payload, priority, run_at, delay_ms, max_retries, unique_key, timeout_ms)
    ON CONFLICT (queue, task_type, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'claimed', 'processing')
    DO NOTHING
    RETURNING t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for
  ),
  woken AS (
    SELECT count(pg_notify('skipq_jobs', q.queue)) AS n
    FROM (SELECT DISTINCT inserted.queue FROM inserted) AS q
  )
  SELECT inserted.id, inserted.task_type, inserted.queue, inserted.status, inserted.priority, inserted.scheduled_for
  FROM inserted, woken;
  GET DIAGNOSTICS v_inserted = ROW_COUNT;

  IF v_inserted < cardinality(p_ids) THEN
    -- The rows this call inserted match their own input, so any match here is another job.
    SELECT i.id INTO v_taken
    FROM unnest(p_ids, p_task_types, p_queues) AS i(id, task_type, queue)
    JOIN task_queue AS t ON t.id = i.id
    WHERE t.task_type <> i.task_type
       OR t.queue <> i.queue
    LIMIT 1;
    IF v_taken IS NOT NULL THEN
      RAISE EXCEPTION 'job id % is already used by another job', v_taken
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'task_queue_pkey';
    END IF;
  END IF;
END
$$;

-- The established SQL API checks its arguments like the HTTP API (same
-- names, limits and bounds: shared/names.ts, shared/limits.ts and the server's
-- default maxPayloadBytes), before writing anything, and says which argument
-- is wrong and what the limit is. Same signatures as before; SQLSTATE 22023
-- (invalid_parameter_value) for every refusal.

-- schedule_task: enqueues one job into the default queue and wakes waiting
-- claims on every skipq server (NOTIFY carries the queue name, never the job).
-- Refused: a type that is not a job type name (TypeScript workers would pick it
-- up), a SQL NULL or JSON null payload, a payload over 1 MiB of JSON text (as
-- PostgreSQL writes it) or nested deeper than 64 levels (the worker's parser
-- recurses), priority outside 0..10, max_retries outside 0..1000, scheduled_for
-- before 1970 or more than 10 years (3,650 days) ahead. A NULL priority,
-- scheduled_for or max_retries takes its default, as before.
CREATE OR REPLACE FUNCTION schedule_task(
  p_task_type text,
  p_payload jsonb,
  p_priority integer DEFAULT 0,
  p_scheduled_for timestamptz DEFAULT now(),
  p_max_retries integer DEFAULT 3
)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_bytes integer;
  v_id text;
  v_queue text;
BEGIN
  IF p_task_type IS NULL OR p_task_type !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' THEN
    RAISE EXCEPTION 'schedule_task: task_type must start with a letter or digit and use only letters, digits, "_", ".", ":" or "-" (at most 128 characters); got %',
      coalesce(quote_literal(left(p_task_type, 130)), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_payload IS NULL OR jsonb_typeof(p_payload) = 'null' THEN
    RAISE EXCEPTION 'schedule_task: payload is required and must not be JSON null'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_bytes := octet_length(p_payload::text);
  IF v_bytes > 1048576 THEN
    RAISE EXCEPTION 'schedule_task: payload is % bytes of JSON; the limit is 1048576 (1 MiB)', v_bytes
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Level 0 is the payload itself: a container at level 64 is the 65th nested one.
  IF jsonb_path_exists(p_payload, 'strict $.**{64 to last} ? (@.type() == "array" || @.type() == "object")') THEN
    RAISE EXCEPTION 'schedule_task: payload is nested deeper than 64 levels'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_priority NOT BETWEEN 0 AND 10 THEN
    RAISE EXCEPTION 'schedule_task: priority must be between 0 and 10; got %', p_priority
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_max_retries NOT BETWEEN 0 AND 1000 THEN
    RAISE EXCEPTION 'schedule_task: max_retries must be between 0 and 1000; got %', p_max_retries
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_scheduled_for < timestamptz '1970-01-01 00:00:00+00' OR p_scheduled_for > now() + interval '3650 days' THEN
    RAISE EXCEPTION 'schedule_task: scheduled_for must be between 1970 and 10 years from now; got %', p_scheduled_for
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  INSERT INTO task_queue (task_type, payload, priority, scheduled_for, max_retries)
  VALUES (p_task_type, p_payload, coalesce(p_priority, 0), coalesce(p_scheduled_for, now()), coalesce(p_max_retries, 3))
  RETURNING task_queue.id, task_queue.queue INTO v_id, v_queue;
  PERFORM pg_notify('skipq_jobs', v_queue);
  RETURN v_id;
END
$$;

-- cleanup_old_tasks: deletes completed and cancelled jobs finished more than
-- days_to_keep days ago. Failed jobs stay until a person retries or deletes
-- them. Returns how many rows went. days_to_keep is 1..36500: a negative value
-- deleted every finished job, and 0 would too (while the server reads a
-- retention of 0 as "keep forever"), so neither is taken for a retention.
CREATE OR REPLACE FUNCTION cleanup_old_tasks(p_days_to_keep integer DEFAULT 7)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_deleted integer;
BEGIN
  IF p_days_to_keep IS NULL OR p_days_to_keep NOT BETWEEN 1 AND 36500 THEN
    RAISE EXCEPTION 'cleanup_old_tasks: days_to_keep must be between 1 and 36500; got %', coalesce(p_days_to_keep::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  DELETE FROM task_queue
  WHERE status IN ('completed', 'cancelled')
    AND coalesce(completed_at, updated_at) < now() - interval '1 day' * p_days_to_keep;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  RETURN v_deleted;
END
$$;

-- claim_tasks keeps its established signature and result; SQL callers have no
-- heartbeat, so their lease is 15 minutes (the contract's orphan window).
-- Refused: no worker id, or one over 200 characters (a claimed job must name
-- its holder); max_tasks outside 1..1000; task_types that is neither NULL
-- (every type) nor 1 to 100 job type names.
CREATE OR REPLACE FUNCTION claim_tasks(p_worker_id text, p_task_types text[], p_max_tasks integer)
RETURNS TABLE (id text, task_type text, payload jsonb)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF p_worker_id IS NULL OR char_length(p_worker_id) NOT BETWEEN 1 AND 200 THEN
    RAISE EXCEPTION 'claim_tasks: worker_id is required, 1 to 200 characters; got %',
      CASE WHEN p_worker_id IS NULL THEN 'NULL' ELSE char_length(p_worker_id) || ' characters' END
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_max_tasks IS NULL OR p_max_tasks NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'claim_tasks: max_tasks must be between 1 and 1000; got %', coalesce(p_max_tasks::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_task_types IS NOT NULL AND (
       cardinality(p_task_types) NOT BETWEEN 1 AND 100
       OR EXISTS (SELECT 1 FROM unnest(p_task_types) AS n(name) WHERE n.name IS NULL OR n.name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$')
     ) THEN
    RAISE EXCEPTION 'claim_tasks: task_types must be NULL (every type) or 1 to 100 job type names (a letter or digit, then letters, digits, "_", ".", ":" or "-", at most 128 characters)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  SELECT c.id, c.task_type, c.payload
  FROM skipq_claim(p_worker_id, p_task_types, NULL, p_max_tasks, 900000) AS c;
END
$$;
