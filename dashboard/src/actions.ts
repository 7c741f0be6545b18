import { useRef, useState } from 'preact/hooks';
import type { JobFilter } from '../../shared/api.js';
import { api, refusalOf } from './api.js';

/** What a bulk action did: jobs moved, and jobs the server refused with its reason. */
export interface BulkOutcome {
  done: string[];
  refused: Array<{ id: string; message: string; code: string }>;
}

/**
 * A hand-picked selection, all in one go: one jobs.retry or jobs.cancel per
 * job, sent together (the client batches them, 20 to a request), each
 * answered on its own, so the outcome says which jobs moved and why others
 * did not. jobs.retryMany / jobs.cancelMany take a filter, not ids, so they
 * serve "every job matching the filters" below. Each call goes through the
 * same authorization as any client's: a key that may not retry gets FORBIDDEN here too.
 */
async function each(ids: readonly string[], call: (id: string) => Promise<unknown>): Promise<BulkOutcome> {
  const settled = await Promise.allSettled(ids.map((id) => call(id)));
  const outcome: BulkOutcome = { done: [], refused: [] };
  settled.forEach((result, i) => {
    const id = ids[i] as string;
    if (result.status === 'fulfilled') outcome.done.push(id);
    else {
      const failure = refusalOf(result.reason);
      outcome.refused.push({ id, message: failure.message, code: failure.code });
    }
  });
  return outcome;
}

/** Re-queues failed or cancelled jobs (jobs.retry; admin). */
export const retryJobs = (ids: readonly string[]): Promise<BulkOutcome> => each(ids, (id) => api.jobs.retry.mutate({ id }));

/** Cancels pending or running jobs (jobs.cancel). */
export const cancelJobs = (ids: readonly string[]): Promise<BulkOutcome> => each(ids, (id) => api.jobs.cancel.mutate({ id }));

/** "Retried 3 jobs." / "Cancelled 1 job; 2 refused: … (FORBIDDEN)". */
export function describe(verb: string, outcome: BulkOutcome): string {
  const head = `${verb} ${jobsText(outcome.done.length)}`;
  if (outcome.refused.length === 0) return `${head}.`;
  const reasons = [...new Set(outcome.refused.map((r) => `${r.message} (${r.code})`))].slice(0, 3).join('; ');
  return `${head}; the server refused ${outcome.refused.length}: ${reasons}`;
}

/** "1 job", "3 jobs". */
export const jobsText = (n: number): string => `${n.toLocaleString()} job${n === 1 ? '' : 's'}`;

/** At most this many jobs one "every match" action moves (the API's bound, LIMITS.bulkLimit). */
export const BULK_LIMIT = 10_000;

/** Which of the filter's statuses a bulk move may take: those it allows, or its default when the filter names none. */
export function statusesFor(move: 'retry' | 'cancel', statuses: readonly string[]): string[] {
  const allowed = move === 'retry' ? RETRYABLE : CANCELLABLE;
  if (statuses.length === 0) return move === 'retry' ? ['failed'] : [...CANCELLABLE];
  return statuses.filter((s) => allowed.has(s));
}

type BulkFilter = Omit<JobFilter, 'status'>;
type RetryStatus = 'failed' | 'cancelled';
type CancelStatus = 'pending' | 'claimed' | 'processing';

/** One jobs.retryMany or jobs.cancelMany call; `statuses` come from {@link statusesFor}, so each is one the move takes. */
function moveMany(move: 'retry' | 'cancel', filter: BulkFilter, statuses: string[], dryRun: boolean) {
  return move === 'retry'
    ? api.jobs.retryMany.mutate({ filter: { ...filter, status: statuses as RetryStatus[] }, limit: BULK_LIMIT, dryRun })
    : api.jobs.cancelMany.mutate({ filter: { ...filter, status: statuses as CancelStatus[] }, limit: BULK_LIMIT, dryRun });
}

/** How many jobs matching `filter` (with the move's statuses) the move would take: a dry run, which moves nothing. */
export async function countMatching(move: 'retry' | 'cancel', filter: BulkFilter, statuses: string[]): Promise<{ matched: number; more: boolean }> {
  const answer = await moveMany(move, filter, statuses, true);
  return { matched: answer.matched, more: answer.more };
}

/** Moves the jobs matching `filter` (at most BULK_LIMIT) with jobs.retryMany / jobs.cancelMany; answers the server's counts in words. */
export async function moveMatching(move: 'retry' | 'cancel', filter: BulkFilter, statuses: string[]): Promise<string> {
  const answer = await moveMany(move, filter, statuses, false);
  const verb = move === 'retry' ? 'Retried' : 'Cancelled';
  let text = `${verb} ${jobsText(answer.moved)}.`;
  if (answer.skipped > 0) text += ` ${jobsText(answer.skipped)} changed meanwhile and were left as they are.`;
  if (answer.more) text += ` More jobs match than one call takes (${BULK_LIMIT.toLocaleString()}): press again for the rest.`;
  return text;
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
 * `report(action)` shows the answer of a move made elsewhere (a form that
 * saved): it is never dropped, since the move has already happened, and a
 * later report's answer replaces an earlier one's. It resolves to whether its
 * report was still the latest when its action ended.
 */
export function useAction(): {
  busy: boolean;
  answer: Answer | null;
  run(action: () => Promise<string>): Promise<void>;
  report(action: () => Promise<string>): Promise<boolean>;
} {
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const running = useRef(false);
  const latest = useRef(0);
  const answerOf = async (action: () => Promise<string>): Promise<Answer> => {
    try {
      return { ok: true, text: await action() };
    } catch (error) {
      const refused = refusalOf(error);
      return { ok: false, text: `The server refused: ${refused.message} (${refused.code})` };
    }
  };
  const run = async (action: () => Promise<string>) => {
    if (running.current) return;
    running.current = true;
    setBusy(true);
    setAnswer(null);
    try {
      setAnswer(await answerOf(action));
    } finally {
      running.current = false;
      setBusy(false);
    }
  };
  const report = async (action: () => Promise<string>) => {
    const mine = ++latest.current;
    setAnswer(null);
    const answered = await answerOf(action);
    if (mine !== latest.current) return false;
    setAnswer(answered);
    return true;
  };
  return { busy, answer, run, report };
}
