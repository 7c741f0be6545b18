import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

/** The price-ingestion registry, shared by the server (--jobs), the producer and the worker. */
export const jobs = defineJobs({
  ingestion: {
    payload: z.object({
      chainId: z.string().min(1),
      targetDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date as YYYY-MM-DD'),
    }),
    result: z.object({ rows: z.number().int().min(0) }),
    queue: 'ingestion',
    priority: 5,
    maxRetries: 3,
    backoff: { kind: 'exponential', delayMs: 1000, maxDelayMs: 60_000, jitter: 0.2 },
  },
});

export default jobs;
