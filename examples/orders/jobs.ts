// The orders example's registry, shared by the server (--jobs), the producer and the worker.
import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

export const jobs = defineJobs({
  'send-receipt': {
    payload: z.object({ orderId: z.number().int().positive(), email: z.email() }),
    // What the producer awaits, typed and validated at both ends.
    result: z.object({ sentTo: z.string(), receiptNo: z.string() }),
    queue: 'mail',
    maxRetries: 3,
    backoff: { kind: 'exponential', delayMs: 1000 },
  },
});

export default jobs;
