// Processes ingestion jobs until Ctrl-C (which finishes running jobs first).
// Run: npx tsx examples/ingestion/worker.ts
import { createWorker } from '../../client/index.js';
import { jobs } from './jobs.js';

const url = process.env.SKIPQ_URL ?? 'http://127.0.0.1:3000/trpc';

const worker = createWorker({
  url,
  jobs,
  apiKey: process.env.SKIPQ_API_KEY,
  concurrency: 4,
  handlers: {
    // payload is typed { chainId: string; targetDate: string } from the registry.
    async ingestion({ chainId, targetDate }, ctx) {
      console.log(`ingesting ${chainId} for ${targetDate} (attempt ${ctx.attempt})`);
      await new Promise((r) => setTimeout(r, 100));
      ctx.progress({ step: 'parsed' });
      return { rows: chainId.length * 100 };
    },
  },
  onEvent(event) {
    if (event.kind === 'completed') console.log(`completed ${event.id}`);
    else if (event.kind === 'failed') console.log(`failed ${event.id}: ${event.error}${event.willRetry ? ' (will retry)' : ''}`);
    else if (event.kind === 'error') console.error('worker error:', (event.error as Error).message);
  },
});

worker.start();
console.log(`worker ${worker.workerId} polling ${url}`);
const stop = (): void => {
  console.log('stopping: finishing running jobs');
  void worker.stop().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
