-- The registry in the database, and a SQL API that is not second class:
-- job_types (written by every server that starts with a registry), schedule_task
-- and enqueue_job applying a type's defaults and refusing unknown types, and
-- fenced claim / complete / fail / heartbeat functions for SQL workers.
--
-- Every refusal is SQLSTATE 22023 (invalid_parameter_value), names the function
-- and the argument, and changes nothing.

-- job_types: the registry as the database sees it (server/jobTypes.ts writes
-- it at start). A registry is "loaded" once the table has any row; from then
-- on SQL enqueues of a type it does not know are refused, as the HTTP API of a
-- server with that registry refuses them.
--
-- A type that a starting server's registry no longer has is kept, with
-- removed_at set, not deleted: its jobs may still be pending or failed, and
-- fail_job still needs its backoff. A removed type is refused at enqueue (no
-- worker of the current registry would run it); a server whose registry has it
-- again clears removed_at. A server started without a registry writes nothing:
-- the database keeps the registry of the last server that had one.
--
-- payload_schema is the payload's JSON Schema (zod's z.toJSONSchema, input
-- side: what a producer sends). schema_complete is false when the schema has
-- parts JSON Schema cannot say (a transform's output, a date, a bigint, a
-- refinement's code): those parts are written as {} (anything), so the
-- document is looser than the zod schema. Either way, the worker validates
-- every payload with the zod schema itself before its handler runs.
CREATE TABLE "job_types" (
    "name" TEXT NOT NULL,
    "queue" TEXT NOT NULL DEFAULT 'default',
    "priority" INTEGER NOT NULL DEFAULT 0,
    "max_retries" INTEGER NOT NULL DEFAULT 3,
    "backoff" JSONB,
    "timeout_ms" INTEGER,
    "payload_schema" JSONB NOT NULL,
    "schema_complete" BOOLEAN NOT NULL DEFAULT true,
    "removed_at" TIMESTAMPTZ(6),
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
    CONSTRAINT "job_types_pkey" PRIMARY KEY ("name"),
    CONSTRAINT "job_types_name_check" CHECK ("name" ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    CONSTRAINT "job_types_queue_check" CHECK ("queue" ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    CONSTRAINT "job_types_priority_check" CHECK ("priority" BETWEEN 0 AND 10),
    CONSTRAINT "job_types_max_retries_check" CHECK ("max_retries" BETWEEN 0 AND 1000),
    CONSTRAINT "job_types_timeout_ms_check" CHECK ("timeout_ms" BETWEEN 1 AND 86400000),
    CONSTRAINT "job_types_backoff_check" CHECK ("backoff" IS NULL OR jsonb_typeof("backoff") = 'object')
);

-- The checks every SQL enqueue makes, with the limits of the HTTP API
-- (shared/names.ts, shared/limits.ts, the server's default maxPayloadBytes),
-- as schedule_task has made them since 20261201000100_enqueue_integrity.
-- p_fn names the caller in the message.

-- A JSON value skipq stores (payload, result): not SQL NULL or JSON null, at
-- most 1 MiB of JSON text (as PostgreSQL writes it), nested at most 64 levels
-- (the worker's parser recurses).
CREATE FUNCTION skipq_check_json(p_fn text, p_what text, p_value jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_bytes integer;
BEGIN
  IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
    RAISE EXCEPTION '%: % is required and must not be JSON null', p_fn, p_what
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_bytes := octet_length(p_value::text);
  IF v_bytes > 1048576 THEN
    RAISE EXCEPTION '%: % is % bytes of JSON; the limit is 1048576 (1 MiB)', p_fn, p_what, v_bytes
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Level 0 is the value itself: a container at level 64 is the 65th nested one.
  IF jsonb_path_exists(p_value, 'strict $.**{64 to last} ? (@.type() == "array" || @.type() == "object")') THEN
    RAISE EXCEPTION '%: % is nested deeper than 64 levels', p_fn, p_what
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- A job type or queue name (NAME_PATTERN).
CREATE FUNCTION skipq_check_name(p_fn text, p_what text, p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' THEN
    RAISE EXCEPTION '%: % must start with a letter or digit and use only letters, digits, "_", ".", ":" or "-" (at most 128 characters); got %',
      p_fn, p_what, coalesce(quote_literal(left(p_name, 130)), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- The type's row, by which a SQL enqueue fills in what the call leaves out.
-- With no registry loaded (job_types empty) any valid name passes, with the
-- established defaults (queue default, priority 0, 3 retries, no timeout).
CREATE FUNCTION skipq_job_type(p_fn text, p_type text) RETURNS job_types
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_type job_types;
  v_known text;
BEGIN
  PERFORM skipq_check_name(p_fn, 'task_type', p_type);
  SELECT * INTO v_type FROM job_types AS jt WHERE jt.name = p_type;
  IF FOUND AND v_type.removed_at IS NULL THEN
    RETURN v_type;
  END IF;
  IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM job_types) THEN
    v_type.name := p_type;
    v_type.queue := 'default';
    v_type.priority := 0;
    v_type.max_retries := 3;
    RETURN v_type;
  END IF;
  SELECT string_agg(jt.name, ', ' ORDER BY jt.name) INTO v_known
  FROM (SELECT k.name FROM job_types AS k WHERE k.removed_at IS NULL ORDER BY k.name LIMIT 50) AS jt;
  IF v_type.removed_at IS NOT NULL THEN
    RAISE EXCEPTION '%: job type "%" was removed from the registry (at %); the registry knows: %', p_fn, p_type, v_type.removed_at, coalesce(v_known, 'no types')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RAISE EXCEPTION '%: unknown job type "%"; the registry knows: %', p_fn, p_type, coalesce(v_known, 'no types')
    USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- The one SQL enqueue of a single job, behind schedule_task and enqueue_job.
-- NULL arguments take the type's defaults (job_types), then the established
-- ones. Inserts through skipq_enqueue, so NOTIFY and the uniqueKey index
-- behave exactly as for jobs.enqueue over HTTP.
--
-- Answers the job's id and whether this call created it. created is false
-- when the call is answered with a job that already exists, as jobs.enqueue
-- answers it: the live job of the queue and type holding unique_key, or the
-- job that already has the id given (same type and queue: a repeat of the same
-- enqueue). An id used by a job of another type or queue is refused with
-- unique_violation (the server's JOB_ID_CONFLICT), naming no other field of it.
CREATE FUNCTION skipq_enqueue_one(
  p_fn text,
  p_type text,
  p_payload jsonb,
  p_id text,
  p_queue text,
  p_priority integer,
  p_run_at timestamptz,
  p_delay_ms bigint,
  p_max_retries integer,
  p_unique_key text,
  p_concurrency_key text,
  p_timeout_ms integer,
  OUT id text,
  OUT created boolean
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_type job_types := skipq_job_type(p_fn, p_type);
  v_queue text := coalesce(p_queue, v_type.queue);
  v_priority integer := coalesce(p_priority, v_type.priority);
  v_max_retries integer := coalesce(p_max_retries, v_type.max_retries);
  v_timeout_ms integer := coalesce(p_timeout_ms, v_type.timeout_ms);
  v_id text := coalesce(p_id, skipq_uuid_v7());
  v_new text;
BEGIN
  PERFORM skipq_check_json(p_fn, 'payload', p_payload);
  PERFORM skipq_check_name(p_fn, 'queue', v_queue);
  IF v_priority NOT BETWEEN 0 AND 10 THEN
    RAISE EXCEPTION '%: priority must be between 0 and 10; got %', p_fn, v_priority
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_max_retries NOT BETWEEN 0 AND 1000 THEN
    RAISE EXCEPTION '%: max_retries must be between 0 and 1000; got %', p_fn, v_max_retries
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_run_at < timestamptz '1970-01-01 00:00:00+00' OR p_run_at > skipq_now() + interval '3650 days' THEN
    RAISE EXCEPTION '%: % must be between 1970 and 10 years from now; got %', p_fn, CASE p_fn WHEN 'schedule_task' THEN 'scheduled_for' ELSE 'run_at' END, p_run_at
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_delay_ms NOT BETWEEN 0 AND 315360000000 THEN
    RAISE EXCEPTION '%: delay_ms must be between 0 and 315360000000 (10 years); got %', p_fn, p_delay_ms
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_run_at IS NOT NULL AND p_delay_ms IS NOT NULL THEN
    RAISE EXCEPTION '%: give run_at or delay_ms, not both', p_fn
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_timeout_ms NOT BETWEEN 1 AND 86400000 THEN
    RAISE EXCEPTION '%: timeout_ms must be between 1 and 86400000 (24 h); got %', p_fn, v_timeout_ms
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF char_length(p_unique_key) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION '%: unique_key must be 1 to 255 characters; got %', p_fn, char_length(p_unique_key)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF char_length(p_concurrency_key) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION '%: concurrency_key must be 1 to 255 characters; got %', p_fn, char_length(p_concurrency_key)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    RAISE EXCEPTION '%: id must be a job id (a UUID such as 01931a3c-5c1e-7d2a-9f00-1b2c3d4e5f60); got %', p_fn, quote_literal(left(v_id, 40))
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- Bounded: a key holder that finished between the skipped insert and the
  -- read below is tried again.
  FOR v_round IN 1..5 LOOP
    BEGIN
      SELECT e.id INTO v_new
      FROM skipq_enqueue(
        ARRAY[v_id], ARRAY[v_queue], ARRAY[p_type], ARRAY[p_payload::text], ARRAY[v_priority],
        ARRAY[p_run_at], ARRAY[p_delay_ms], ARRAY[v_max_retries], ARRAY[p_unique_key], ARRAY[v_timeout_ms],
        ARRAY[p_concurrency_key], ARRAY[NULL::text]
      ) AS e;
    EXCEPTION WHEN unique_violation THEN
      v_new := NULL;
      SELECT t.id INTO id FROM task_queue AS t WHERE t.id = v_id AND t.task_type = p_type AND t.queue = v_queue;
      IF NOT FOUND THEN
        RAISE EXCEPTION '%: job id % is already used by another job', p_fn, v_id
          USING ERRCODE = 'unique_violation';
      END IF;
      created := false;
      RETURN;
    END;
    IF v_new IS NOT NULL THEN
      id := v_new;
      created := true;
      RETURN;
    END IF;
    -- Skipped for its unique_key. The id decides first, as on the server.
    SELECT t.id INTO id
    FROM task_queue AS t
    WHERE (t.id = p_id)
       OR (t.queue = v_queue AND t.task_type = p_type AND t.unique_key = p_unique_key AND t.status IN ('pending', 'claimed', 'processing'))
    ORDER BY t.id = p_id DESC NULLS LAST
    LIMIT 1;
    IF FOUND THEN
      created := false;
      RETURN;
    END IF;
  END LOOP;
  RAISE EXCEPTION '%: unique_key % kept changing hands; try again', p_fn, quote_literal(p_unique_key);
END
$$;

-- schedule_task: the established signature, now registry-aware. The job goes
-- to its type's queue with its type's priority, max_retries and timeout unless
-- the call gives them; a NULL (or omitted) argument takes the type's default.
-- (The old defaults, 0 and 3, were written in the signature, so an omitted
-- argument could not be told from an explicit one; they are NULL now, which
-- means the same thing for a type without a job_types row.) Refuses an unknown
-- type once a registry is loaded. Does not check the payload against the
-- type's schema (PostgreSQL has no JSON Schema validator): the worker does
-- before the handler runs, and fails a bad payload at once, without retries,
-- with the message jobs.enqueue gives for it.
CREATE OR REPLACE FUNCTION schedule_task(
  p_task_type text,
  p_payload jsonb,
  p_priority integer DEFAULT NULL,
  p_scheduled_for timestamptz DEFAULT NULL,
  p_max_retries integer DEFAULT NULL
)
RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT e.id
  FROM skipq_enqueue_one('schedule_task', p_task_type, p_payload, NULL, NULL, p_priority, p_scheduled_for, NULL, p_max_retries, NULL, NULL, NULL) AS e
$$;

-- An option of enqueue_job read as an integer in [p_min, p_max]; NULL when absent or JSON null.
CREATE FUNCTION skipq_option_int(p_options jsonb, p_key text, p_min bigint, p_max bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := p_options -> p_key;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'number' OR v::text::numeric % 1 <> 0 OR v::text::numeric NOT BETWEEN p_min AND p_max THEN
    RAISE EXCEPTION 'enqueue_job: options.% must be an integer between % and %; got %', p_key, p_min, p_max, left(v::text, 100)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN (v::text::numeric)::bigint;
END
$$;

-- An option of enqueue_job read as a string; NULL when absent or JSON null.
CREATE FUNCTION skipq_option_text(p_options jsonb, p_key text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := p_options -> p_key;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'string' THEN
    RAISE EXCEPTION 'enqueue_job: options.% must be a string; got %', p_key, left(v::text, 100)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v #>> '{}';
END
$$;

-- enqueue_job: one job of a registered type, with the options of jobs.enqueue
-- as a JSON object (snake_case): queue, priority, run_at (ISO 8601 text) or
-- delay_ms, max_retries, unique_key, concurrency_key, timeout_ms, id. What the
-- options leave out comes from the type (job_types), as for schedule_task.
-- An unknown option is refused (a misspelt one must not be ignored).
-- Answers (id, created): see skipq_enqueue_one.
--   SELECT * FROM enqueue_job('ingestion', '{"chainId": "1", "targetDate": "2026-12-01"}', '{"unique_key": "1:2026-12-01", "delay_ms": 5000}');
CREATE FUNCTION enqueue_job(p_type text, p_payload jsonb, p_options jsonb DEFAULT '{}', OUT id text, OUT created boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_options jsonb := coalesce(p_options, '{}');
  v_unknown text;
  v_run_at text;
  v_when timestamptz;
BEGIN
  IF jsonb_typeof(v_options) <> 'object' THEN
    RAISE EXCEPTION 'enqueue_job: options must be a JSON object; got %', left(v_options::text, 100)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT string_agg(quote_ident(k), ', ' ORDER BY k) INTO v_unknown
  FROM jsonb_object_keys(v_options) AS k
  WHERE k NOT IN ('queue', 'priority', 'run_at', 'delay_ms', 'max_retries', 'unique_key', 'concurrency_key', 'timeout_ms', 'id');
  IF v_unknown IS NOT NULL THEN
    RAISE EXCEPTION 'enqueue_job: unknown option %; the options are queue, priority, run_at, delay_ms, max_retries, unique_key, concurrency_key, timeout_ms, id', v_unknown
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_run_at := skipq_option_text(v_options, 'run_at');
  IF v_run_at IS NOT NULL THEN
    BEGIN
      v_when := v_run_at::timestamptz;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_parameter_value THEN
      RAISE EXCEPTION 'enqueue_job: options.run_at must be a timestamp such as 2026-12-01T12:00:00Z; got %', quote_literal(left(v_run_at, 100))
        USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  SELECT e.id, e.created INTO id, created
  FROM skipq_enqueue_one(
    'enqueue_job',
    p_type,
    p_payload,
    skipq_option_text(v_options, 'id'),
    skipq_option_text(v_options, 'queue'),
    skipq_option_int(v_options, 'priority', 0, 10)::integer,
    v_when,
    skipq_option_int(v_options, 'delay_ms', 0, 315360000000),
    skipq_option_int(v_options, 'max_retries', 0, 1000)::integer,
    skipq_option_text(v_options, 'unique_key'),
    skipq_option_text(v_options, 'concurrency_key'),
    skipq_option_int(v_options, 'timeout_ms', 1, 86400000)::integer
  ) AS e;
END
$$;

-- The checks of a claim (claim_tasks' since 20261201000100_enqueue_integrity):
-- a worker id of 1 to 200 characters (a claimed job must name its holder; the
-- fenced moves check theirs the same way), max_tasks 1..1000, task_types NULL
-- (every type) or 1 to 100 job type names, and likewise queues.
CREATE FUNCTION skipq_check_worker_id(p_fn text, p_worker_id text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_worker_id IS NULL OR char_length(p_worker_id) NOT BETWEEN 1 AND 200 THEN
    RAISE EXCEPTION '%: worker_id is required, 1 to 200 characters; got %', p_fn,
      CASE WHEN p_worker_id IS NULL THEN 'NULL' ELSE char_length(p_worker_id) || ' characters' END
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- p_names: NULL (every one) or 1 to 100 names (NAME_PATTERN); p_kind says of what ('type' or 'queue').
CREATE FUNCTION skipq_check_names(p_fn text, p_what text, p_names text[], p_kind text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_names IS NOT NULL AND (
       cardinality(p_names) NOT BETWEEN 1 AND 100
       OR EXISTS (SELECT 1 FROM unnest(p_names) AS n(name) WHERE n.name IS NULL OR n.name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$')
     ) THEN
    RAISE EXCEPTION '%: % must be NULL (every %) or 1 to 100 % names (a letter or digit, then letters, digits, "_", ".", ":" or "-", at most 128 characters)',
      p_fn, p_what, p_kind, CASE p_kind WHEN 'type' THEN 'job type' ELSE p_kind END
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

CREATE FUNCTION skipq_check_claim(p_fn text, p_worker_id text, p_task_types text[], p_max_tasks integer, p_queues text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM skipq_check_worker_id(p_fn, p_worker_id);
  IF p_max_tasks IS NULL OR p_max_tasks NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION '%: max_tasks must be between 1 and 1000; got %', p_fn, coalesce(p_max_tasks::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM skipq_check_names(p_fn, 'task_types', p_task_types, 'type');
  PERFORM skipq_check_names(p_fn, 'queues', p_queues, 'queue');
END
$$;

-- claim_tasks: unchanged (signature, answer, checks and their messages), its
-- checks now shared with claim_jobs. It answers no attempt, so a job claimed
-- with it can only be finished with the unfenced complete_task / fail_task.
CREATE OR REPLACE FUNCTION claim_tasks(p_worker_id text, p_task_types text[], p_max_tasks integer)
RETURNS TABLE (id text, task_type text, payload jsonb)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM skipq_check_claim('claim_tasks', p_worker_id, p_task_types, p_max_tasks);
  RETURN QUERY
  SELECT c.id, c.task_type, c.payload
  FROM skipq_claim(p_worker_id, p_task_types, NULL, p_max_tasks, 900000) AS c;
END
$$;

-- claim_jobs: the fenced claim for SQL workers. The same claim as worker.claim
-- (skipq_claim: priority order, SKIP LOCKED, paused queues skipped, queue
-- concurrency and rate limits honoured, the lease capped by the job's
-- timeout), answering each job's attempt (the fencing token complete_job,
-- fail_job and heartbeat_job want) and when its lease ends. p_lease_ms is
-- 100..86400000 (LIMITS.minLeaseMs..maxLeaseMs); p_queues NULL means every queue.
CREATE FUNCTION claim_jobs(
  p_worker_id text,
  p_task_types text[],
  p_max integer,
  p_lease_ms integer DEFAULT 30000,
  p_queues text[] DEFAULT NULL
)
RETURNS TABLE (
  id text,
  task_type text,
  queue text,
  payload jsonb,
  attempt integer,
  lease_expires_at timestamptz,
  retry_count integer,
  max_retries integer,
  timeout_ms integer
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM skipq_check_claim('claim_jobs', p_worker_id, p_task_types, p_max, p_queues);
  IF p_lease_ms IS NULL OR p_lease_ms NOT BETWEEN 100 AND 86400000 THEN
    RAISE EXCEPTION 'claim_jobs: lease_ms must be between 100 and 86400000 (24 h); got %', coalesce(p_lease_ms::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  SELECT c.id, c.task_type, c.queue, c.payload, c.attempt, c.lease_expires_at, c.retry_count, c.max_retries, c.timeout_ms
  FROM skipq_claim(p_worker_id, p_task_types, p_queues, p_max, p_lease_ms) AS c
  ORDER BY c.priority DESC, c.scheduled_for, c.id;
END
$$;

-- What a holder move (complete, fail, heartbeat) did to one attempt, by the
-- table of moves (shared/lifecycle.ts judge, as server/verdicts.ts applies
-- it): 'move' (this call made it), 'repeat' (this worker's same attempt
-- already made it: nothing written), 'cancelled' (a producer cancelled this
-- attempt), 'lost' (the attempt is not this worker's any more, or a guard of
-- the move ended it: a heartbeat past the timeout), 'not_found'.
-- p_row is the move function's answer for the id (NULL: no such job).
CREATE FUNCTION skipq_holder_verdict(p_move text, p_row skipq_move_result, p_worker_id text, p_attempt integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN p_row.id IS NULL THEN 'not_found'
    WHEN p_row.moved THEN 'move'
    WHEN p_row.worker_id IS DISTINCT FROM p_worker_id OR p_row.attempt IS DISTINCT FROM p_attempt THEN 'lost'
    WHEN p_row.status IN ('claimed', 'processing') THEN 'lost'
    WHEN p_move IN ('complete', 'fail') AND p_row.ended_by = p_move THEN 'repeat'
    WHEN p_row.status = 'cancelled' THEN 'cancelled'
    ELSE 'lost'
  END
$$;

-- The fenced functions take the attempt claim_jobs handed out and the worker
-- id that claimed it, and act only while that worker holds that attempt, as
-- worker.complete / fail / heartbeat do over HTTP: a worker whose lease ran
-- out (and whose job another worker may now hold) is refused and writes
-- nothing. Each answers what happened to that attempt:
--   'completed', 'retry_scheduled', 'failed', 'extended': this call did it;
--   'already_completed', 'already_failed': this worker's same call already
--     did (a repeat after a lost reply); nothing was written;
--   'lease_lost': the attempt is no longer this worker's (lease ran out and
--     was rescued, timed out, another claim, complete_task / fail_task);
--   'cancelled': the job was cancelled; stop working on it;
--   'not_found': no such job.
-- A NULL id, attempt or worker id is refused (NULL would unfence the move).
CREATE FUNCTION skipq_check_holder(p_fn text, p_id text, p_attempt integer, p_worker_id text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_id IS NULL THEN
    RAISE EXCEPTION '%: id is required', p_fn USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_attempt IS NULL OR p_attempt < 1 THEN
    RAISE EXCEPTION '%: attempt is required: the attempt claim_jobs answered (1 or more); got %', p_fn, coalesce(p_attempt::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM skipq_check_worker_id(p_fn, p_worker_id);
END
$$;

-- complete_job: this worker's attempt of a held job becomes completed, with
-- its result (NULL: none; else at most 1 MiB of JSON, 64 levels).
CREATE FUNCTION complete_job(p_id text, p_attempt integer, p_worker_id text, p_result jsonb DEFAULT NULL)
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
  RETURN CASE skipq_holder_verdict('complete', v_row, p_worker_id, p_attempt)
    WHEN 'move' THEN 'completed'
    WHEN 'repeat' THEN 'already_completed'
    WHEN 'cancelled' THEN 'cancelled'
    WHEN 'not_found' THEN 'not_found'
    ELSE 'lease_lost'
  END;
END
$$;

-- fail_job: this worker's attempt fails (error code HANDLER_ERROR). With
-- p_retry and retries left the job is pending again after its type's backoff
-- (job_types.backoff, else the established linear 60 s x (retry_count + 1)):
-- 'retry_scheduled'; otherwise 'failed' (a NULL p_retry retries, like the
-- default and like worker.fail; fail_task reads NULL as false). The error is cut to 16,384
-- characters (LIMITS.errorMessage), as the worker client cuts it.
CREATE FUNCTION fail_job(p_id text, p_attempt integer, p_worker_id text, p_error text, p_retry boolean DEFAULT true)
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
  RETURN CASE skipq_holder_verdict('fail', v_row, p_worker_id, p_attempt)
    WHEN 'move' THEN CASE v_row.status WHEN 'pending' THEN 'retry_scheduled' ELSE 'failed' END
    WHEN 'repeat' THEN 'already_failed'
    WHEN 'cancelled' THEN 'cancelled'
    WHEN 'not_found' THEN 'not_found'
    ELSE 'lease_lost'
  END;
END
$$;

-- heartbeat_job: this worker still holds the attempt: its lease runs p_lease
-- from now (100 ms..24 h), never past the attempt's timeout (claim +
-- timeout_ms). 'extended'; past the timeout 'lease_lost' (the attempt is over;
-- the rescuer fails it with TIMEOUT), as worker.heartbeat answers.
CREATE FUNCTION heartbeat_job(p_id text, p_attempt integer, p_worker_id text, p_lease interval DEFAULT interval '30 seconds')
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_lease_ms float8 := extract(epoch FROM p_lease) * 1000;
  v_row skipq_move_result;
BEGIN
  PERFORM skipq_check_holder('heartbeat_job', p_id, p_attempt, p_worker_id);
  IF v_lease_ms IS NULL OR v_lease_ms NOT BETWEEN 100 AND 86400000 THEN
    RAISE EXCEPTION 'heartbeat_job: lease must be between 100 milliseconds and 24 hours; got %', coalesce(p_lease::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO v_row FROM skipq_heartbeat(p_worker_id, ARRAY[p_id], ARRAY[p_attempt], ARRAY[NULL::text], v_lease_ms::integer);
  RETURN CASE skipq_holder_verdict('heartbeat', v_row, p_worker_id, p_attempt)
    WHEN 'move' THEN 'extended'
    WHEN 'cancelled' THEN 'cancelled'
    WHEN 'not_found' THEN 'not_found'
    ELSE 'lease_lost'
  END;
END
$$;

-- The established functions that are not fenced, said where psql's \df+ shows it.
COMMENT ON FUNCTION complete_task(text, jsonb) IS
  'UNFENCED: completes the job for whoever holds it, even after the caller''s lease ran out and another worker claimed it. SQL workers: claim_jobs + complete_job.';
COMMENT ON FUNCTION fail_task(text, text, boolean) IS
  'UNFENCED: fails the job for whoever holds it, even after the caller''s lease ran out and another worker claimed it. SQL workers: claim_jobs + fail_job.';
COMMENT ON FUNCTION claim_tasks(text, text[], integer) IS
  'Answers no attempt, so its jobs can only be finished with the unfenced complete_task / fail_task (15-minute lease, no heartbeat). SQL workers: claim_jobs.';
COMMENT ON FUNCTION claim_jobs(text, text[], integer, integer, text[]) IS
  'Fenced claim: answers attempt and lease_expires_at for complete_job, fail_job and heartbeat_job.';
