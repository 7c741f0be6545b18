import { createWorker, type Worker, type WorkerOptions } from '../../client/index.js';
import type { JobDefinitions } from '../../shared/index.js';

/**
 * Workers for a test file's server: `spawn` starts one (waitMs 500 unless
 * given), `stopAll` stops every one started since the last call (beforeEach,
 * or inside a test that must see them stopped).
 */
export function workerSpawner<R extends JobDefinitions>(url: () => string, jobs: R) {
  const running: Worker[] = [];
  return {
    spawn(options: Partial<WorkerOptions<R>> & Pick<WorkerOptions<R>, 'handlers'>): Worker {
      const w = createWorker({ url: url(), jobs, waitMs: 500, ...options });
      running.push(w);
      w.start();
      return w;
    },
    stopAll: async (): Promise<void> => {
      await Promise.all(running.splice(0).map((w) => w.stop()));
    },
  };
}
