import { useRef, useState } from 'preact/hooks';
import { api, report } from './api.js';

/** What a bulk action did: jobs moved, and jobs the server refused with its reason. */
export interface BulkOutcome {
  done: string[];
  refused: Array<{ id: string; message: string }>;
}

// Enough to overlap round trips without crowding the server's pool.
const CONCURRENCY = 4;

/**
 * BULK ACTIONS, FOR NOW ONE CALL PER JOB. WAITS FOR jobs.retryMany /
 * jobs.cancelMany (another helper adds them): they replace this loop, here
 * alone, with one call for the selection and one statement on the server;
 * the pages keep calling retryJobs/cancelJobs. Each call goes through the same authorization
 * as any client's: a key that may not retry gets FORBIDDEN here too.
 */
async function each(ids: readonly string[], call: (id: string) => Promise<unknown>): Promise<BulkOutcome> {
  const outcome: BulkOutcome = { done: [], refused: [] };
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const id = ids[next++] as string;
      try {
        await call(id);
        outcome.done.push(id);
      } catch (error) {
        outcome.refused.push({ id, message: report(error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, ids.length) }, lane));
  return outcome;
}

/** Re-queues failed or cancelled jobs (jobs.retry; admin). */
export const retryJobs = (ids: readonly string[]): Promise<BulkOutcome> => each(ids, (id) => api.jobs.retry.mutate({ id }));

/** Cancels pending or running jobs (jobs.cancel). */
export const cancelJobs = (ids: readonly string[]): Promise<BulkOutcome> => each(ids, (id) => api.jobs.cancel.mutate({ id }));

/** "Retried 3 jobs." / "Cancelled 1 job; 2 refused: …". */
export function describe(verb: string, outcome: BulkOutcome): string {
  const jobs = (n: number) => `${n} job${n === 1 ? '' : 's'}`;
  const head = `${verb} ${jobs(outcome.done.length)}`;
  if (outcome.refused.length === 0) return `${head}.`;
  const reasons = [...new Set(outcome.refused.map((r) => r.message))].slice(0, 3).join('; ');
  return `${head}; ${outcome.refused.length} refused: ${reasons}`;
}

/** Statuses jobs.retry accepts. */
export const RETRYABLE: ReadonlySet<string> = new Set(['failed', 'cancelled']);
/** Statuses jobs.cancel accepts. */
export const CANCELLABLE: ReadonlySet<string> = new Set(['pending', 'claimed', 'processing']);

/** What the server answered to an action, or why it refused. */
export interface Answer {
  ok: boolean;
  text: string;
}

/**
 * One action at a time with the server's answer: `run(action)` shows the text
 * `action` resolves to, or "The server refused: …" with its code. A press
 * while busy is ignored rather than the button disabled (a disabled button
 * drops the keyboard focus): buttons take `aria-disabled={busy}`.
 */
export function useAction(): { busy: boolean; answer: Answer | null; run(action: () => Promise<string>): Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const running = useRef(false);
  const run = async (action: () => Promise<string>) => {
    if (running.current) return;
    running.current = true;
    setBusy(true);
    setAnswer(null);
    try {
      setAnswer({ ok: true, text: await action() });
    } catch (error) {
      const refused = report(error);
      setAnswer({ ok: false, text: `The server refused: ${refused.message} (${refused.code})` });
    } finally {
      running.current = false;
      setBusy(false);
    }
  };
  return { busy, answer, run };
}
