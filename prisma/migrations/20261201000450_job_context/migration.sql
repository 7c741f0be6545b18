-- Two facts a job carries from its enqueue: its concurrency key (its lane
-- within its queue, for per-key concurrency) and the W3C trace context of the
-- call that enqueued it (traceparent, optionally a space and tracestate), so a
-- worker's span continues the producer's trace. Every enqueue function takes
-- both (NULL when absent); they are replaced with the two extra arguments and
-- the old signatures dropped, so no caller keeps writing jobs without them.

ALTER TABLE "task_queue" ADD COLUMN "trace_context" TEXT;
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_trace_context_length" CHECK (length("trace_context") <= 1024);
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_concurrency_key_length" CHECK (length("concurrency_key") <= 255);

DROP FUNCTION skipq_enqueue(text[], text[], text[], text[], integer[], timestamptz[], bigint[], integer[], text[], integer[]);
DROP FUNCTION skipq_enqueue_debounced(text, text, text, text, integer, integer, text, integer, bigint, timestamptz);
DROP FUNCTION skipq_enqueue_throttled(text, text, text, text, integer, timestamptz, bigint, integer, text, integer, bigint, timestamptz);

-- skipq_enqueue: as in 20261201000100_enqueue_integrity, plus concurrency keys and trace contexts.
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
  p_timeout_ms integer[],
  p_concurrency_keys text[],
  p_trace_contexts text[]
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
    INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms, concurrency_key, trace_context)
    SELECT i.id, i.queue, i.task_type, i.payload::jsonb, i.priority,
           coalesce(i.run_at, now() + coalesce(i.delay_ms, 0) * interval '1 millisecond'),
           i.max_retries, i.unique_key, i.timeout_ms, i.concurrency_key, i.trace_context
    FROM unnest(p_ids, p_queues, p_task_types, p_payloads, p_priorities, p_run_at, p_delay_ms, p_max_retries, p_unique_keys, p_timeout_ms, p_concurrency_keys, p_trace_contexts)
      AS i(id, queue, task_type, payload, priority, run_at, delay_ms, max_retries, unique_key, timeout_ms, concurrency_key, trace_context)
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

-- skipq_enqueue_debounced: as in 20261201000400_schedules, plus concurrency key and trace context.
CREATE FUNCTION skipq_enqueue_debounced(
  p_id text,
  p_queue text,
  p_task_type text,
  p_payload text,
  p_priority integer,
  p_max_retries integer,
  p_unique_key text,
  p_timeout_ms integer,
  p_debounce_ms bigint,
  p_concurrency_key text,
  p_trace_context text,
  p_now timestamptz DEFAULT NULL
)
RETURNS TABLE (id text, task_type text, queue text, status text, priority integer, scheduled_for timestamptz, created boolean)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
  v_due timestamptz := coalesce(p_now, skipq_now()) + p_debounce_ms * interval '1 millisecond';
BEGIN
  -- Bounded: an insert skipped for a holder that finished before the update
  -- below could see it is tried again.
  FOR v_round IN 1..5 LOOP
    RETURN QUERY
    UPDATE task_queue AS t
    SET payload = p_payload::jsonb,
        scheduled_for = v_due,
        updated_at = coalesce(p_now, skipq_now())
    WHERE t.queue = p_queue
      AND t.task_type = p_task_type
      AND t.unique_key = p_unique_key
      AND t.status = 'pending'
    RETURNING t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for, false;
    IF FOUND THEN RETURN; END IF;

    RETURN QUERY
    WITH inserted AS (
      INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms, concurrency_key, trace_context)
      VALUES (p_id, p_queue, p_task_type, p_payload::jsonb, p_priority, v_due, p_max_retries, p_unique_key, p_timeout_ms, p_concurrency_key, p_trace_context)
      ON CONFLICT (queue, task_type, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'claimed', 'processing')
      DO NOTHING
      RETURNING t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for
    ),
    woken AS (
      SELECT count(pg_notify('skipq_jobs', inserted.queue)) AS n FROM inserted
    )
    SELECT inserted.id, inserted.task_type, inserted.queue, inserted.status, inserted.priority, inserted.scheduled_for, true
    FROM inserted, woken;
    IF FOUND THEN RETURN; END IF;

    -- A running holder: answered as it is.
    RETURN QUERY
    SELECT t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for, false
    FROM task_queue AS t
    WHERE t.queue = p_queue
      AND t.task_type = p_task_type
      AND t.unique_key = p_unique_key
      AND t.status IN ('claimed', 'processing');
    IF FOUND THEN RETURN; END IF;
  END LOOP;
  RAISE EXCEPTION 'debounce contention on uniqueKey %: the live job kept changing; try again', p_unique_key;
END
$$;

-- skipq_enqueue_throttled: as in 20261201000400_schedules, plus concurrency key and trace context.
CREATE FUNCTION skipq_enqueue_throttled(
  p_id text,
  p_queue text,
  p_task_type text,
  p_payload text,
  p_priority integer,
  p_run_at timestamptz,
  p_delay_ms bigint,
  p_max_retries integer,
  p_unique_key text,
  p_timeout_ms integer,
  p_throttle_ms bigint,
  p_concurrency_key text,
  p_trace_context text,
  p_now timestamptz DEFAULT NULL
)
RETURNS TABLE (id text, task_type text, queue text, status text, priority integer, scheduled_for timestamptz, created boolean)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_opened text;
  v_holder text;
BEGIN
  -- Opens a window for this job if the key has none or its window is over;
  -- a concurrent caller waits on the row, then sees the window open.
  INSERT INTO throttle_windows AS w (queue, task_type, unique_key, job_id, ends_at)
  VALUES (p_queue, p_task_type, p_unique_key, p_id, v_now + p_throttle_ms * interval '1 millisecond')
  ON CONFLICT (queue, task_type, unique_key) DO UPDATE
    SET job_id = EXCLUDED.job_id, ends_at = EXCLUDED.ends_at
    WHERE w.ends_at <= v_now
  RETURNING w.job_id INTO v_opened;

  IF v_opened IS NULL THEN
    RETURN QUERY
    SELECT t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for, false
    FROM throttle_windows AS w
    JOIN task_queue AS t ON t.id = w.job_id
    WHERE w.queue = p_queue AND w.task_type = p_task_type AND w.unique_key = p_unique_key;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'throttle window of uniqueKey % names a job that no longer exists', p_unique_key;
    END IF;
    RETURN;
  END IF;

  RETURN QUERY
  WITH inserted AS (
    INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms, concurrency_key, trace_context)
    VALUES (p_id, p_queue, p_task_type, p_payload::jsonb, p_priority,
            coalesce(p_run_at, v_now + coalesce(p_delay_ms, 0) * interval '1 millisecond'),
            p_max_retries, p_unique_key, p_timeout_ms, p_concurrency_key, p_trace_context)
    ON CONFLICT (queue, task_type, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'claimed', 'processing')
    DO NOTHING
    RETURNING t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for
  ),
  woken AS (
    SELECT count(pg_notify('skipq_jobs', inserted.queue)) AS n FROM inserted
  )
  SELECT inserted.id, inserted.task_type, inserted.queue, inserted.status, inserted.priority, inserted.scheduled_for, true
  FROM inserted, woken;
  IF FOUND THEN RETURN; END IF;

  -- A live job from before still holds the key: the window is its.
  SELECT t.id INTO v_holder
  FROM task_queue AS t
  WHERE t.queue = p_queue AND t.task_type = p_task_type AND t.unique_key = p_unique_key
    AND t.status IN ('pending', 'claimed', 'processing');
  UPDATE throttle_windows AS w SET job_id = v_holder
  WHERE w.queue = p_queue AND w.task_type = p_task_type AND w.unique_key = p_unique_key;
  RETURN QUERY
  SELECT t.id, t.task_type, t.queue, t.status, t.priority, t.scheduled_for, false
  FROM task_queue AS t WHERE t.id = v_holder;
END
$$;
