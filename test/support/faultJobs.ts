import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

/**
 * The registry of the fault-injection suites (crash.test.ts, faults.test.ts),
 * shared by the test process and the worker child processes (workerProcess.ts).
 * `work` sleeps `ms` (cut short by the job's AbortSignal); with `hold: 'cont'`
 * its first attempt waits for the process to receive SIGCONT instead.
 */
export const faultJobs = defineJobs({
  work: {
    payload: z.object({ n: z.number().int(), ms: z.number().int().min(0).default(0), hold: z.enum(['cont']).optional() }),
    result: z.object({ n: z.number().int() }),
    maxRetries: 5,
    backoff: { kind: 'fixed', delayMs: 50 },
  },
});
