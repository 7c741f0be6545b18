import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

/**
 * The registry of test/schedules.test.ts, also loaded by its server child
 * processes (SKIPQ_JOBS): `report` has a schedule every second.
 */
export const cronJobs = defineJobs({
  report: {
    payload: z.object({ kind: z.enum(['daily', 'hourly', 'second']) }),
    queue: 'reports',
    schedules: [{ name: 'every-second', cron: '* * * * * *', payload: { kind: 'second' } }],
  },
  digest: { payload: z.object({ to: z.string() }) },
});

export default cronJobs;
