-- Per-job timeouts and machine-readable failure codes.
--
-- timeout_ms: how long one attempt may run, from its claim (NULL: no limit).
-- Set at enqueue from the call or the job type's registry entry. A heartbeat
-- never extends a lease past claim time + timeout_ms, so a handler that never
-- returns cannot hold its job forever, even on a worker that keeps heartbeating.
ALTER TABLE "task_queue" ADD COLUMN "timeout_ms" INTEGER;
ALTER TABLE "task_queue" ADD CONSTRAINT "task_queue_timeout_check"
  CHECK ("timeout_ms" IS NULL OR "timeout_ms" > 0);

-- error_code: why the last attempt failed, as a code a program can branch on
-- (shared/errors.ts FAILURE_CODES: HANDLER_ERROR, TIMEOUT, INVALID_RESULT, ...);
-- error_message keeps the human-readable text. NULL for the established
-- fail_task, which has no code.
ALTER TABLE "task_queue" ADD COLUMN "error_code" TEXT;
