// Sends receipts until Ctrl-C, reporting progress as it goes.
// Run: npx tsx examples/orders/worker.ts
import { createWorker } from '../../client/index.js';
import { jobs } from './jobs.js';

const worker = createWorker({
  url: process.env.SKIPQ_URL ?? 'http://127.0.0.1:3000/trpc',
  jobs,
  apiKey: process.env.SKIPQ_API_KEY,
  concurrency: 8,
  handlers: {
    // payload is typed { orderId: number; email: string }; the return value is checked against the result schema.
    async 'send-receipt'({ orderId, email }, ctx) {
      ctx.progress({ step: 'rendering', orderId });
      await new Promise((r) => setTimeout(r, 50));
      ctx.progress({ step: 'sending', to: email });
      await new Promise((r) => setTimeout(r, 50));
      return { sentTo: email, receiptNo: `R-${orderId}-${ctx.attempt}` };
    },
  },
  onEvent(event) {
    if (event.kind === 'completed') console.log(`sent receipt for job ${event.id}`);
    else if (event.kind === 'failed') console.log(`failed ${event.id}: ${event.error}${event.willRetry ? ' (will retry)' : ''}`);
  },
});

worker.start();
process.once('SIGINT', () => void worker.stop().then(() => process.exit(0)));
process.once('SIGTERM', () => void worker.stop().then(() => process.exit(0)));
