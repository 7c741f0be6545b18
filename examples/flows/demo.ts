// npx tsx examples/flows/demo.ts (DATABASE_URL set, or an embedded PostgreSQL under .data)
// Starts a server and a worker with the registry of ./jobs.ts, runs a flow
// (a daily report over three ingestions, one of which fails twice before it
// works), and prints the report and one child's attempt history.
import { createQueueClient, createWorker } from '../../client/index.js';
import { createQueueServer } from '../../server/app.js';
import { jobs } from './jobs.js';

const server = await createQueueServer({ jobs, port: 0, log: () => {}, ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}) });
const worker = createWorker({
  url: server.url,
  jobs,
  workerId: 'demo-worker',
  // The failing attempts are the point of the demo: no warnings on stderr.
  logger: { debug() {}, info() {}, warn() {}, error() {} },
  handlers: {
    ingestion: async ({ chainId }, ctx) => {
      if (chainId === 'lidl' && ctx.attempt < 3) throw new Error(`lidl's feed timed out (attempt ${ctx.attempt})`);
      return { rows: chainId.length * 100 };
    },
    // Runs once, after its last child finished; ctx.children() has each child's typed result.
    'daily-report': async (_payload, ctx) => {
      const children = await ctx.children();
      let rows = 0;
      for (const child of children) if (child.type === 'ingestion' && child.result) rows += child.result.rows;
      return { rows, chains: children.length, failed: children.filter((c) => c.status !== 'completed').map((c) => c.id) };
    },
  },
});
const queue = createQueueClient({ url: server.url, jobs });
try {
  const targetDate = '2026-01-23';
  const flow = await queue.enqueueFlow({
    parent: { type: 'daily-report', payload: { targetDate }, onChildFailure: 'continue' },
    children: ['konzum', 'lidl', 'spar'].map((chainId) => ({ type: 'ingestion' as const, payload: { chainId, targetDate } })),
  });
  const { reasons } = await queue.explain(flow.id);
  console.log('right after enqueueFlow:', reasons.map((r) => `${r.code}: ${r.message}`).join('; '));
  // Started only now, so the line above always sees all three children still to run.
  worker.start();

  const report = await queue.result(flow.id, { timeoutMs: 30_000 });
  console.log('report:', report);

  const lidl = flow.children[1]!;
  for (const a of await queue.attempts(lidl.id)) {
    console.log(`lidl attempt ${a.attempt} on ${a.workerId}: ${a.outcome} after ${a.finishedAt.getTime() - (a.startedAt?.getTime() ?? 0)} ms${a.error ? ` (${a.error})` : ''}`);
  }
} finally {
  await queue.close();
  await worker.stop();
  await server.close();
}
