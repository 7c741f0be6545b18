// A module for `skipq worker <module>` in test/cli.test.ts: the registry and its handlers.
import { z } from 'zod';
import { defineJobs } from '../../shared/index.js';

export const jobs = defineJobs({
  double: { payload: z.object({ n: z.number() }), result: z.object({ doubled: z.number() }), queue: 'cli' },
});

export const handlers = {
  double: async ({ n }: { n: number }) => ({ doubled: n * 2 }),
};
