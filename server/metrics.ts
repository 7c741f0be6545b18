import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, type CounterConfiguration } from 'prom-client';
import type { RetentionReport } from './retention.js';

/**
 * The server's Prometheus metrics, in a registry of its own (several servers in
 * one process do not collide). Counters are incremented where the moves happen,
 * through children cached per label set: a job costs one Map lookup and one
 * addition, no label hashing. Depth, age and held jobs are computed on scrape,
 * by one bounded query.
 *
 * Cardinality is bounded: queue and type values come from the registry and
 * the callers' queue names, so each labelled family keeps at most
 * {@link MAX_LABEL_SETS} label sets; jobs of any further (queue, type) are
 * counted under the value `_other` for every label, and the scrape stays small
 * whatever names callers invent.
 */
export interface ServerMetrics {
  readonly registry: Registry;
  enqueued(queue: string, type: string, n?: number): void;
  claimed(queue: string, type: string, n?: number): void;
  completed(queue: string, type: string, n?: number): void;
  failed(queue: string, type: string, n?: number): void;
  retried(queue: string, type: string, n?: number): void;
  rescued(outcome: 'pending' | 'failed', n: number): void;
  /** One tRPC call answered: its procedure and tRPC code ('OK' on success). */
  request(procedure: string, code: string): void;
  /** Seconds one claim statement took (not the long-poll wait between statements). */
  claimSeconds(seconds: number): void;
  /** One retention pass that held the lock ended at `at`, having deleted what `report` says. */
  retention(report: RetentionReport, at: Date): void;
  /** The exposition text, with the gauges read now. */
  scrape(): Promise<string>;
}

type Child = { inc(n?: number): void };

/** Label sets one counter family keeps before folding new ones into `_other`. */
export const MAX_LABEL_SETS = 1000;
/** The label value of every label set past {@link MAX_LABEL_SETS}. */
export const OVERFLOW_LABEL = '_other';

/** A counter whose children are made once per label set, at most MAX_LABEL_SETS of them. */
function cachedCounter(config: CounterConfiguration<string>): (labels: string[], n?: number) => void {
  const counter = new Counter(config);
  const children = new Map<string, Child>();
  let overflow: Child | undefined;
  return (labels, n = 1) => {
    const key = labels.join('\u0000');
    let child = children.get(key);
    if (!child) {
      if (children.size >= MAX_LABEL_SETS) {
        overflow ??= counter.labels(...labels.map(() => OVERFLOW_LABEL));
        child = overflow;
      } else {
        child = counter.labels(...labels);
        children.set(key, child);
      }
    }
    child.inc(n);
  };
}

// Live rows only (the partial claim index covers pending ones); one row per queue, at most 1000 queues.
const SCRAPE_SQL = `
SELECT queue,
       count(*) FILTER (WHERE status = 'pending')::int AS pending,
       count(*) FILTER (WHERE status IN ('claimed', 'processing'))::int AS held,
       COALESCE(EXTRACT(EPOCH FROM now() - min(scheduled_for) FILTER (WHERE status = 'pending' AND scheduled_for <= now())), 0)::float8 AS oldest
FROM task_queue
WHERE status IN ('pending', 'claimed', 'processing')
GROUP BY queue
ORDER BY queue
LIMIT 1000`;

/** Creates the metrics of one server over `pool`. */
export function createMetrics(pool: pg.Pool): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  const enqueued = cachedCounter({ name: 'skipq_jobs_enqueued_total', help: 'Jobs inserted by enqueue', labelNames: ['queue', 'type'], registers });
  const claimed = cachedCounter({ name: 'skipq_jobs_claimed_total', help: 'Jobs handed to workers by claim', labelNames: ['queue', 'type'], registers });
  const completed = cachedCounter({ name: 'skipq_jobs_completed_total', help: 'Jobs completed by their worker', labelNames: ['queue', 'type'], registers });
  const failed = cachedCounter({ name: 'skipq_jobs_failed_total', help: 'Jobs failed for good (no retry left, or not retried)', labelNames: ['queue', 'type'], registers });
  const retried = cachedCounter({ name: 'skipq_jobs_retried_total', help: 'Failed attempts sent back to pending for a retry', labelNames: ['queue', 'type'], registers });
  const rescued = cachedCounter({ name: 'skipq_jobs_rescued_total', help: 'Jobs whose lease expired, taken back by the rescuer (outcome: pending again, or failed)', labelNames: ['outcome'], registers });
  const requests = cachedCounter({ name: 'skipq_http_requests_total', help: 'tRPC calls answered, by procedure and tRPC code', labelNames: ['procedure', 'code'], registers });
  // Unlabelled: one histogram, observed once per claim statement (long-polls poll every pollIntervalMs).
  const claimDuration = new Histogram({
    name: 'skipq_claim_duration_seconds',
    help: 'Time of one claim statement (with the completions it carried), without the long-poll wait',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const depth = new Gauge({ name: 'skipq_queue_depth', help: 'Pending jobs per queue (due or scheduled)', labelNames: ['queue'], registers });
  const oldest = new Gauge({ name: 'skipq_queue_oldest_pending_age_seconds', help: 'Age of the oldest due pending job per queue', labelNames: ['queue'], registers });
  const held = new Gauge({ name: 'skipq_jobs_held', help: 'Jobs claimed or processing per queue', labelNames: ['queue'], registers });
  // Retention: what it deletes (a rate per queue) and whether it runs at all (an alert on the timestamp's age).
  const retentionDeleted = cachedCounter({
    name: 'skipq_retention_deleted_total',
    help: 'Finished jobs deleted by retention, per queue (kind: finished = completed or cancelled, failed)',
    labelNames: ['queue', 'kind'],
    registers,
  });
  const retentionLastRun = new Gauge({ name: 'skipq_retention_last_run_timestamp_seconds', help: 'When the last retention pass on this server ended (Unix time; 0: none yet)', registers });
  const retentionLastDeleted = new Gauge({ name: 'skipq_retention_last_run_deleted', help: 'Jobs the last retention pass on this server deleted (all queues)', registers });
  const retentionLastComplete = new Gauge({ name: 'skipq_retention_last_run_complete', help: '1 when the last retention pass deleted everything due, 0 when it stopped at its cap (more is due)', registers });
  const poolGauge = new Gauge({ name: 'skipq_db_pool_connections', help: 'PostgreSQL pool connections (state: total, idle, waiting clients)', labelNames: ['state'], registers });

  return {
    registry,
    enqueued: (queue, type, n) => enqueued([queue, type], n),
    claimed: (queue, type, n) => claimed([queue, type], n),
    completed: (queue, type, n) => completed([queue, type], n),
    failed: (queue, type, n) => failed([queue, type], n),
    retried: (queue, type, n) => retried([queue, type], n),
    rescued: (outcome, n) => rescued([outcome], n),
    request: (procedure, code) => requests([procedure, code]),
    claimSeconds: (seconds) => claimDuration.observe(seconds),
    retention(report, at) {
      for (const [queue, n] of Object.entries(report.byQueue)) {
        if (n.deleted > 0) retentionDeleted([queue, 'finished'], n.deleted);
        if (n.deletedFailed > 0) retentionDeleted([queue, 'failed'], n.deletedFailed);
      }
      retentionLastRun.set(at.getTime() / 1000);
      retentionLastDeleted.set(report.deleted + report.deletedFailed);
      retentionLastComplete.set(report.complete ? 1 : 0);
    },
    async scrape() {
      poolGauge.set({ state: 'total' }, pool.totalCount);
      poolGauge.set({ state: 'idle' }, pool.idleCount);
      poolGauge.set({ state: 'waiting' }, pool.waitingCount);
      const { rows } = await pool.query<{ queue: string; pending: number; held: number; oldest: number }>(SCRAPE_SQL);
      depth.reset();
      oldest.reset();
      held.reset();
      for (const r of rows) {
        depth.set({ queue: r.queue }, r.pending);
        oldest.set({ queue: r.queue }, r.oldest);
        held.set({ queue: r.queue }, r.held);
      }
      return registry.metrics();
    },
  };
}
