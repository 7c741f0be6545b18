import { z } from 'zod';
import { clockOf } from '../clock.js';
import { workerList } from '../queries/workers.js';
import { adminProcedure, router } from '../trpc.js';

/** Input of `workers.list`: how far back a worker counts as seen (default 5 minutes, at most an hour). */
export const workerListInputSchema = z
  .object({ windowMs: z.number().int().min(1_000).max(3_600_000).default(300_000) })
  .strict()
  .default({ windowMs: 300_000 });

// Bounds of one call (see server/queries/workers.ts for what they cost).
const HELD_LIMIT = 10_000;
const COMPLETED_LIMIT = 2_000;
const WORKER_LIMIT = 500;

/** One worker as `workers.list` answers it. */
export interface WorkerView {
  /** As stored in the jobs: `<keyId>/<workerId>` for a worker that calls with an API key. */
  workerId: string;
  /** Jobs it holds now (claimed or processing). */
  held: number;
  /** Jobs it completed within the window (of the newest completions read). */
  completed: number;
  queues: string[];
  /** Its latest claim, start or heartbeat of a job it holds, or completion of one. */
  lastSeenAt: Date;
  /** Its latest claim among those jobs. */
  lastClaimAt: Date | null;
  /** The latest lease among the jobs it holds: heartbeats move it forward. */
  leaseExpiresAt: Date | null;
  /** Up to 5 of the jobs it holds, newest claim first. */
  heldJobIds: string[];
}

/** What `workers.list` answers. `truncated`: a bound was reached, so counts and the list may be short. */
export interface WorkerListAnswer {
  workers: WorkerView[];
  windowMs: number;
  truncated: boolean;
}

/** The workers the server can see, read from the jobs they hold and finished (admin keys). */
export const workersRouter = router({
  /**
   * Workers holding jobs now or that completed one in the last `windowMs`,
   * most recently seen first. skipq keeps no list of workers: one that
   * claimed nothing, or whose jobs all failed, is not seen. A key limited to
   * some queues sees only its queues' jobs.
   */
  list: adminProcedure.input(workerListInputSchema).query(async ({ ctx, input }): Promise<WorkerListAnswer> => {
    const rows = await workerList(ctx.deps.db, {
      windowMs: input.windowMs,
      queues: ctx.principal.queues,
      heldLimit: HELD_LIMIT,
      completedLimit: COMPLETED_LIMIT,
      workerLimit: WORKER_LIMIT + 1,
      now: clockOf(ctx.deps),
    });
    const first = rows[0];
    const truncated = rows.length > WORKER_LIMIT || (first !== undefined && (first.held_scanned >= HELD_LIMIT || first.completed_scanned >= COMPLETED_LIMIT));
    return {
      workers: rows.slice(0, WORKER_LIMIT).map((r) => ({
        workerId: r.worker_id,
        held: r.held,
        completed: r.completed,
        queues: r.queues,
        lastSeenAt: r.last_seen_at,
        lastClaimAt: r.last_claim_at,
        leaseExpiresAt: r.lease_expires_at,
        heldJobIds: r.held_job_ids ?? [],
      })),
      windowMs: input.windowMs,
      truncated,
    };
  }),
});
