import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

/** The registry of the flows and attempt-history examples (README "Flows", "Attempt history"). */
export const jobs = defineJobs({
  // One chain's prices for a day; the parent sums what its children found.
  ingestion: {
    payload: z.object({ chainId: z.string().min(1), targetDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/) }),
    result: z.object({ rows: z.number().int() }),
    maxRetries: 2,
    backoff: { kind: 'fixed', delayMs: 100 },
  },
  'daily-report': {
    payload: z.object({ targetDate: z.string() }),
    result: z.object({ rows: z.number().int(), chains: z.number().int(), failed: z.array(z.string()) }),
  },
});

export default jobs;
