import type pg from 'pg';

/**
 * Records every transition into `completed` in an audit table, by trigger, so a
 * test can tell "completed once" from "completed, then completed again" (the
 * row itself only shows the last write).
 */
export async function installCompletionAudit(pool: pg.Pool): Promise<void> {
  await pool.query(`
CREATE TABLE IF NOT EXISTS completion_audit (
  seq bigserial PRIMARY KEY,
  job_id text NOT NULL,
  attempt int NOT NULL,
  worker_id text,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION audit_completion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO completion_audit (job_id, attempt, worker_id) VALUES (NEW.id, NEW.attempt, NEW.worker_id);
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS audit_completion ON task_queue;
CREATE TRIGGER audit_completion AFTER UPDATE ON task_queue
  FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status <> 'completed')
  EXECUTE FUNCTION audit_completion();`);
}

/** What the audit says about completions. */
export interface AuditSummary {
  /** Rows in the audit: completions stored. */
  completions: number;
  /** Distinct jobs completed. */
  jobs: number;
  /** Jobs completed more than once. */
  duplicates: number;
}

export async function auditSummary(pool: pg.Pool): Promise<AuditSummary> {
  const { rows } = await pool.query<AuditSummary>(`
SELECT count(*)::int AS completions,
       count(DISTINCT job_id)::int AS jobs,
       (SELECT count(*)::int FROM (SELECT job_id FROM completion_audit GROUP BY job_id HAVING count(*) > 1) d) AS duplicates
FROM completion_audit`);
  return rows[0] as AuditSummary;
}

/** Empties the queue and the audit between tests. */
export async function resetQueue(pool: pg.Pool): Promise<void> {
  await pool.query('TRUNCATE task_queue, completion_audit');
}
