/**
 * A worker in its own process, for the fault-injection suites: started with
 * `node --import tsx test/support/workerProcess.ts` (see processes.ts) so that a
 * signal reaches the worker itself, not a wrapper. Configured by environment:
 *
 *   SKIPQ_URL (required), WORKER_ID, CONCURRENCY (8), LEASE_MS (1500),
 *   WAIT_MS (1000), GRACE_MS (30000), EXTRA_MS (0: added to every job's `ms`)
 *
 * Prints one JSON object per line on stdout, each with `ev` and `t` (ms epoch):
 *   ready { workerId, pid } · exec { id, attempt, n } (a handler began)
 *   handled { id, attempt, aborted } (it returned; aborted: its signal had fired)
 *   completed { id, attempt } · failed { id, attempt, error, willRetry }
 *   lost { id, reason } · progress_rejected { id, error } · error { code, message } (e.g. DATABASE_UNAVAILABLE)
 *   stopping · stopped { undelivered } (SIGTERM: worker.stop(), then exit 0)
 */
import { createWorker, errorCodeOf } from '../../client/index.js';
import { faultJobs } from './faultJobs.js';

const env = process.env;
const url = env.SKIPQ_URL;
if (!url) throw new Error('workerProcess: SKIPQ_URL is required');
const int = (name: string, fallback: number): number => (env[name] ? Number(env[name]) : fallback);

const out = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...line, t: Date.now() })}\n`);
};

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

const extraMs = int('EXTRA_MS', 0);

const worker = createWorker({
  url,
  jobs: faultJobs,
  ...(env.WORKER_ID ? { workerId: env.WORKER_ID } : {}),
  concurrency: int('CONCURRENCY', 8),
  ...(env.PREFETCH !== undefined ? { prefetch: int('PREFETCH', 0) } : {}),
  leaseMs: int('LEASE_MS', 1500),
  waitMs: int('WAIT_MS', 1000),
  graceMs: int('GRACE_MS', 30_000),
  handlers: {
    work: async ({ n, ms, hold }, ctx) => {
      // Frozen-worker test: the handler spans the SIGSTOP and returns right after SIGCONT.
      // The listener is in place before "exec" is printed, which is when the test may stop us.
      const held = hold === 'cont' && ctx.attempt === 1 ? new Promise<void>((resolve) => process.once('SIGCONT', () => resolve())) : undefined;
      out({ ev: 'exec', id: ctx.id, attempt: ctx.attempt, n });
      await (held ?? sleep(ms + extraMs, ctx.signal));
      out({ ev: 'handled', id: ctx.id, attempt: ctx.attempt, aborted: ctx.signal.aborted });
      if (ctx.signal.aborted) throw ctx.signal.reason;
      return { n };
    },
  },
  onEvent(event) {
    // stop()'s report is printed once, as the "stopped" line below.
    if (event.kind === 'stopped') return;
    if (event.kind === 'error') {
      const error = event.error as Error;
      out({ ev: 'error', code: errorCodeOf(error) ?? null, message: String(error?.message ?? error) });
    } else {
      const { kind, ...rest } = event;
      out({ ev: kind, ...rest });
    }
  },
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  out({ ev: 'stopping', running: worker.running });
  worker.stop().then(
    (report) => {
      out({ ev: 'stopped', undelivered: report.undelivered });
      process.exit(0);
    },
    (error: unknown) => {
      out({ ev: 'error', code: null, message: `stop failed: ${String(error)}` });
      process.exit(1);
    },
  );
});

worker.start();
out({ ev: 'ready', workerId: worker.workerId, pid: process.pid });
