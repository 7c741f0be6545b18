// The bench's job registry, shared by the skipq server (--jobs), producer and worker.
import { z } from 'zod';
import { defineJobs } from '../shared/index.js';

export const jobs = defineJobs({
  bench: {
    // n: the job's index, to count executions; t: enqueue time for W4 latency.
    payload: z.object({ n: z.number().int().min(0), t: z.number().optional() }),
  },
});

export default jobs;
