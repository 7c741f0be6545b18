import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: more parallel files only make the timing-sensitive suites flaky.
    maxWorkers: 2,
    // test/*.test-d.ts are compiled by test/types.test.ts (tsc), not by vitest's typecheck mode.
  },
});
