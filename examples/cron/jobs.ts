import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

/** The registry of the cron, debounce and throttle examples (README "Cron", "Debounce and throttle"). */
export const jobs = defineJobs({
  report: {
    payload: z.object({ kind: z.enum(['nightly', 'hourly', 'tick']) }),
    // Upserted by every server at start; one job per tick however many servers run.
    schedules: [{ name: 'nightly-report', cron: '0 3 * * *', timezone: 'Europe/Zagreb', payload: { kind: 'nightly' }, catchUp: 'latest', allowOverlap: false }],
  },
  reindex: { payload: z.object({ doc: z.string(), rev: z.number().int() }) },
});

export default jobs;
