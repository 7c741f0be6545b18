-- Schedules (cron), and the enqueue paths of debounced and throttled jobs.

-- schedules: one row per named schedule, from the registry (source
-- 'registry', upserted by every server at start) or from schedules.upsert
-- (source 'api'). next_run_at is the earliest tick not yet produced; the
-- maintenance leader produces every due tick (per catch_up), each as a job
-- whose id is derived from (name, tick time), and moves next_run_at past them
-- in the same transaction. A tick therefore makes one job however many
-- servers run, and even two leaders at once cannot make two: the second
-- insert of the same id does nothing.
CREATE TABLE "schedules" (
    "name" TEXT NOT NULL,
    "task_type" TEXT NOT NULL,
    "cron" TEXT NOT NULL,
    "timezone" TEXT,
    "payload" JSONB NOT NULL,
    "queue" TEXT,
    "priority" INTEGER,
    "max_retries" INTEGER,
    "timeout_ms" INTEGER,
    "catch_up" TEXT NOT NULL DEFAULT 'latest',
    "allow_overlap" BOOLEAN NOT NULL DEFAULT true,
    "paused" BOOLEAN NOT NULL DEFAULT false,
    "source" TEXT NOT NULL DEFAULT 'api',
    "next_run_at" TIMESTAMPTZ(6) NOT NULL,
    "last_run_at" TIMESTAMPTZ(6),
    "last_job_id" TEXT,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
    CONSTRAINT "schedules_pkey" PRIMARY KEY ("name"),
    CONSTRAINT "schedules_name_check" CHECK ("name" ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    CONSTRAINT "schedules_catch_up_check" CHECK ("catch_up" IN ('skip', 'latest', 'all')),
    CONSTRAINT "schedules_source_check" CHECK ("source" IN ('registry', 'api')),
    CONSTRAINT "schedules_priority_check" CHECK ("priority" BETWEEN 0 AND 10),
    CONSTRAINT "schedules_max_retries_check" CHECK ("max_retries" BETWEEN 0 AND 1000)
);
-- The leader's question: which running schedules are due.
CREATE INDEX "schedules_due_idx" ON "schedules" ("next_run_at") WHERE NOT "paused";

-- throttle_windows: for throttleMs, the job that holds each key's current
-- window. A small row per key, taken with one INSERT ... ON CONFLICT DO
-- UPDATE ... WHERE the window is over, so concurrent callers serialise on the
-- row and exactly one opens the next window. task_queue is not scanned:
-- finished jobs are outside the live uniqueKey index.
CREATE TABLE "throttle_windows" (
    "queue" TEXT NOT NULL,
    "task_type" TEXT NOT NULL,
    "unique_key" TEXT NOT NULL,
    "job_id" TEXT NOT NULL,
    "ends_at" TIMESTAMPTZ(6) NOT NULL,
    CONSTRAINT "throttle_windows_pkey" PRIMARY KEY ("queue", "task_type", "unique_key")
);

-- skipq_enqueue_debounced: one job with uniqueKey and debounceMs. A pending
-- job holding the key (its queue and type) takes the new payload and is due
-- at now + debounce; otherwise a new job is inserted due then. A holder that
-- is already running is answered as for any uniqueKey (created false): the
-- live uniqueKey index allows one live job per key. Only enqueues with
-- debounceMs come here; skipq_enqueue is untouched.
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
      INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms)
      VALUES (p_id, p_queue, p_task_type, p_payload::jsonb, p_priority, v_due, p_max_retries, p_unique_key, p_timeout_ms)
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

-- skipq_enqueue_throttled: one job with uniqueKey and throttleMs. At most one
-- job per (queue, task_type, key) is created per window of throttle ms from
-- that job's creation, whatever becomes of it (completed included); calls in
-- the window get that job (created false). Past the window the uniqueKey rule
-- still holds: a job that is still live answers instead of a new one.
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
    INSERT INTO task_queue AS t (id, queue, task_type, payload, priority, scheduled_for, max_retries, unique_key, timeout_ms)
    VALUES (p_id, p_queue, p_task_type, p_payload::jsonb, p_priority,
            coalesce(p_run_at, v_now + coalesce(p_delay_ms, 0) * interval '1 millisecond'),
            p_max_retries, p_unique_key, p_timeout_ms)
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
