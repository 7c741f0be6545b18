-- Per-key concurrency with fairness (issue 8): skipq_claim honours
-- queues.key_concurrency. A queue's jobs that carry a concurrency key are
-- claimed lane by lane: at most key_concurrency of one key held at once, and
-- the keys take turns (queues.key_cursor), so a key with 10,000 pending jobs
-- does not starve a key with one.
--
-- Why the keyed claim written for the queues migration "never finished"
-- (commit b4e1601 took it out). It was not an unbounded loop (its key walk
-- stopped after v_allow * 2 + 16 keys), not a lock wait (claims skip locked
-- job rows; only the queue's row lock is waited for) and not a plan walking the
-- table (each step of the walk was one index-only descent). It was JIT.
-- skipq_claim runs with enable_sort = off so that no claim sorts the pending
-- set; that statement had two sorts no index could provide (ORDER BY j.rn,
-- l.pos over the picked lanes, ORDER BY p.pos DESC LIMIT 1 for the cursor),
-- so each carried disable_cost (1e10). At an estimated cost of 3e10 it was far
-- over jit_above_cost, jit_inline_above_cost and jit_optimize_above_cost, and
-- every execution compiled 85 functions with inlining and optimisation:
-- measured (auto_explain, this machine, 2,000 jobs over 20 keys) a claim of 2
-- jobs took 4.2 s, of which JIT 4.16 s (optimisation 2.3 s, emission 1.5 s);
-- the same claim with jit = off took 40 ms. A limited queue's claims take
-- turns on its row lock, so four workers queued behind 4-second statements and
-- the test timed out. Checked both ways against test/concurrencyKeys.test.ts
-- ("4 workers claim and complete concurrently"): that old function times out
-- (800 jobs not done in 20 s); the same function with only SET jit = off
-- added passes (5.2 s). Hence, below: the function runs with jit = off (a claim
-- is a short statement; compiling it never pays for itself), and the keyed
-- statements have no sort in their plans (walk order, max() instead of ORDER
-- BY ... LIMIT 1), so none carries disable_cost.
--
-- Bounded work: a claim visits at most v_allow * 2 + 16 keys (one index
-- descent each, through the index below) and takes each visited key's first
-- jobs with one more descent. A claim that finds nothing eligible within that
-- bound answers fewer jobs (possibly none) and leaves the cursor at the last
-- key it visited, so the next claim looks further on. Nothing loops.
--
-- Counters: queue_keys.held goes up in the claim's own statement (the claim
-- holds the queue's row lock, so no other claim or fold of the queue runs
-- meanwhile) and down through the release ledger, folded by
-- skipq_fold_releases at the start of the next limited claim, as queues.held
-- (the queues migration). A keyed job is counted in queues.held too.

-- The pending jobs of one key in claim order. Only jobs with a key have an
-- entry, so an enqueue without a key pays the predicate test and nothing else;
-- a keyed enqueue pays one more index entry.
CREATE INDEX "task_queue_key_claim_idx" ON "task_queue" ("queue", "concurrency_key", "priority" DESC, "scheduled_for", "id")
  WHERE "status" = 'pending' AND "concurrency_key" IS NOT NULL;

-- As in the queues migration, with key_concurrency counting as a reason to
-- count held jobs (queue_keys then rebuilt from task_queue).
CREATE OR REPLACE FUNCTION skipq_queue_recount(p_queue text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_counts boolean;
BEGIN
  SELECT q.concurrency IS NOT NULL OR q.key_concurrency IS NOT NULL INTO v_counts
  FROM queues AS q WHERE q.name = p_queue FOR UPDATE;
  DELETE FROM queue_releases AS r WHERE r.queue = p_queue;
  DELETE FROM queue_keys AS k WHERE k.queue = p_queue;
  IF coalesce(v_counts, false) THEN
    UPDATE task_queue AS t SET counted = true
    WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing') AND NOT t.counted;
    INSERT INTO queue_keys (queue, concurrency_key, held)
    SELECT p_queue, t.concurrency_key, count(*)
    FROM task_queue AS t
    WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing') AND t.concurrency_key IS NOT NULL
    GROUP BY t.concurrency_key;
    UPDATE queues AS q
    SET held = (SELECT count(*) FROM task_queue AS t WHERE t.queue = p_queue AND t.status IN ('claimed', 'processing'))
    WHERE q.name = p_queue;
  ELSE
    -- The trigger fires on status changes only; clearing the flag here adds no ledger rows.
    UPDATE task_queue AS t SET counted = false WHERE t.queue = p_queue AND t.counted;
    UPDATE queues AS q SET held = 0 WHERE q.name = p_queue;
  END IF;
END
$$;

-- The keys of a queue that have pending jobs, in key order: the first after
-- p_after (from the first key when NULL), at most p_limit of them, none past
-- p_upto (no end when NULL). A skip scan of task_queue_key_claim_idx: one
-- descent per key, whatever the number of jobs per key. Read only.
CREATE FUNCTION skipq_key_walk(p_queue text, p_after text, p_upto text, p_limit integer)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET jit = off
AS $$
BEGIN
  -- plpgsql, not sql: the statement's plan is cached across calls.
  RETURN (
  WITH RECURSIVE walk(k, pos) AS (
    SELECT CASE
             WHEN p_after IS NULL THEN (
               SELECT tq.concurrency_key
               FROM task_queue AS tq
               WHERE tq.status = 'pending'
                 AND tq.concurrency_key IS NOT NULL
                 AND tq.queue = p_queue
               ORDER BY tq.concurrency_key
               LIMIT 1)
             ELSE (
               SELECT tq.concurrency_key
               FROM task_queue AS tq
               WHERE tq.status = 'pending'
                 AND tq.concurrency_key IS NOT NULL
                 AND tq.queue = p_queue
                 AND tq.concurrency_key > p_after
               ORDER BY tq.concurrency_key
               LIMIT 1)
           END,
           1
    UNION ALL
    SELECT (
             SELECT tq.concurrency_key
             FROM task_queue AS tq
             WHERE tq.status = 'pending'
               AND tq.concurrency_key IS NOT NULL
               AND tq.queue = p_queue
               AND tq.concurrency_key > w.k
             ORDER BY tq.concurrency_key
             LIMIT 1),
           w.pos + 1
    FROM walk AS w
    WHERE w.k IS NOT NULL
      AND w.pos < p_limit
      AND (p_upto IS NULL OR w.k < p_upto)
  )
  SELECT coalesce(array_agg(w.k), '{}')
  FROM walk AS w
  WHERE w.k IS NOT NULL
    AND w.pos <= p_limit
    AND (p_upto IS NULL OR w.k <= p_upto)
  );
END
$$;

-- claim, with the queue policies (same arguments and answer as before).
--
-- 1. No queue in the claim's scope has a policy (the usual case, and every
--    queue without a queues row): the claim is the statement of the lifecycle
--    migration, unchanged. The check reads the tiny queues table.
-- 2. Otherwise each limited queue in scope is claimed from on its own, in
--    name order, under its row lock (FOR UPDATE: limited claims of one queue
--    take turns, which is what makes the limits hold under concurrent claims;
--    claims never wait for job rows, so they cannot deadlock): the ledger is
--    folded, the room left by the concurrency limit and the rate window is
--    worked out, at most that many jobs are claimed, and the counters go up.
--    With key_concurrency, the jobs that have a key come first, key by key
--    (below), then the queue's jobs without a key fill what room is left.
--    Paused queues are skipped. Then the rest of the batch comes from every
--    other queue in scope with the plain statement, the limited and paused
--    queues excluded. Jobs of limited queues thus come first in a mixed
--    batch; the priority order holds within each queue (within each key, for
--    keyed jobs).
CREATE OR REPLACE FUNCTION skipq_claim(
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
SET jit = off
AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, skipq_now());
  v_left integer := greatest(p_max_tasks, 0);
  v_skip text[] := '{}';
  v_name text;
  q queues%ROWTYPE;
  v_allow integer;
  v_counts boolean;
  v_window timestamptz;
  v_used integer;
  v_n integer;
  v_keyed integer;
  v_visits integer;
  v_keys text[];
BEGIN
  IF NOT EXISTS (
    SELECT 1
    FROM queues AS pq
    WHERE (pq.paused OR pq.concurrency IS NOT NULL OR pq.rate_max IS NOT NULL OR pq.key_concurrency IS NOT NULL)
      AND (p_queues IS NULL OR pq.name = ANY (p_queues))
  ) THEN
    RETURN QUERY
    WITH next AS (
      SELECT tq.id
      FROM task_queue AS tq
      WHERE tq.status = 'pending'
        AND tq.scheduled_for <= v_now
        AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        AND (p_queues IS NULL OR tq.queue = ANY (p_queues))
      ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
      LIMIT v_left
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
    RETURN;
  END IF;

  FOR v_name IN
    SELECT pq.name
    FROM queues AS pq
    WHERE (pq.paused OR pq.concurrency IS NOT NULL OR pq.rate_max IS NOT NULL OR pq.key_concurrency IS NOT NULL)
      AND (p_queues IS NULL OR pq.name = ANY (p_queues))
    ORDER BY pq.name
  LOOP
    v_skip := v_skip || v_name;
    CONTINUE WHEN v_left = 0;
    -- The row as it is once locked: a configure or pause that committed while
    -- this claim waited is what counts.
    SELECT * INTO q FROM queues AS pq WHERE pq.name = v_name FOR UPDATE;
    CONTINUE WHEN q.paused;
    v_counts := q.concurrency IS NOT NULL OR q.key_concurrency IS NOT NULL;
    IF v_counts THEN
      q.held := q.held - skipq_fold_releases(v_name);
    END IF;
    v_allow := v_left;
    IF q.concurrency IS NOT NULL THEN
      v_allow := least(v_allow, q.concurrency - q.held);
    END IF;
    v_window := q.rate_window_start;
    v_used := q.rate_window_count;
    IF q.rate_max IS NOT NULL THEN
      -- Fixed windows of rate_period_ms, back to back from the first claim:
      -- at most rate_max claims start in each.
      IF v_window IS NULL OR v_now >= v_window + q.rate_period_ms * interval '1 millisecond' THEN
        v_window := CASE
          WHEN v_window IS NULL THEN v_now
          ELSE v_window + floor(extract(epoch FROM v_now - v_window) * 1000 / q.rate_period_ms) * q.rate_period_ms * interval '1 millisecond'
        END;
        v_used := 0;
      END IF;
      v_allow := least(v_allow, q.rate_max - v_used);
    END IF;
    v_n := 0;
    v_keyed := 0;
    IF v_allow > 0 AND q.key_concurrency IS NOT NULL THEN
      -- Keys take turns: the keys with pending jobs in key order, from the one
      -- after the key served last (key_cursor) round to the cursor itself, at
      -- most v_allow * 2 + 16 of them (a key that is full or has nothing due
      -- costs a visit and gives nothing).
      v_visits := v_allow * 2 + 16;
      v_keys := skipq_key_walk(v_name, q.key_cursor, NULL, v_visits);
      IF q.key_cursor IS NOT NULL AND cardinality(v_keys) < v_visits THEN
        v_keys := v_keys || skipq_key_walk(v_name, NULL, q.key_cursor, v_visits - cardinality(v_keys));
      END IF;
      IF cardinality(v_keys) > 0 THEN
        -- Each visited key, in walk order, gives its first jobs up to its room
        -- (key_concurrency less its held jobs) until the batch is full. The
        -- nested loop over the keys stops pulling once v_allow jobs are
        -- locked, so keys past that point are neither read nor locked. The
        -- cursor moves to the last key served, or, when none gave a job, to
        -- the last key visited.
        RETURN QUERY
        WITH next AS (
          SELECT j.id, u.ord
          FROM unnest(v_keys) WITH ORDINALITY AS u(k, ord)
          CROSS JOIN LATERAL (
            SELECT tq.id
            FROM task_queue AS tq
            WHERE tq.status = 'pending'
              AND tq.concurrency_key IS NOT NULL
              AND tq.queue = v_name
              AND tq.concurrency_key = u.k
              AND tq.scheduled_for <= v_now
              AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
            ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
            LIMIT greatest(q.key_concurrency - coalesce((
              SELECT qk.held
              FROM queue_keys AS qk
              WHERE qk.queue = v_name
                AND qk.concurrency_key = u.k
            ), 0), 0)
            FOR UPDATE SKIP LOCKED
          ) AS j
          LIMIT v_allow
        ),
        moved AS (
          UPDATE task_queue AS t
          SET status = 'claimed',
              worker_id = p_worker_id,
              attempt = t.attempt + 1,
              started_at = v_now,
              lease_expires_at = v_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
              ended_by = NULL,
              counted = true,
              updated_at = v_now
          FROM next
          WHERE t.id = next.id
          RETURNING t.*
        ),
        bumped AS (
          INSERT INTO queue_keys AS qk (queue, concurrency_key, held)
          SELECT v_name, m.concurrency_key, count(*)::integer
          FROM moved AS m
          GROUP BY m.concurrency_key
          ON CONFLICT (queue, concurrency_key) DO UPDATE SET held = qk.held + EXCLUDED.held
        ),
        turned AS (
          UPDATE queues AS uq
          SET key_cursor = v_keys[coalesce((SELECT max(n.ord) FROM next AS n), cardinality(v_keys))]
          WHERE uq.name = v_name
        )
        SELECT m.* FROM moved AS m;
        GET DIAGNOSTICS v_keyed = ROW_COUNT;
      END IF;
    END IF;
    IF v_allow - v_keyed > 0 THEN
      -- The queue's jobs without a key (all of them when it has no key limit).
      -- In a keyed queue this walks task_queue_claim_idx past the queue's
      -- keyed jobs (a filter, not an index bound): measured 3 to 4.5 ms with
      -- 9,000 keyed jobs pending, on each claim the keys did not fill. An
      -- index over pending jobs without a key would make every plain enqueue
      -- pay for it, so it is not built.
      RETURN QUERY
      WITH next AS (
        SELECT tq.id
        FROM task_queue AS tq
        WHERE tq.status = 'pending'
          AND tq.scheduled_for <= v_now
          AND tq.queue = v_name
          AND (q.key_concurrency IS NULL OR tq.concurrency_key IS NULL)
          AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
        LIMIT v_allow - v_keyed
        FOR UPDATE SKIP LOCKED
      )
      UPDATE task_queue AS t
      SET status = 'claimed',
          worker_id = p_worker_id,
          attempt = t.attempt + 1,
          started_at = v_now,
          lease_expires_at = v_now + least(p_lease_ms, coalesce(t.timeout_ms, p_lease_ms)) * interval '1 millisecond',
          ended_by = NULL,
          counted = v_counts,
          updated_at = v_now
      FROM next
      WHERE t.id = next.id
      RETURNING t.*;
      GET DIAGNOSTICS v_n = ROW_COUNT;
    END IF;
    v_n := v_n + v_keyed;
    UPDATE queues AS uq
    SET held = CASE WHEN v_counts THEN q.held + v_n ELSE uq.held END,
        rate_window_start = v_window,
        rate_window_count = v_used + v_n
    WHERE uq.name = v_name;
    v_left := v_left - v_n;
  END LOOP;

  IF v_left > 0 THEN
    RETURN QUERY
    WITH next AS (
      SELECT tq.id
      FROM task_queue AS tq
      WHERE tq.status = 'pending'
        AND tq.scheduled_for <= v_now
        AND (p_task_types IS NULL OR tq.task_type = ANY (p_task_types))
        AND (p_queues IS NULL OR tq.queue = ANY (p_queues))
        AND NOT (tq.queue = ANY (v_skip))
      ORDER BY tq.priority DESC, tq.scheduled_for, tq.id
      LIMIT v_left
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
  END IF;
END
$$;
