import type pg from 'pg';

/**
 * Records, on every claim (a job going pending -> claimed), how many jobs of
 * the claimed job's queue and of its concurrency key are held at that moment,
 * counted from task_queue itself (not from the counters the claim keeps).
 */
export async function installClaimAudit(pool: pg.Pool): Promise<void> {
  await pool.query(`
CREATE TABLE IF NOT EXISTS claim_audit (
  seq bigserial PRIMARY KEY,
  queue text NOT NULL,
  concurrency_key text,
  queue_held int NOT NULL,
  key_held int NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION audit_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO claim_audit (queue, concurrency_key, queue_held, key_held)
  SELECT NEW.queue, NEW.concurrency_key,
         (SELECT count(*) FROM task_queue WHERE queue = NEW.queue AND status IN ('claimed', 'processing')),
         (SELECT count(*) FROM task_queue WHERE queue = NEW.queue AND concurrency_key IS NOT DISTINCT FROM NEW.concurrency_key AND status IN ('claimed', 'processing'));
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS audit_claim ON task_queue;
CREATE TRIGGER audit_claim AFTER UPDATE ON task_queue
  FOR EACH ROW WHEN (NEW.status = 'claimed' AND OLD.status = 'pending')
  EXECUTE FUNCTION audit_claim();`);
}
