import type { ChildView, ClaimedJob } from '../../shared/index.js';
import { InvalidResultError } from '../errors.js';
import type { SkipqTrpc } from '../trpc.js';
import type { WorkerConfig } from './config.js';

/** Reads the children of a job this worker holds, for its handler's `ctx.children()`. */
export type ChildReader = (job: ClaimedJob, signal: AbortSignal) => Promise<ChildView[]>;

/**
 * Creates the reader: pages through `worker.children` (the server answers only
 * the holder of the attempt), then parses each completed child's result with
 * its type's result schema, as `queue.result()` does: a result read back is
 * unknown until parsed. A result that fails the schema (worker and producer
 * registries differ) rejects with {@link InvalidResultError}.
 */
export function createChildReader(trpc: SkipqTrpc, config: WorkerConfig): ChildReader {
  return async (job, signal) => {
    const children: ChildView[] = [];
    let cursor: string | undefined;
    do {
      const page = await trpc.worker.children.query({ workerId: config.workerId, id: job.id, attempt: job.attempt, ...(cursor ? { cursor } : {}) }, { signal });
      children.push(...page.children);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return children.map((child) => {
      const schema = config.registry[child.type]?.result;
      if (child.status !== 'completed' || !schema) return child;
      const parsed = schema.safeParse(child.result);
      if (!parsed.success) throw new InvalidResultError(child, parsed.error.issues.map((i) => ({ path: i.path, message: i.message })));
      return { ...child, result: parsed.data };
    });
  };
}
