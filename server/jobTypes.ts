import { z } from 'zod';
import type { JobRegistry } from '../shared/index.js';
import type { Db } from './db/pool.js';
import { defaultsOf } from './registryCheck.js';
import { jobTypesSync, type JobTypeWrite } from './queries/jobTypes.js';
import { queuesRecount } from './queries/queues.js';

// The registry as the database sees it (job_types), so that SQL callers
// (schedule_task, enqueue_job in the 20261201000500_registry_sql migration)
// get the same defaults and the same refusal of unknown types as HTTP callers.

/**
 * A payload schema as JSON Schema: what a producer sends (zod's input side, so
 * a transform is described by what it accepts). A schema with parts JSON
 * Schema cannot say (a date, a bigint, a custom type) is written with those
 * parts as `{}` (any value) and `complete: false`; refinements are left out
 * without a mark (JSON Schema has no place for code). The worker still checks
 * every payload with the zod schema itself.
 */
export function payloadJsonSchema(schema: z.ZodType): { schema: unknown; complete: boolean } {
  try {
    return { schema: z.toJSONSchema(schema, { io: 'input' }), complete: true };
  } catch {
    try {
      return { schema: z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }), complete: false };
    } catch {
      return { schema: {}, complete: false };
    }
  }
}

/** What job_types should hold for `registry`, one row per type. */
export function jobTypeWrites(registry: JobRegistry): JobTypeWrite[] {
  return Object.entries(registry).map(([name, def]) => {
    const payload = payloadJsonSchema(def.payload);
    const defaults = defaultsOf(def);
    return {
      name,
      queue: defaults.queue,
      priority: defaults.priority,
      maxRetries: defaults.maxRetries,
      backoffJson: def.backoff ? JSON.stringify(def.backoff) : null,
      timeoutMs: defaults.timeoutMs,
      keyConcurrency: def.keyConcurrency ?? null,
      payloadSchemaJson: JSON.stringify(payload.schema),
      schemaComplete: payload.complete,
    };
  });
}

/**
 * Records the server's registry in job_types at start (see the migration for
 * what a loaded registry changes). Without a registry nothing is written: the
 * database keeps the registry of the last server that had one. Idempotent: an
 * unchanged type is not written. A queue whose counting a type's
 * keyConcurrency changed is recounted (skipq_queue_recount), so its key
 * counters hold the jobs already running and no ledger is left unfolded.
 */
export async function recordJobTypes(db: Db, registry: JobRegistry | null): Promise<{ written: string[]; removed: string[] }> {
  if (!registry) return { written: [], removed: [] };
  const { written, removed, rekeyed } = await jobTypesSync(db, jobTypeWrites(registry));
  if (rekeyed.length > 0) await queuesRecount(db, rekeyed);
  return { written, removed };
}
