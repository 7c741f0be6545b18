-- skipq initial schema: the established task_queue table, extended for the
-- service, and the established SQL functions so psql, Go or any language can
-- use the same queue without TypeScript.

-- Time-ordered UUIDs (version 7) keep the primary key index append-only and
-- make `id` a FIFO tie-breaker within one scheduled_for. PostgreSQL 18 has
-- uuidv7(); 15 does not, so this is the portable form.
CREATE FUNCTION skipq_uuid_v7() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(
      set_bit(
        overlay(uuid_send(gen_random_uuid())
          PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
          FROM 1 FOR 6),
        52, 1),
      53, 1),
    'hex')::uuid::text
$$;

-- CreateTable (id is compared byte-wise, COLLATE "C": it is an identifier, not
-- words, and every index on it is then a memcmp instead of a locale compare)
CREATE TABLE "task_queue" (
    "id" TEXT COLLATE "C" NOT NULL DEFAULT skipq_uuid_v7(),
    "queue" TEXT NOT NULL DEFAULT 'default',
    "task_type" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "scheduled_for" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(6),
    "completed_at" TIMESTAMPTZ(6),
    "failed_at" TIMESTAMPTZ(6),
    "worker_id" TEXT,
    "retry_count" INTEGER NOT NULL DEFAULT 0,
    "max_retries" INTEGER NOT NULL DEFAULT 3,
    "error_message" TEXT,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "lease_expires_at" TIMESTAMPTZ(6),
    "result" JSONB,
    "unique_key" TEXT,
    "progress" JSONB,
    "cancel_requested_at" TIMESTAMPTZ(6),
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_queue_pkey" PRIMARY KEY ("id")
);

-- What Prisma cannot say: the invariants, the claim index, HOT-friendly storage.

-- Every status a job can have (documented in shared/statuses.ts).
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_status_check"
  CHECK ("status" IN ('pending', 'claimed', 'processing', 'completed', 'failed', 'cancelled'));
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_priority_check"
  CHECK ("priority" BETWEEN 0 AND 10);
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_retries_check"
  CHECK ("retry_count" >= 0 AND "max_retries" >= 0 AND "attempt" >= 0);
-- A job that holds a worker's lease names the worker.
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_holder_check"
  CHECK ("status" NOT IN ('claimed', 'processing') OR ("worker_id" IS NOT NULL AND "lease_expires_at" IS NOT NULL));

-- The claim index: partial, so it holds only claimable rows and stays small
-- however many finished rows the table keeps; ordered like the claim query.
CREATE INDEX "task_queue_claim_idx" ON "task_queue" ("priority" DESC, "scheduled_for", "id")
  WHERE "status" = 'pending';

-- The rescuer's index, keyed on "has a lease" rather than on the status.
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
CREATE INDEX "task_queue_lease_idx" ON "task_queue" ("lease_expires_at")
  WHERE "lease_expires_at" IS NOT NULL;

-- Retention's scan: only finished jobs it may delete, oldest first. A
-- cancelled job has no completed_at; its last update is when it was cancelled.
CREATE INDEX "task_queue_finished_idx" ON "task_queue" ((coalesce("completed_at", "updated_at")))
  WHERE "status" IN ('completed', 'cancelled');

-- uniqueKey: one live job per (task_type, unique_key). Enforced here, never by
-- read-then-insert; a finished job frees its key.
CREATE UNIQUE INDEX "task_queue_unique_key_idx" ON "task_queue" ("task_type", "unique_key")
  WHERE "unique_key" IS NOT NULL AND "status" IN ('pending', 'claimed', 'processing');

-- Each job row is updated two or three times (claim, maybe start, complete).
-- Status is in every partial index's predicate, so those updates are not HOT;
-- the free space still lets each new row version land on its job's page,
-- keeping the heap from growing at its end and the pages a batch touches few.
ALTER TABLE "task_queue" SET (fillfactor = 80);

-- The established SQL API. Same names, argument lists and return shapes as the
-- task_queue contract; the state machine is the one the TypeScript service
-- uses (server/queries/). Every write is one statement guarded in its WHERE.

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
CREATE FUNCTION claim_tasks(p_worker_id text, p_task_types text[], p_max_tasks integer)
RETURNS TABLE (id text, task_type text, payload jsonb)
LANGUAGE sql VOLATILE AS $$
  SELECT c.id, c.task_type, c.payload
  FROM skipq_claim(p_worker_id, p_task_types, NULL, p_max_tasks, 900000) AS c
$$;

-- complete_task: a held job (claimed or processing) becomes completed.
-- Returns false when the job is not held (unknown, finished or cancelled).
CREATE FUNCTION complete_task(p_task_id text, p_result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  WITH done AS (
    UPDATE task_queue
    SET status = 'completed',
        result = p_result,
        completed_at = now(),
        lease_expires_at = NULL,
        updated_at = now()
    WHERE id = p_task_id
      AND status IN ('claimed', 'processing')
    RETURNING 1
  )
  SELECT count(*) > 0 FROM done
$$;

-- fail_task: with retry and retries left, back to pending after the
-- established linear backoff of 60 s x (retry_count + 1); otherwise failed.
-- Returns true when the job will run again.
CREATE FUNCTION fail_task(p_task_id text, p_error_message text, p_retry boolean DEFAULT true)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  WITH failed AS (
    UPDATE task_queue
    SET status = CASE WHEN p_retry AND retry_count < max_retries THEN 'pending' ELSE 'failed' END,
        retry_count = CASE WHEN p_retry AND retry_count < max_retries THEN retry_count + 1 ELSE retry_count END,
        scheduled_for = CASE WHEN p_retry AND retry_count < max_retries
                             THEN now() + interval '60 seconds' * (retry_count + 1)
                             ELSE scheduled_for END,
        failed_at = CASE WHEN p_retry AND retry_count < max_retries THEN NULL ELSE now() END,
        error_message = p_error_message,
        lease_expires_at = NULL,
        updated_at = now()
    WHERE id = p_task_id
      AND status IN ('claimed', 'processing')
    RETURNING status
  )
  SELECT coalesce(bool_or(status = 'pending'), false) FROM failed
$$;

-- schedule_task: enqueues one job into the default queue and wakes waiting
-- claims on every skipq server (NOTIFY carries the queue name, never the job).
CREATE FUNCTION schedule_task(
  p_task_type text,
  p_payload jsonb,
  p_priority integer DEFAULT 0,
  p_scheduled_for timestamptz DEFAULT now(),
  p_max_retries integer DEFAULT 3
)
RETURNS text
LANGUAGE sql VOLATILE AS $$
  WITH inserted AS (
    INSERT INTO task_queue (task_type, payload, priority, scheduled_for, max_retries)
    VALUES (p_task_type, p_payload, coalesce(p_priority, 0), coalesce(p_scheduled_for, now()), coalesce(p_max_retries, 3))
    RETURNING id, queue
  )
  SELECT inserted.id FROM inserted, LATERAL (SELECT pg_notify('skipq_jobs', inserted.queue)) AS woken
$$;

-- cleanup_old_tasks: deletes completed and cancelled jobs finished more than
-- days_to_keep days ago. Failed jobs stay until a person retries or deletes
-- them. Returns how many rows went.
CREATE FUNCTION cleanup_old_tasks(p_days_to_keep integer DEFAULT 7)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
  WITH gone AS (
    DELETE FROM task_queue
    WHERE status IN ('completed', 'cancelled')
      AND coalesce(completed_at, updated_at) < now() - interval '1 day' * p_days_to_keep
    RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$$;

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
